"""The generated health-wait script, run for real against a loopback HTTP server and a closed port."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lcai_core.testing import render_text

TPL = """\
name: health-test
deploy:
  linode:
    container:
      image: nginx:1.27
      internal_port: {port}
      health: {{type: {kind}, path: /ready, max_retries: 2, interval_seconds: 1, timeout_seconds: 2}}
"""


def script(tmp_path, port, kind="http"):
    r = render_text(TPL.format(port=port, kind=kind))
    text = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("health-wait"))
    text = text.replace("/var/lib/lcai", str(tmp_path))
    p = tmp_path / "health-wait"
    p.write_text(text)
    p.chmod(0o755)
    return p


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


def test_http_healthy(tmp_path, server):
    srv, _ = server
    r = subprocess.run([script(tmp_path, srv.server_port)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    state = json.loads((tmp_path / "health.json").read_text())
    assert state["state"] == "healthy" and state["attempt"] == 1


def test_http_wrong_status_is_unhealthy_after_max_retries(tmp_path, server):
    srv, handler = server
    handler.code = 503
    r = subprocess.run([script(tmp_path, srv.server_port)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "unhealthy after 2 attempts: HTTP 503 from /ready" in r.stderr
    state = json.loads((tmp_path / "health.json").read_text())
    assert state["state"] == "unhealthy" and state["max_retries"] == 2


def test_tcp_closed_port_is_unhealthy(tmp_path, server):
    srv, _ = server
    port = srv.server_port
    srv.shutdown()
    srv.server_close()
    r = subprocess.run([script(tmp_path, port, "tcp")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no TCP connection" in r.stderr
