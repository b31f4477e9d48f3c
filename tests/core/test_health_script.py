"""The generated health-wait script, run for real (bash, curl) against a loopback HTTP server and a closed
port. systemd and Docker are replaced by small fakes on PATH that answer what the script asks them —
``systemctl show -p NRestarts|ActiveState|ExecMainStatus|Requires``, ``systemctl is-failed`` and
``docker inspect -f '{{.State.Running}}'`` — from files the test changes while the script runs."""

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lcai_testing import render_text

TPL = """\
name: health-test
deploy:
  linode:
    container:
      image: nginx:1.27
      internal_port: {port}
      health: {{type: {kind}, path: /ready, max_retries: 2, interval_seconds: 1, timeout_seconds: 2{extra}}}
"""

FAKE_SYSTEMCTL = """#!/bin/sh
# fake systemctl: state from files in $FAKE
if [ "$1" = show ]; then cat "$FAKE/$3" 2>/dev/null; exit 0; fi
if [ "$1" = is-failed ]; then grep -qxF "$3" "$FAKE/failed" 2>/dev/null; exit $?; fi
exit 1
"""
FAKE_DOCKER = """#!/bin/sh
# fake docker inspect: the container runs when $FAKE/running says true
[ "$1" = inspect ] && cat "$FAKE/running"
"""


class Machine:
    """The fake machine's state: the app unit as systemd reports it, the container as Docker does."""

    def __init__(self, d):
        self.d = d
        self.set(NRestarts="0", ActiveState="active", ExecMainStatus="0", Requires="docker.service", running="true")

    def set(self, **kv):
        for k, v in kv.items():
            (self.d / k).write_text(v + "\n")


@pytest.fixture
def machine(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("docker", FAKE_DOCKER)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    m = Machine(fake)
    m.env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE": str(fake), "LCAI_START_GRACE": "3"}
    return m


def script(tmp_path, port, kind="http", extra=""):
    r = render_text(TPL.format(port=port, kind=kind, extra=extra))
    text = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("health-wait"))
    text = text.replace("/var/lib/lcai", str(tmp_path))
    p = tmp_path / "health-wait"
    p.write_text(text)
    p.chmod(0o755)
    return p


def state(tmp_path):
    return json.loads((tmp_path / "health.json").read_text())


@pytest.fixture
def server():
    class H(BaseHTTPRequestHandler):
        code = 200

        def do_GET(self):
            self.send_response(H.code if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, H
    srv.shutdown()


def run(path, machine, timeout=30):
    return subprocess.run([path], capture_output=True, text=True, timeout=timeout, env=machine.env)


def test_http_healthy(tmp_path, server, machine):
    srv, _ = server
    r = run(script(tmp_path, srv.server_port), machine)
    assert r.returncode == 0, r.stderr
    s = state(tmp_path)
    assert s["state"] == "healthy" and s["attempt"] == 1 and s["restarts"] == 0


def test_http_wrong_status_is_unhealthy_after_max_retries(tmp_path, server, machine):
    srv, handler = server
    handler.code = 503
    r = run(script(tmp_path, srv.server_port), machine)
    assert r.returncode == 1 and "lcai: app unhealthy: HTTP 503 from /ready (after 2 attempts)" in r.stderr
    s = state(tmp_path)
    assert s["state"] == "unhealthy" and s["max_retries"] == 2 and "HTTP 503" in s["detail"]


def test_tcp_closed_port_is_unhealthy(tmp_path, server, machine):
    srv, _ = server
    port = srv.server_port
    srv.shutdown()
    srv.server_close()
    r = run(script(tmp_path, port, "tcp"), machine)
    assert r.returncode == 1 and "no TCP connection" in r.stderr


def test_crash_loop_is_unhealthy_with_the_reason(tmp_path, server, machine):
    """The app restarts faster than the initial delay: reported unhealthy, naming the restarts and the exit
    status, instead of "waiting" forever (the old unit Required the app, so each crash restarted the wait)."""
    srv, handler = server
    handler.code = 503
    path = script(tmp_path, srv.server_port, extra=", initial_delay_seconds: 3600, max_restarts: 3")
    machine.set(ExecMainStatus="1")
    stop = threading.Event()

    def crash_loop():
        n = 0
        while not stop.wait(0.3):
            n += 1
            machine.set(NRestarts=str(n))

    t = threading.Thread(target=crash_loop, daemon=True)
    t.start()
    try:
        r = run(path, machine)
    finally:
        stop.set()
    assert r.returncode == 1
    s = state(tmp_path)
    assert s["state"] == "unhealthy" and s["restarts"] >= 3
    assert s["detail"].startswith("crash loop: the app restarted") and "last exit status 1" in s["detail"]


def test_restarts_before_the_wait_do_not_count(tmp_path, server, machine):
    srv, _ = server
    machine.set(NRestarts="7")  # e.g. restarts while a dependency came up, before the health unit started
    r = run(script(tmp_path, srv.server_port, extra=", max_restarts: 3"), machine)
    assert r.returncode == 0 and state(tmp_path)["restarts"] == 0


def test_app_not_running_names_the_failed_dependency(tmp_path, server, machine):
    srv, _ = server
    machine.set(ActiveState="inactive", Requires="docker.service lcai-setup.service")
    (machine.d / "failed").write_text("lcai-setup.service\n")
    r = run(script(tmp_path, srv.server_port), machine)
    assert r.returncode == 1
    s = state(tmp_path)
    assert s["state"] == "unhealthy" and "lcai-setup.service failed" in s["detail"]


def test_clock_starts_when_the_container_runs(tmp_path, server, machine):
    """While the container is not running yet (docker run still starting it), no attempt is made and no
    failure counted; once it runs, the checks start."""
    srv, _ = server
    machine.set(running="false")
    path = script(tmp_path, srv.server_port)
    proc = subprocess.Popen([path], env=machine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    s = state(tmp_path)
    assert s["state"] == "waiting" and s["attempt"] == 0 and "starting" in s["detail"]
    machine.set(running="true")
    assert proc.wait(timeout=20) == 0
    assert state(tmp_path)["state"] == "healthy"


def test_container_that_never_runs_is_unhealthy(tmp_path, server, machine):
    srv, _ = server
    machine.set(running="false", ActiveState="activating")
    r = run(script(tmp_path, srv.server_port), machine)
    assert r.returncode == 1 and "did not get running within 3s" in state(tmp_path)["detail"]


def test_detail_with_quotes_stays_valid_json(tmp_path, server, machine):
    srv, _ = server
    machine.set(ActiveState="failed", Requires='x"y\\z.service')
    (machine.d / "failed").write_text('x"y\\z.service\n')
    run(script(tmp_path, srv.server_port), machine)
    assert state(tmp_path)["state"] == "unhealthy"
