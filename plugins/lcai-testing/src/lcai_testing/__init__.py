"""lcai-testing: what tests of lcai and of its plugins use — nothing here is needed at run time.

- validators for rendered user data (cloud-init's own schema, shellcheck, ``systemd-analyze verify``):
  :func:`validate_user_data`, :func:`validate_many` (:mod:`lcai_testing.validators`; cloud-init's validator is
  found or fetched by :mod:`lcai_testing.cloudinit`);
- rendering without a directory: :func:`render_text`, :func:`written`, :func:`app_env`
  (:mod:`lcai_testing.render`);
- a Linode API v4 simulator (:mod:`lcai_testing.linode.simulator`, the ``lcai-linode-sim`` command) and a fake
  Docker Engine API (:mod:`lcai_testing.docker`);
- system tools for tests: find one, or skip with its install hint, or hide it with ``LCAI_TEST_HIDE_TOOLS``
  (:mod:`lcai_testing.tools`);
- an opt-in pytest plugin with fixtures (:mod:`lcai_testing.pytest_plugin`);
- the provider conformance kit: :class:`ProviderContract`, one pytest test per rule of the provider contract
  (:mod:`lcai_testing.provider_contract`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider_contract import ProviderContract
    from .render import app_env, every_capability, install_distribution, render_text, require_plugins, written
    from .validators import (fake_systemd_root, package_units, require_validators, scripts_in, shellcheck,
                             shellcheck_bin, shellify, systemd_analyze_bin, systemd_verify, units_in, validate_many,
                             validate_user_data)

__version__ = "0.1.0"

# names resolve on first use, so `python -m lcai_testing.cloudinit` and `-p lcai_testing.pytest_plugin` load
# only what they need
_RENDER = ("app_env", "every_capability", "install_distribution", "render_text", "require_plugins", "written")
_VALIDATORS = ("fake_systemd_root", "package_units", "require_validators", "scripts_in", "shellcheck",
               "shellcheck_bin", "shellify", "systemd_analyze_bin", "systemd_verify", "units_in", "validate_many",
               "validate_user_data")
_WHERE = {**dict.fromkeys(_RENDER, "render"), **dict.fromkeys(_VALIDATORS, "validators"),
          "ProviderContract": "provider_contract"}

__all__ = ["ProviderContract", "app_env", "every_capability", "fake_systemd_root", "install_distribution",
           "package_units", "render_text", "require_plugins", "require_validators", "scripts_in", "shellcheck",
           "shellcheck_bin", "shellify", "systemd_analyze_bin", "systemd_verify", "units_in", "validate_many",
           "validate_user_data", "written"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lcai_testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
