"""Feature ``apt-packages`` (the template's capabilities.packages) and ``python-3.11``."""

from __future__ import annotations

from attrs import define

from ..capabilities import AptSource, Capability, DeployContext, Fragments


@define(frozen=True)
class AptConfig:
    packages: tuple[str, ...] = ()


class AptPackages(Capability):
    name = "apt-packages"
    summary = "extra apt packages (capabilities.packages in a template)"
    config_class = AptConfig
    order = 90

    def fragments(self, config: AptConfig, ctx: DeployContext) -> Fragments:
        if not config.packages:
            return Fragments()
        return Fragments(packages=config.packages,
                         boot_plan=(f"install extra packages: {', '.join(config.packages)}",))


class Python(Capability):
    name = "python-3.11"
    summary = ("Python 3.11 with venv and headers: Debian 12's own python3.11, or the deadsnakes PPA on "
               "Ubuntu 22.04/24.04")
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    order = 20

    def fragments(self, config, ctx: DeployContext) -> Fragments:
        packages = ("python3.11", "python3.11-venv", "python3.11-dev")
        if ctx.debian_release:  # Debian 12's python3 is 3.11: no PPA (deadsnakes builds for Ubuntu only)
            return Fragments(packages=packages, boot_plan=("install Python 3.11 (Debian's own packages)",))
        return Fragments(
            apt_sources=(AptSource("deadsnakes", "ppa:deadsnakes/ppa"),),
            packages=packages,
            boot_plan=("install Python 3.11 (deadsnakes PPA)",),
        )
