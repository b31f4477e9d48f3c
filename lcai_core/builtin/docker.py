"""Runtime ``docker`` (Docker Engine from Ubuntu's docker.io) and feature ``docker-optimize``."""

from __future__ import annotations

import json
from typing import ClassVar

from attrs import define

from ..capabilities import AppSpec, Capability, DeployContext, Fragments, Runtime, Unit, WriteFile
from ..cloudinit import docker_env_file

METADATA_GUARD = "lcai-metadata-guard.service"
GUARD_SCRIPT = """#!/bin/sh
# lcai: containers must not read the Linode metadata service (it serves this instance's user data,
# which holds the app's environment). The host itself (cloud-init) keeps its access.
set -eu
rule="DOCKER-USER -d 169.254.169.254/32 -j DROP"
# shellcheck disable=SC2086
iptables -C $rule 2>/dev/null || iptables -I $rule
"""


class Docker(Runtime):
    name = "docker"
    summary = "Docker Engine (Ubuntu's docker.io) runs the app container under systemd"
    publishes_ports: ClassVar[bool] = True

    def check(self, config, template):
        if not template.container.image:
            return [(("deploy", "linode", "container", "image"), "the docker runtime needs a container image")]
        return []

    def fragments(self, config, ctx: DeployContext) -> Fragments:
        return Fragments(
            packages=("docker.io",),
            write_files=(WriteFile("/usr/local/lib/lcai/metadata-guard", GUARD_SCRIPT, permissions="0755"),),
            units=(Unit(METADATA_GUARD, """[Unit]
Description=lcai: block containers from the metadata service
After=docker.service
Requires=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/lcai/metadata-guard

[Install]
WantedBy=multi-user.target
"""),),
            runcmd=(("systemctl", "enable", "--now", "docker.service"),),
            app_requires=("docker.service", METADATA_GUARD),
            boot_plan=("install Docker Engine (docker.io) and block containers from 169.254.169.254",),
        )

    def exec_start(self, app: AppSpec, ctx: DeployContext) -> list[str]:
        argv = ["/usr/bin/docker", "run", "--rm", "--name", app.container_name,
                "--label", f"lcai.deployment={ctx.deployment_id}", "--label", f"lcai.app={ctx.app_name}",
                "--env-file", app.env_file]
        for host, container in app.ports:
            argv += ["-p", f"{host}:{container}"]
        if app.gpu:
            argv += ["--gpus", "all"]
        for v in app.volumes:
            argv += ["-v", v]
        argv += list(app.docker_args)
        argv.append(app.image or "")
        argv += list(app.command)
        return argv

    def service_lines(self, app: AppSpec, ctx: DeployContext) -> str:
        return (f"ExecStartPre=-/usr/bin/docker rm -f {app.container_name}\n"
                f"ExecStop=/usr/bin/docker stop -t 30 {app.container_name}\n")

    def env_file_text(self, env: dict[str, str]) -> str:
        return docker_env_file(env)

    def exec_probe(self, command: str) -> list[str]:
        return ["docker", "exec", "app", "sh", "-c", command]


@define(frozen=True)
class OptimizeConfig:
    max_concurrent_downloads: int = 10
    log_max_size: str = "10m"
    log_max_files: int = 3


class DockerOptimize(Capability):
    name = "docker-optimize"
    summary = "Docker daemon tuning: parallel layer downloads and container log rotation"
    config_class = OptimizeConfig
    order = 10

    def check(self, config: OptimizeConfig, template):
        out = []
        if template.capabilities.runtime != "docker":
            out.append("docker-optimize needs capabilities.runtime: docker")
        if not 1 <= config.max_concurrent_downloads <= 64:
            out.append("config.max_concurrent_downloads must be 1-64")
        if not 1 <= config.log_max_files <= 100:
            out.append("config.log_max_files must be 1-100")
        import re

        if not re.match(r"^[1-9][0-9]*[kmg]$", config.log_max_size):
            out.append(f"config.log_max_size must look like 10m, got {config.log_max_size!r}")
        return out

    def fragments(self, config: OptimizeConfig, ctx: DeployContext) -> Fragments:
        daemon = {"max-concurrent-downloads": config.max_concurrent_downloads, "log-driver": "json-file",
                  "log-opts": {"max-size": config.log_max_size, "max-file": str(config.log_max_files)}}
        return Fragments(
            write_files=(WriteFile("/etc/docker/daemon.json", json.dumps(daemon, indent=2) + "\n"),),
            boot_plan=(f"tune Docker: {config.max_concurrent_downloads} parallel layer downloads, "
                       f"logs rotated at {config.log_max_size} x {config.log_max_files}",),
        )
