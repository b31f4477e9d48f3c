"""lcai_testing.tools: the one place tests find system tools, so that a test needing one skips with its install
hint when it is missing — and ``LCAI_TEST_HIDE_TOOLS`` shows that it does, whatever this machine has installed."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lcai_testing import tools

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_CALLS = {"run", "Popen", "check_output", "check_call", "call"}


def bypasses(source: str) -> list[str]:
    """Where ``source`` finds or starts an optional system tool without lcai_testing.tools: ``shutil.which``, a
    hard-coded path to a tool, or a subprocess whose command names a tool in ``tools.TOOLS`` literally."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr == "which" and isinstance(node.value, ast.Name) \
                and node.value.id == "shutil":
            found.append(f"{line}: shutil.which")
        elif isinstance(node, ast.ImportFrom) and node.module == "shutil" and any(a.name == "which"
                                                                                 for a in node.names):
            found.append(f"{line}: from shutil import which")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/"):
            name = node.value.rstrip("/").rsplit("/", 1)[-1]
            if node.value.startswith("/usr/lib/postgresql/") or (
                    name in tools.TOOLS and node.value.rsplit("/", 1)[0] in ("/bin", "/sbin", "/usr/bin", "/usr/sbin")):
                found.append(f"{line}: path {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in SUBPROCESS_CALLS and node.args:
            cmd = node.args[0]
            words = [e.value for e in cmd.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)] \
                if isinstance(cmd, (ast.List, ast.Tuple)) else \
                (cmd.value.split() if isinstance(cmd, ast.Constant) and isinstance(cmd.value, str) else [])
            named = [w for w in words if w in tools.TOOLS]
            if named:
                found.append(f"{line}: runs {named[0]!r} by name")
    return sorted(found, key=lambda hit: int(hit.split(":", 1)[0]))


def test_no_test_finds_a_system_tool_around_the_helper():
    """Every test and lcai-testing helper finds optional tools through lcai_testing.tools, so each skips (with
    the install hint) without them and LCAI_TEST_HIDE_TOOLS can hide them (.ci/run's hidden-tools run)."""
    exempt = {ROOT / "plugins/lcai-testing/src/lcai_testing/tools.py", Path(__file__).resolve()}  # helper, check
    files = sorted(p for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/lcai-testing/src/**/*.py")]
                   if p not in exempt)
    assert len(files) > 50
    offenders = {str(p.relative_to(ROOT)): hits for p in files if (hits := bypasses(p.read_text(encoding="utf-8")))}
    assert offenders == {}, "use lcai_testing.tools.need()/which() instead: " + repr(offenders)


def test_the_check_sees_each_way_around_the_helper():
    bad = ('import shutil, subprocess\nfrom shutil import which\nshutil.which("redis-server")\n'
           'subprocess.run(["redis-server", "--port", "1"])\nsubprocess.Popen([*as_pg, "psql", "-c", "x"])\n'
           'subprocess.run("qemu-img create x 1M", shell=True)\nexe = "/usr/sbin/sshd"\n'
           'glob.glob("/usr/lib/postgresql/*/bin/initdb")\n')
    assert [h.split(": ", 1)[1] for h in bypasses(bad)] == [
        "from shutil import which", "shutil.which", "runs 'redis-server' by name", "runs 'psql' by name",
        "runs 'qemu-img' by name", "path '/usr/sbin/sshd'", "path '/usr/lib/postgresql/*/bin/initdb'"]
    good = ('from lcai_testing import tools\n(exe,) = tools.need("redis-server")\nsubprocess.run([exe, "--port"])\n'
            'subprocess.run(["sh", "-c", "true"])\nassert "redis-server" in doc["packages"]\n')
    assert bypasses(good) == []


def test_hidden_tools_are_not_found(monkeypatch):
    monkeypatch.delenv(tools.HIDE_ENV, raising=False)
    assert tools.which("sh") is not None
    monkeypatch.setenv(tools.HIDE_ENV, "sh, git")
    assert tools.which("sh") is None and tools.which("git") is None and tools.hidden_tools() == {"sh", "git"}
    monkeypatch.setenv(tools.HIDE_ENV, "all")
    assert tools.hidden_tools() == set(tools.TOOLS)
    assert {"redis-server", "initdb", "sshd", "qemu-system-x86_64", "mmdebstrap", "docker-registry"} <= set(tools.TOOLS)
    assert tools.which("redis-server") is None and tools.which("sh") is not None  # base tools stay


