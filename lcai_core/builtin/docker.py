"""Runtime ``docker`` (Docker Engine from the distribution's docker.io) and feature ``docker-optimize``."""

from __future__ import annotations

import json
import shlex
from typing import ClassVar

from attrs import define

from ..capabilities import AppSpec, Capability, DeployContext, Fragments, Runtime, Unit, WriteFile
from ..cloudinit.layout import IMAGE_PULL_UNIT, LIB, STATE
from ..cloudinit.scripts import data_file, script_header
from ..cloudinit.units import unit_text
from ..envfile import docker_env_file

PULL_ATTEMPTS = 4
PULL_ATTEMPT_TIMEOUT = 1800  # seconds per `docker pull`: multi-GB images on a slow mirror
PULL_FIRST_RETRY_DELAY = 15  # then x3: 15, 45, 135 s


def image_pull_script(image: str) -> str:
    """Pull ``image`` unless present: bounded per attempt, retried with backoff, result in image-pull.json.
    The script is ``lcai_core/data/image-pull.bash`` behind a header of values."""
    header = script_header(
        "#!/bin/bash",
        [f"lcai: pull the app image (bounded attempts, retried) before what needs it; result: {STATE}/image-pull.json"],
        {"image": shlex.quote(image), "attempts": str(PULL_ATTEMPTS), "per_attempt": str(PULL_ATTEMPT_TIMEOUT),
         "delay": "${LCAI_PULL_RETRY_DELAY:-" + str(PULL_FIRST_RETRY_DELAY) + "}",
         "state": f"{STATE}/image-pull.json"},
        f"mkdir -p {STATE}")
    return header + data_file("image-pull.bash")


def pull_unit(app: AppSpec, deps: tuple[str, ...]) -> str:
    """After the app's other dependencies too (one may serve the image: a registry forwarder), wanting them
    without failing on them (a failed database must not stop the pull)."""
    return unit_text([
        ("Unit", [("Description", f"lcai: pull the app image {app.image} (bounded, retried)"),
                  ("After", ["network-online.target", "docker.service", "multi-user.target", *deps]),
                  ("Wants", ["network-online.target", *(d for d in deps if d != "docker.service")]),
                  ("Requires", "docker.service")]),
        ("Service", [("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStart", f"{LIB}/image-pull"),
                     ("TimeoutStartSec", str(pull_timeout()))]),
    ])


def pull_timeout() -> int:
    """TimeoutStartSec of the pull unit: every attempt and every backoff, plus a minute."""
    backoff = sum(PULL_FIRST_RETRY_DELAY * 3 ** i for i in range(PULL_ATTEMPTS - 1))
    return PULL_ATTEMPTS * PULL_ATTEMPT_TIMEOUT + backoff + 60


class Docker(Runtime):
    name = "docker"
    summary = "Docker Engine (the distribution's docker.io) runs the app container under systemd"
    publishes_ports: ClassVar[bool] = True

    def check(self, config, template):
        if not template.container.image:
            return [(("deploy", "linode", "container", "image"), "the docker runtime needs a container image")]
        return []

    def fragments(self, config, ctx: DeployContext) -> Fragments:
        # apparmor: with AppArmor on in the kernel (Debian 12, Ubuntu), dockerd needs apparmor_parser to load
        # its docker-default profile or no container starts; docker.io only recommends it
        return Fragments(
            packages=("docker.io", "apparmor"),
            runcmd=(("systemctl", "enable", "--now", "docker.service"),),
            app_requires=("docker.service",),
            boot_plan=("install Docker Engine (docker.io)",),
        )

    def app_fragments(self, app: AppSpec, ctx: DeployContext, deps: tuple[str, ...] = ()) -> Fragments:
        """``lcai-image-pull.service``: the app (and e.g. a GPU check) order after it and require it."""
        if not app.image:
            return Fragments()
        return Fragments(
            write_files=(WriteFile(f"{LIB}/image-pull", image_pull_script(app.image), permissions="0755"),),
            units=(Unit(IMAGE_PULL_UNIT, pull_unit(app, deps), enable=False),),
            boot_plan=(),
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
        # '-': after a crash the container is already gone (--rm), and that is not a failure of the stop
        return (f"ExecStartPre=-/usr/bin/docker rm -f {app.container_name}\n"
                f"ExecStop=-/usr/bin/docker stop -t 30 {app.container_name}\n")

    def env_file_text(self, env: dict[str, str]) -> str:
        return docker_env_file(env)

    def exec_probe(self, command: str) -> list[str]:
        return ["docker", "exec", "app", "sh", "-c", command]

    def running_check(self, app: AppSpec) -> str:
        return ("[ \"$(docker inspect -f '{{.State.Running}}' " + app.container_name
                + " 2>/dev/null)\" = true ]")


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
        if template.capabilities.runtime not in ("docker", "k3s"):
            out.append("docker-optimize needs capabilities.runtime: docker")
        if template.capabilities.runtime == "k3s" and config.log_max_files < 2:
            out.append("config.log_max_files: on k3s the kubelet rotates container logs and keeps at least 2 files")
        if not 1 <= config.max_concurrent_downloads <= 64:
            out.append("config.max_concurrent_downloads must be 1-64")
        if not 1 <= config.log_max_files <= 100:
            out.append("config.log_max_files must be 1-100")
        import re

        if not re.match(r"^[1-9][0-9]*[kmg]$", config.log_max_size):
            out.append(f"config.log_max_size must look like 10m, got {config.log_max_size!r}")
        return out

    def fragments(self, config: OptimizeConfig, ctx: DeployContext) -> Fragments:
        if ctx.runtime == "k3s":  # no Docker daemon: the kubelet rotates the container logs
            from .k3s import CONFIG_DIR

            size = config.log_max_size[:-1] + config.log_max_size[-1].upper() + "i"  # 10m -> 10Mi
            drop_in = ("# lcai docker-optimize on k3s: container log rotation by the kubelet\nkubelet-arg+:\n"
                       f"  - container-log-max-size={size}\n  - container-log-max-files={config.log_max_files}\n")
            return Fragments(
                write_files=(WriteFile(f"{CONFIG_DIR}/lcai-docker-optimize.yaml", drop_in, permissions="0600"),),
                boot_plan=(f"tune k3s: the kubelet rotates container logs at {size} x {config.log_max_files} "
                           "(max_concurrent_downloads is Docker's: k3s's containerd keeps its own limit)",),
            )
        daemon = {"max-concurrent-downloads": config.max_concurrent_downloads, "log-driver": "json-file",
                  "log-opts": {"max-size": config.log_max_size, "max-file": str(config.log_max_files)}}
        return Fragments(
            write_files=(WriteFile("/etc/docker/daemon.json", json.dumps(daemon, indent=2) + "\n"),),
            boot_plan=(f"tune Docker: {config.max_concurrent_downloads} parallel layer downloads, "
                       f"logs rotated at {config.log_max_size} x {config.log_max_files}",),
        )
