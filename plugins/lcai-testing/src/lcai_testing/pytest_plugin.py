"""lcai-testing's pytest plugin — opt-in: nothing loads it unless a test run asks for it, with
``pytest -p lcai_testing.pytest_plugin`` or ``pytest_plugins = ["lcai_testing.pytest_plugin"]`` in a conftest.py.

Fixtures: ``lcai_config_dir`` (an empty ``LCAI_CONFIG_DIR`` and a fresh plugin host), ``linode_sim`` (a
running Linode API simulator with ``LCAI_LINODE_API_URL`` and ``LINODE_TOKEN`` pointing at it) and
``fake_docker`` (a fake Docker Engine API on a unix socket). After the run, one line names the tests skipped
because a system tool is missing and the Debian packages that provide them, and one the tools
``LCAI_TEST_HIDE_TOOLS`` hid (:mod:`lcai_testing.tools`).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

# (pattern in a skip reason, Debian package that provides the tool)
SYSTEM_TOOLS = (("redis-server", "redis-server"), ("postgresql", "postgresql"), ("systemd-analyze", "systemd"),
                ("shellcheck", "shellcheck"), ("gpg", "gnupg"))


def missing_tools_line(skips: list[tuple[str, str]]) -> str | None:
    """One line naming the tests skipped because a system tool is missing and how to get them, from
    (test id, skip reason) pairs; None when nothing was skipped for that reason."""
    by_pkg: dict[str, list[str]] = {}
    for nodeid, reason in skips:
        low = reason.lower()
        pkgs = [p for hint in re.findall(r"apt-get install ([a-z0-9][a-z0-9.+-]*(?: [a-z0-9][a-z0-9.+-]*)*)", low)
                for p in hint.split()]
        if not pkgs:
            pkgs = [pkg for pat, pkg in SYSTEM_TOOLS if pat in low]
        for pkg in dict.fromkeys(pkgs):
            by_pkg.setdefault(pkg, []).append(nodeid.split("/")[-1])
    if not by_pkg:
        return None
    tests = "; ".join(f"{', '.join(ids)} ({pkg})" for pkg, ids in sorted(by_pkg.items()))
    return (f"skipped for missing system tools: {tests} — get them with: "
            f"sudo apt-get install {' '.join(sorted(by_pkg))}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """After the run: one line saying which tests skipped for a missing system tool, and how to get it."""
    skips = []
    for rep in terminalreporter.stats.get("skipped", []):
        lr = rep.longrepr
        reason = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
        skips.append((rep.nodeid, str(reason)))
    line = missing_tools_line(skips)
    if line:
        terminalreporter.write_line(line, yellow=True)
    from .tools import HIDE_ENV, hidden_tools

    if hidden_tools():
        terminalreporter.write_line(f"{HIDE_ENV} hid: {', '.join(sorted(hidden_tools()))}", yellow=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Iterator[None]:
    """Note which fixtures look up a system tool (:mod:`lcai_testing.tools`)."""
    from . import tools

    tools.fixture_stack.append(fixturedef.argname)
    try:
        yield
    finally:
        tools.fixture_stack.pop()


def pytest_runtest_teardown(item: Any) -> None:
    """Log a test that used a fixture which looked up a system tool (``LCAI_TEST_TOOL_LOG``)."""
    from . import tools

    if tools.tool_fixtures.intersection(getattr(item, "fixturenames", ())):
        tools.log_test(item.nodeid)


@pytest.fixture
def lcai_config_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An empty LCAI_CONFIG_DIR and a fresh plugin host for the test."""
    from lcai_core.plugins import reset_host

    d = tmp_path / "lcai-config"
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(d))
    reset_host()
    yield d
    reset_host()


@pytest.fixture
def linode_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Linode API simulator on a free 127.0.0.1 port with sub-second lifecycles, and lcai's Linode provider
    pointed at it (``LCAI_LINODE_API_URL``, ``LINODE_TOKEN``, short polls and retries). Yields the
    :class:`~lcai_testing.linode.simulator.Simulator`; ``.url`` is its API base, ``.state`` its state."""
    from .linode.simulator import Simulator

    sim = Simulator(provision_s=0.15, boot_s=0.15, app_ready_s=0.1).start()
    monkeypatch.setenv("LCAI_LINODE_API_URL", sim.url)
    monkeypatch.setenv("LINODE_TOKEN", sim.state.token)
    monkeypatch.setenv("LCAI_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("LCAI_RETRY_DELAY", "0")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def fake_docker(tmp_path: Any) -> Iterator[Any]:
    """A :class:`~lcai_testing.docker.FakeDocker` serving on ``tmp_path/docker.sock`` (``.socket_path``)."""
    from .docker import FakeDocker

    fd = FakeDocker(str(tmp_path / "docker.sock")).start()
    try:
        yield fd
    finally:
        fd.stop()
