"""The plugin API: all a capability, provider or template-pack plugin imports from lcai-core; nothing that renders.

    from lcai_core.api import hookimpl, Capability, DeployContext, Fragments, Unit, WriteFile

It re-exports stand-alone contract modules only: the hook markers (``lcai_core.hookspecs``), the errors
(``lcai_core.errors``), the capability types (``lcai_core.capabilities``), the provider contract
(``lcai_core.providers``, with ``Health`` from ``lcai_core.health``), the shared conventions
(``lcai_core.conventions``: tags, labels, passwords, timeouts, hashes), template packs' ``DirectorySource``
(``lcai_core.sources``) and the config directory (``lcai_core.paths``). A plugin that imports it loads none of
core's renderer, flow or CLI. Names resolve on first use: ``from lcai_core.api import hookimpl`` (what a
plugin's ``__init__`` needs while ``lcai --help`` runs) loads the hook markers and nothing else.

Plugins that drive lcai from outside the contract (commands, the dashboard, other CLIs) use
:mod:`lcai_core.api.frontend`; tests use the ``lcai-testing`` distribution. Nothing else in ``lcai_core`` is
API: its modules may change in any release. ``.importlinter`` checks both rules; docs/plugin-api.md lists the
names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import InputError, LcaiError, Problem, TrackedError, ValidationError
from ..hookspecs import hookimpl, hookspec
from ..paths import config_dir

if TYPE_CHECKING:
    from ..capabilities import (
        AppSpec,
        AptSource,
        Capability,
        DeployContext,
        Fragments,
        MountedVolume,
        Runtime,
        Unit,
        WriteFile,
        data_on_volume,
        volume_problems,
    )
    from ..conventions import (
        VOLUMES_KEPT,
        deployment_tags,
        env_seconds,
        instance_label,
        parse_tags,
        random_root_password,
        sha256,
        volume_label,
    )
    from ..health import Health
    from ..providers import (
        Endpoint,
        Listing,
        Preflight,
        Price,
        Provider,
        Remains,
        Say,
        Spec,
        SshEndpoint,
        Step,
        VolumeSpec,
    )
    from ..providers import _quiet as quiet
    from ..sources import DirectorySource

_LAZY = {
    "lcai_core.capabilities": ("AppSpec", "AptSource", "Capability", "DeployContext", "Fragments", "Runtime", "Unit",
                               "WriteFile", "MountedVolume", "data_on_volume", "volume_problems"),
    "lcai_core.providers": ("Endpoint", "Listing", "Preflight", "Price", "Provider", "Remains", "Say", "Spec",
                            "SshEndpoint", "Step", "VolumeSpec"),
    "lcai_core.health": ("Health",),
    "lcai_core.sources": ("DirectorySource",),
    "lcai_core.conventions": ("VOLUMES_KEPT", "deployment_tags", "env_seconds", "instance_label", "parse_tags",
                              "random_root_password", "sha256", "volume_label"),
}
_MODULE_OF = {name: mod for mod, names in _LAZY.items() for name in names}
_RENAMED = {"quiet": ("lcai_core.providers", "_quiet")}  # the contract's default ``say``: prints nothing

__all__ = [
    # hooks
    "hookimpl", "hookspec",
    # errors
    "LcaiError", "InputError", "ValidationError", "Problem", "TrackedError",
    # capabilities
    "Capability", "Runtime", "DeployContext", "Fragments", "Unit", "WriteFile", "AptSource", "AppSpec",
    "MountedVolume", "data_on_volume", "volume_problems",
    # providers
    "Provider", "Spec", "Step", "Price", "Preflight", "Listing", "Remains", "SshEndpoint", "Endpoint", "Say", "quiet",
    "Health", "VolumeSpec", "volume_label", "VOLUMES_KEPT",
    # conventions
    "deployment_tags", "parse_tags", "instance_label", "random_root_password", "env_seconds", "sha256",
    # template packs
    "DirectorySource",
    # paths
    "config_dir",
]


def __getattr__(name: str) -> Any:
    mod, attr = _RENAMED.get(name) or (_MODULE_OF.get(name), name)
    if mod is None:
        raise AttributeError(f"module 'lcai_core.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