def test_tools_outside_path_are_found(monkeypatch, tmp_path):
    """PostgreSQL's server binaries live in /usr/lib/postgresql/N/bin, not on $PATH: the newest version wins."""
    monkeypatch.delenv(tools.HIDE_ENV, raising=False)  # .ci/run's hidden-tools run reruns this test too
    for version in ("9", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        exe = tmp_path / version / "bin" / "initdb"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setitem(tools._ALSO_IN, "initdb", (str(tmp_path / "*" / "bin"),))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert tools.which("initdb") == str(tmp_path / "15" / "bin" / "initdb")
    monkeypatch.setenv(tools.HIDE_ENV, "initdb")
    assert tools.which("initdb") is None


def test_each_lookup_names_its_test_in_the_tool_log(monkeypatch, tmp_path):
    log = tmp_path / "tools.log"
    monkeypatch.setenv(tools.LOG_ENV, str(log))
    tools.which("git")
    tools.which("redis-server")
    assert log.read_text().splitlines() == [os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]] * 2
    assert log.read_text().startswith("tests/testing/test_tools.py::test_each_lookup_names_its_test_in_the_tool_log")


SESSION = """\
import pytest
from lcai_testing import tools

@pytest.fixture(scope="session")
def server():
    return tools.which("git")

def test_first(server):
    pass

def test_second(server):
    pass

def test_unrelated():
    pass
"""


def test_tests_using_a_fixture_that_looked_up_a_tool_are_logged_too(tmp_path):
    """A session fixture looks the tool up once, for the first test: every test using it is logged (they are
    the ones to run again with the tool hidden)."""
    (tmp_path / "test_session.py").write_text(SESSION)
    log = tmp_path / "tools.log"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "-p", "lcai_testing.pytest_plugin", "test_session.py"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120, env={**os.environ, tools.LOG_ENV: str(log)})
    assert r.returncode == 0, r.stdout
    assert sorted(set(log.read_text().splitlines())) == ["test_session.py::test_first", "test_session.py::test_second"]


NEEDS = """\
from lcai_testing import tools

def test_hidden():
    tools.need("git", why="needs")

def test_absent():
    tools.need("lcai-no-such-tool", "git", why="needs")

def test_absent_not_in_ci():
    tools.need("lcai-no-such-tool", ci_fails=False)
"""


def outcomes(tmp_path, **env):
    (tmp_path / "test_needs.py").write_text(NEEDS)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "-p", "lcai_testing.pytest_plugin", "test_needs.py"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120, env={**{k: v for k, v in os.environ.items()
                                                          if k not in ("CI", tools.HIDE_ENV, tools.LOG_ENV)}, **env})
    return r.stdout


def test_a_missing_tool_skips_with_its_install_hint_and_fails_only_in_ci(tmp_path):
    out = outcomes(tmp_path, LCAI_TEST_HIDE_TOOLS="git")
    assert "3 skipped" in out, out
    assert "needs git (apt-get install git) [hidden by LCAI_TEST_HIDE_TOOLS]" in out
    assert "needs lcai-no-such-tool, git (apt-get install lcai-no-such-tool git)" in out
    assert "get them with: sudo apt-get install git lcai-no-such-tool" in out
    out = outcomes(tmp_path, CI="true", LCAI_TEST_HIDE_TOOLS="git")
    # under CI a really missing tool fails; one hidden on purpose skips, as does a test that never fails for it
    assert "1 failed, 2 skipped" in out and "FAILED test_needs.py::test_absent" in out, out


@pytest.mark.skipif(tools.which("git") is None, reason="needs git to show the difference")
def test_without_hiding_an_installed_tool_is_used(tmp_path):
    assert "1 passed, 2 skipped" in outcomes(tmp_path)
