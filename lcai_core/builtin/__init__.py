"""Built-in capabilities and template sources, registered as an ordinary default plugin."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_capabilities(register):
    from .docker import Docker, DockerOptimize
    from .k3s import K3s
    from .native import Native
    from .packages import AptPackages, Python

    for cap in (Docker(), DockerOptimize(), K3s(), Native(), AptPackages(), Python()):
        register(cap)


@hookimpl
def deployment_events(deployment, run, limit, since):
    """`lcai logs` on a k3s deployment: the app's pods and the namespace's recent events."""
    if deployment.get("runtime") != "k3s":
        return None
    from .k3s import events_section

    return events_section(deployment, run, limit, since)


@hookimpl
def register_template_sources(register):
    from .. import __version__
    from ..paths import bundled_templates_dir, user_templates_dir
    from ..sources import DirectorySource

    register(DirectorySource("bundled", bundled_templates_dir(), f"bundled (lcai-core {__version__})", "lcai-core"))
    register(DirectorySource("user", user_templates_dir(), f"user ({user_templates_dir()})", "user"))
    # data-only template packs: an entry point in group "lcai.templates" naming a package whose folder holds
    # one sub-folder per template (no code runs; the package is located, not imported)
    import importlib.util
    import os

    from ..plugins import _disabled, _entry_points

    disabled = _disabled()
    for ep in _entry_points("lcai.templates"):
        if ep.name in disabled or ep.dist_name in disabled:  # LCAI_DISABLE_PLUGINS covers data-only packs too
            continue
        spec = importlib.util.find_spec(ep.value.split(":")[0].strip())
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                if os.path.isdir(loc):
                    register(DirectorySource("pack", loc, plugin=f"{ep.dist_name} {ep.version}"))
