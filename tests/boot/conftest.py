"""Boot tests: images built without Docker, a private registry on 127.0.0.1, a test-only capability, and
(marked ``boot``) real boots in a local VM. Boot tests run only when selected: ``pytest -m boot tests/boot``."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pkgindex import package_index  # noqa: E402,F401  (the session fixture)
from registry import registry  # noqa: E402,F401  (the session fixture)


def pytest_collection_modifyitems(config, items):
    if "boot" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="boots a VM: select with -m boot")
    for item in items:
        if item.get_closest_marker("boot"):
            item.add_marker(skip)


@pytest.fixture
def test_host(monkeypatch):
    """lcai's plugin host with the test-only ``test-registry`` capability, installed as the default host."""
    import lcai_test_registry
    import lcai_core.plugins as plugins

    host = plugins.Host(extra_plugins=(lcai_test_registry,))
    monkeypatch.setattr(plugins, "_host", host)
    return host
