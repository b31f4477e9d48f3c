"""Built-in capabilities and template sources, registered as an ordinary default plugin."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_capabilities(register):
    from .docker import Docker, DockerOptimize
    from .native import Native
    from .packages import AptPackages, Python

    for cap in (Docker(), DockerOptimize(), Native(), AptPackages(), Python()):
        register(cap)


@hookimpl
def register_template_sources(register):
    from .. import __version__
    from ..paths import bundled_templates_dir, user_templates_dir
    from ..sources import DirectorySource

    register(DirectorySource("bundled", bundled_templates_dir(), f"bundled (lcai-core {__version__})", "lcai-core"))
    register(DirectorySource("user", user_templates_dir(), f"user ({user_templates_dir()})", "user"))
