"""Test-only capability ``test-registry``: lets a VM pull ``127.0.0.1:PORT/NAME:TAG`` from the registry the
boot tests run on the host. Not shipped in any wheel; registered in-process with
``Host(extra_plugins=(lcai_test_registry,))``.

How: a systemd unit in the VM runs ``socat`` listening on 127.0.0.1:PORT and forwarding each connection to
the host's registry (10.0.2.2:PORT under QEMU's user-mode network). Docker talks plain HTTP to registries on
127.0.0.0/8 without any ``insecure-registries`` setting, so ``/etc/docker/daemon.json`` (which the
docker-optimize capability owns) is not touched and the template's ``container.image`` is the very reference
the tests pushed. The app unit starts after the forwarder (``app_requires``). A unit rather than a
``bootcmd``: it needs socat (installed with the other packages), survives reboots, and never blocks
cloud-init's early stage.

``pull_retry_delay: N`` (optional) shortens the docker image pull's first backoff (15 s, then x3) to N seconds
with a drop-in for ``lcai-image-pull.service``, so a boot whose pull must fail gives up in seconds.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from attrs import define

from lcai_core import Capability, DeployContext, Fragments, Unit, WriteFile, hookimpl

UNIT = "lcai-test-registry-forward.service"
PULL_DROP_IN = "/etc/systemd/system/lcai-image-pull.service.d/10-lcai-test-retry.conf"


@define(frozen=True)
class RegistryForwardConfig:
    port: int
    upstream: str = "10.0.2.2"  # the host, seen from a QEMU user-mode network
    pull_retry_delay: Optional[int] = None  # seconds before the image pull's first retry (default: lcai's)


class RegistryForward(Capability):
    name = "test-registry"
    summary = "(tests only) forward 127.0.0.1:PORT in the machine to the host's image registry"
    config_class = RegistryForwardConfig
    order = 5

    def check(self, config: RegistryForwardConfig, template) -> list:
        out = []
        if not 1 <= config.port <= 65535:
            out.append("config.port must be 1-65535")
        try:
            ipaddress.ip_address(config.upstream)
        except ValueError:
            out.append(f"config.upstream must be an IP address, got {config.upstream!r}")
        if config.pull_retry_delay is not None and not 0 <= config.pull_retry_delay <= 3600:
            out.append("config.pull_retry_delay must be 0-3600 seconds")
        return out

    def fragments(self, config: RegistryForwardConfig, ctx: DeployContext) -> Fragments:
        p, up = config.port, config.upstream
        drop_in = () if config.pull_retry_delay is None else (WriteFile(
            PULL_DROP_IN, f"[Service]\nEnvironment=LCAI_PULL_RETRY_DELAY={config.pull_retry_delay}\n"),)
        return Fragments(
            packages=("socat",),
            write_files=drop_in,
            units=(Unit(UNIT, f"""[Unit]
Description=lcai tests: forward 127.0.0.1:{p} to the host's image registry at {up}:{p}
After=network-online.target
Wants=network-online.target
Before=docker.service

[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr,fork TCP:{up}:{p}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""),),
            app_requires=(UNIT,),
            boot_plan=(f"(tests) forward 127.0.0.1:{p} to the image registry at {up}:{p}",),
        )


@hookimpl
def register_capabilities(register):
    register(RegistryForward())
