"""lcai-core: templates + capabilities → cloud-init, and the plugin host.

Plugins import from ``lcai_core.api`` and ``lcai_core.api.frontend`` (docs/plugin-api.md; an import-linter
contract holds them to it). The names below are kept for code written against the first releases. Names resolve
lazily so ``import lcai_core`` (and ``lcai --help``) stay fast.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "lcai_core.hookspecs",
    "hookspec": "lcai_core.hookspecs",
    "Capability": "lcai_core.capabilities",
    "Runtime": "lcai_core.capabilities",
    "Fragments": "lcai_core.capabilities",
    "WriteFile": "lcai_core.capabilities",
    "AptSource": "lcai_core.capabilities",
    "Unit": "lcai_core.capabilities",
    "DeployContext": "lcai_core.capabilities",
    "AppSpec": "lcai_core.capabilities",
    "Provider": "lcai_core.providers",
    "Spec": "lcai_core.providers",
    "Step": "lcai_core.providers",
    "Price": "lcai_core.providers",
    "Preflight": "lcai_core.providers",
    "Listing": "lcai_core.providers",
    "SshEndpoint": "lcai_core.providers",
    "Endpoint": "lcai_core.providers",
    "LcaiError": "lcai_core.errors",
    "InputError": "lcai_core.errors",
    "ValidationError": "lcai_core.errors",
    "DirectorySource": "lcai_core.sources",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'lcai_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
