"""NVIDIA GPU support on Ubuntu 22.04/24.04.

Boot 1: the NVIDIA Container Toolkit comes from NVIDIA's apt source (key pinned by full fingerprint), with
Docker and the kernel headers, in cloud-init's single package stage. runcmd then configures Docker's nvidia
runtime, starts pulling the app image in the background (``lcai-image-pull.service``) and, meanwhile, installs
the server driver through DKMS; it then waits for the pull and cloud-init reboots once (``power_state``).
Boot 2: ``lcai-gpu-verify.service`` runs ``nvidia-smi`` on the host and in a container, records the result in
/var/lib/lcai/gpu.json, and the app unit starts only after it succeeded.
"""

from __future__ import annotations

import re
import shlex

from attrs import define

from lcai_core.capabilities import AptSource, Capability, DeployContext, Fragments, Unit, WriteFile

TOOLKIT_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
VERIFY_UNIT = "lcai-gpu-verify.service"
PULL_UNIT = "lcai-image-pull.service"


@define(frozen=True)
class GpuConfig:
    driver_branch: str = "580-server"  # 535-server is now transitional to 580-server on Ubuntu
    open_kernel_modules: bool = True  # NVIDIA's open modules: required on Blackwell, recommended from Turing on
    container_toolkit: bool = True


def driver_packages(config: GpuConfig) -> tuple[str, ...]:
    headless = f"nvidia-headless-{config.driver_branch}" + ("-open" if config.open_kernel_modules else "")
    return (headless, f"nvidia-utils-{config.driver_branch}")


VERIFY_SCRIPT = """#!/bin/sh
# lcai: verify the GPU after boot; the app starts only if this succeeds. Result: /var/lib/lcai/gpu.json
set -u
out=/var/lib/lcai/gpu.json
mkdir -p /var/lib/lcai
record() {
  printf '{"ok": %s, "stage": "%s", "time": %d, "detail": "%s"}\\n' "$1" "$2" "$(date +%s)" \\
    "$(printf '%s' "$3" | tr -d '\\042\\134' | tr '\\n' ' ' | cut -c1-400)" > "$out.tmp" && mv -f "$out.tmp" "$out"
}
if ! smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
  record false host "$smi"
  echo "lcai: nvidia-smi failed on the host: $smi" >&2
  exit 1
fi
"""

VERIFY_CONTAINER = """if ! c=$(docker run --rm --gpus all --entrypoint nvidia-smi {image} -L 2>&1); then
  record false container "$c"
  echo "lcai: the GPU is not usable from containers: $c" >&2
  exit 1
fi
"""


class GpuNvidia(Capability):
    name = "gpu-nvidia"
    requires_gpu = True
    summary = "NVIDIA server driver (DKMS) + Container Toolkit; one reboot; verified with nvidia-smi before the app"
    config_class = GpuConfig
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04")
    order = 30

    def check(self, config: GpuConfig, template) -> list:
        out = []
        if not re.match(r"^[0-9]{3}(-server)?$", config.driver_branch):
            out.append(f"config.driver_branch must look like 580-server or 580, got {config.driver_branch!r}")
        if template.capabilities.runtime == "docker" and not config.container_toolkit:
            out.append("config.container_toolkit: the docker runtime needs the toolkit to give the app the GPU")
        return out

    def fragments(self, config: GpuConfig, ctx: DeployContext) -> Fragments:
        docker = ctx.runtime == "docker" and config.container_toolkit
        drivers = driver_packages(config)
        verify = VERIFY_SCRIPT
        if docker and ctx.container_image:
            verify += VERIFY_CONTAINER.format(image=shlex.quote(ctx.container_image))
        verify += "smi=$(printf '%s' \"$smi\" | head -n 1)\nrecord true verified \"$smi\"\n"
        files = [WriteFile("/usr/local/lib/lcai/gpu-verify", verify, permissions="0755")]
        units = [Unit(VERIFY_UNIT, f"""[Unit]
Description=lcai: verify the NVIDIA GPU (nvidia-smi) before the app starts
After={"docker.service" if docker else "systemd-modules-load.service"}
{"Requires=docker.service" if docker else ""}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/lcai/gpu-verify
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
""".replace("\n\n\n", "\n\n"))]
        runcmd: list = []
        sources: tuple = ()
        packages: list = ["linux-headers-generic"]
        plan = []
        if docker:
            sources = (AptSource("nvidia-container-toolkit",
                                 "deb [signed-by=$KEY_FILE] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /",
                                 keyid=TOOLKIT_KEY_FINGERPRINT),)
            packages.append("nvidia-container-toolkit")
            runcmd += [("nvidia-ctk", "runtime", "configure", "--runtime=docker"),
                       ("systemctl", "restart", "docker.service")]
            plan.append("add NVIDIA's Container Toolkit apt source (key pinned by fingerprint) and configure "
                        "Docker's nvidia runtime")
            if ctx.container_image:
                units.append(Unit(PULL_UNIT, f"""[Unit]
Description=lcai: pull the app image while the GPU driver installs
After=docker.service network-online.target
Wants=network-online.target
Requires=docker.service

[Service]
Type=oneshot
ExecStart=/usr/bin/docker pull {ctx.container_image}
Restart=on-failure
RestartSec=15
TimeoutStartSec=infinity
""", enable=False))
                runcmd.append(("systemctl", "start", "--no-block", PULL_UNIT))
                plan.append(f"start pulling {ctx.container_image} in the background")
        runcmd.append(("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends",
                       "-o", "DPkg::Lock::Timeout=600", *drivers))
        plan.append(f"meanwhile install the NVIDIA {config.driver_branch} driver "
                    f"({'open' if config.open_kernel_modules else 'proprietary'} kernel modules, DKMS): "
                    + ", ".join(drivers))
        if docker and ctx.container_image:
            runcmd.append(("systemctl", "start", PULL_UNIT))
            plan.append("wait for the image pull to finish")
        plan.append(f"after the reboot, {VERIFY_UNIT} runs nvidia-smi (host{' and container' if docker else ''}) "
                    "and records /var/lib/lcai/gpu.json; the app waits for it")
        return Fragments(apt_sources=sources, packages=tuple(packages), write_files=tuple(files), units=tuple(units),
                         runcmd=tuple(runcmd), app_requires=(VERIFY_UNIT,), gpu=docker, reboot=True,
                         boot_plan=tuple(plan))
