"""Every test runs as on a fresh machine, whatever else is installed or configured here:

- ``HOME``, ``XDG_CONFIG_HOME`` and ``LCAI_CONFIG_DIR`` point into a temporary directory, so the user's
  ``~/.config`` (user templates, the registry, linode-cli's token) is never read or written;
- the variables that change lcai's behaviour (tokens, API URL, timeouts, ``LCAI_DEBUG``, colour) are unset;
- lcai plugins and template packs from distributions that are not part of this repository (a pack installed
  with ``pip install examples/lcai-templates-example``, say) are disabled through ``LCAI_DISABLE_PLUGINS`` —
  the documented switch, so they are skipped exactly as a user would skip them. Tests that install a pack
  on purpose do it in their own environment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# lcai-testing's fixtures and end-of-run summary (opt-in: the plugin is never loaded by an entry point); pytester
# runs the provider conformance kit on deliberately broken providers (tests/testing/test_provider_contract.py)
pytest_plugins = ["lcai_testing.pytest_plugin", "pytester"]

ROOT = Path(__file__).resolve().parents[1]
UNSET = ("LINODE_TOKEN", "LINODE_CLI_TOKEN", "LCAI_LINODE_API_URL", "LCAI_DEBUG", "LCAI_HTTP_TIMEOUT",
         "LCAI_RETRY_DELAY", "LCAI_POLL_INTERVAL", "LCAI_DISABLE_PLUGINS", "LCAI_TRACE_PLUGINS", "NO_COLOR",
         "FORCE_COLOR", "COLUMNS")  # COLUMNS: `lcai status` fits its table to it; tests that want a width set it


def project_distributions() -> set[str]:
    """lcai-core and every plugin under plugins/ (names from their pyproject.toml)."""
    names = {"lcai-core"}
    for p in ROOT.glob("plugins/*/pyproject.toml"):
        m = re.search(r'(?m)^name\s*=\s*"([^"]+)"', p.read_text(encoding="utf-8"))
        if m:
            names.add(m.group(1))
    return names


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def foreign_distributions() -> list[str]:
    from lcai_core.plugins import _entry_points

    ours = {_norm(n) for n in project_distributions()}
    found = {ep.dist_name for group in ("lcai", "lcai.templates") for ep in _entry_points(group) if ep.dist_name}
    return sorted(d for d in found if _norm(d) not in ours)


_FOREIGN = None


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path_factory):
    global _FOREIGN
    if _FOREIGN is None:
        _FOREIGN = foreign_distributions()
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(home / ".config" / "linode-cli.d" / "build"))
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    if _FOREIGN:
        monkeypatch.setenv("LCAI_DISABLE_PLUGINS", ",".join(_FOREIGN))
    from lcai_core.plugins import reset_host

    reset_host()
    yield
    reset_host()
