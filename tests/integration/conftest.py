"""Boot tests here (marked ``boot``) run only when selected: ``pytest -m boot tests/integration``. They boot
the local VM through the helpers of tests/boot (``vmboot``)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "boot"))


def pytest_configure(config):
    config.addinivalue_line("markers", "boot: boots a local VM (run with -m boot; minutes each)")


def pytest_collection_modifyitems(config, items):
    if "boot" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="boots a VM: select with -m boot")
    for item in items:
        if item.get_closest_marker("boot"):
            item.add_marker(skip)
