"""The simulated app answers exactly the template's health check, read from the user data lcai renders; tests
can make it unhealthy, crash it and bring it back through /_sim/instances/{id}/app."""

import base64
import gzip
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from lcai_testing.linode.sim_health import health_settings
from lcai_testing.linode.simulator import Simulator

TEMPLATE = """\
name: web
version: 1.2.0
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    region_default: us-ord
    type_default: g6-standard-2
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: {port}
{health}
"""
HTTP = "      health: {type: http, path: /healthz, success_codes: [204, 200], initial_delay_seconds: 1}"
TCP = "      health: {type: tcp, initial_delay_seconds: 1}"
EXEC = "      health: {type: exec, command: 'test -e /tmp/ok', initial_delay_seconds: 1}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rendered_b64(health: str, port: int) -> str:
    """User data exactly as `lcai deploy` sends it (the real renderer; base64(gzip(cloud-config)))."""
    from lcai_testing import render_text

    return render_text(TEMPLATE.format(port=port, health=health)).user_data_b64


def b64(text: str, gz: bool = True) -> str:
    raw = text.encode()
    return base64.b64encode(gzip.compress(raw) if gz else raw).decode()


class Client:
    def __init__(self, sim: Simulator):
        self.sim, self.url, self.base = sim, sim.url, sim.url[:-3]

    def _req(self, method, url, body=None, headers=None):
        req = urllib.request.Request(url, method=method, headers={"Content-Type": "application/json",
                                                                  **(headers or {})},
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def call(self, method, path, body=None):
        return self._req(method, self.url + path, body, {"Authorization": "Bearer sim-token"})

    def ctl(self, method, path, body=None):
        return self._req(method, self.base + path, body)

    def create(self, user_data_b64, **extra):
        status, inst = self.call("POST", "/linode/instances", {
            "type": "g6-nanode-1", "region": "us-ord", "image": "linode/ubuntu24.04", "root_pass": "Aa1-aaaaaaaaaa",
            "metadata": {"user_data": user_data_b64}, **extra})
        assert status == 200, inst
        return inst

    def wait_app(self, iid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app = self.ctl("GET", f"/_sim/instances/{iid}/app")[1]
            if app["listening"]:
                return app
            time.sleep(0.02)
        raise AssertionError(f"app of {iid} never listened: {app}")


@pytest.fixture
def api():
    s = Simulator(provision_s=0.3, boot_s=0.05, app_ready_s=0.05, tick_s=0.02).start()
    yield Client(s)
    s.stop()
    assert s.state.internal_errors == []  # no simulator bug answered a 500


def get(ip, port, path, timeout=2.0):
    """(status, body) of GET http://ip:port/path, or None when the connection is refused/closed."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def tcp_open(ip, port) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------ reading the user data lcai renders

def test_settings_from_the_rendered_http_check():
    port = free_port()
    s = health_settings(rendered_b64(HTTP, port))
    assert (s.type, s.port, s.path, s.codes, s.public_ports) == ("http", port, "/healthz", [204, 200], [port])


def test_settings_from_the_rendered_tcp_and_exec_checks_and_none():
    port = free_port()
    s = health_settings(rendered_b64(TCP, port))
    assert (s.type, s.port, s.public_ports) == ("tcp", port, [port])
    s = health_settings(rendered_b64(EXEC, port))
    assert (s.type, s.port, s.public_ports) == ("exec", None, [port])
    s = health_settings(rendered_b64("", port))
    assert (s.type, s.public_ports) == (None, [port])


PRIVATE = """\
name: web
version: 1.0.0
capabilities:
  runtime: {runtime}
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
{container}
      internal_port: {port}
{external}
      health: {{type: http, path: /healthz}}
"""


def test_a_port_not_published_is_not_reachable_from_outside():
    from lcai_testing import render_text

    port = free_port()
    docker = render_text(PRIVATE.format(runtime="docker", container="      image: nginx:1.27", port=port,
                                        external=""))
    s = health_settings(docker.user_data_b64)
    assert (s.type, s.port, s.public_ports) == ("http", port, [])  # published on the instance's 127.0.0.1 only
    native = render_text(PRIVATE.format(runtime="native", container=f"      command: python3 -m http.server {port}",
                                        port=port, external=f"      external_port: {port}"))
    s = health_settings(native.user_data_b64)
    assert (s.type, s.port, s.public_ports) == ("http", port, [port])  # a host process binds every address


SCRIPT = """#!/bin/bash
# lcai health wait
probe() {
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 'http://127.0.0.1:8123/v1/health?deep=1&x=a b' \
2>/dev/null) || code=000
  case "$code" in 200|301) return 0 ;; esac
}
"""
UNIT = "[Service]\nExecStart=/usr/bin/docker run --rm --name app -p 8123:80 -p 127.0.0.1:9000:9000 nginx\n"


@pytest.mark.parametrize("encoding", [None, "b64", "gz+b64", "gzip+base64"])
def test_settings_from_any_write_files_encoding(encoding):
    def enc(text):
        if encoding is None:
            return text
        raw = gzip.compress(text.encode()) if encoding.startswith("gz") else text.encode()
        return base64.b64encode(raw).decode()

    files = [{"path": "/usr/local/lib/lcai/health-wait", "content": enc(SCRIPT)},
             {"path": "/etc/systemd/system/lcai-app.service", "content": enc(UNIT)}]
    if encoding:
        for f in files:
            f["encoding"] = encoding
    doc = "#cloud-config\n" + json.dumps({"write_files": files})  # JSON is YAML
    s = health_settings(b64(doc, gz=encoding != "b64"))
    assert (s.type, s.port, s.path, s.codes) == ("http", 8123, "/v1/health?deep=1&x=a b", [200, 301])
    assert s.public_ports == [8123]  # 127.0.0.1:9000 is not published on the public address


def test_settings_from_mime_multipart_user_data():
    doc = "#cloud-config\n" + json.dumps({"write_files": [{"path": "/usr/local/lib/lcai/health-wait",
                                                          "content": SCRIPT}]})
    mime = ('Content-Type: multipart/mixed; boundary="XX"\nMIME-Version: 1.0\n\n--XX\n'
            'Content-Type: text/cloud-config; charset="us-ascii"\n\n' + doc + "\n--XX--\n")
    s = health_settings(b64(mime))
    assert (s.type, s.port, s.path) == ("http", 8123, "/v1/health?deep=1&x=a b")


def test_no_settings_from_garbage():
    for ud in (None, "", "!!notbase64", b64("#!/bin/sh\necho hi\n"), b64("#cloud-config\nruncmd: [ls]\n")):
        s = health_settings(ud)
        assert s.type is None and s.public_ports == [] and s.source == "none"


# ------------------------------------------------------------------ the app answers as the template says

def test_only_the_health_path_answers_with_the_templates_code(api):
    port = free_port()
    inst = api.create(rendered_b64(HTTP, port))
    ip = inst["ipv4"][0]
    assert get(ip, port, "/healthz") is None  # provisioning: nothing listens
    api.wait_app(inst["id"])
    assert get(ip, port, "/healthz")[0] == 204  # the first success code of the template
    for other in ("/", "/health", "/healthz/", "/healthz?x=1", "/favicon.ico"):
        assert get(ip, port, other)[0] == 404, other


def test_unhealthy_crash_restart_and_recover(api):
    port = free_port()
    inst = api.create(rendered_b64(HTTP, port))
    ip, iid = inst["ipv4"][0], inst["id"]
    api.wait_app(iid)
    status, app = api.ctl("POST", f"/_sim/instances/{iid}/app", {"state": "unhealthy"})
    assert status == 200 and app["state"] == "unhealthy"
    assert get(ip, port, "/healthz")[0] == 503
    assert api.ctl("POST", f"/_sim/instances/{iid}/app", {"state": "crashed"})[1]["crashes"] == 1
    deadline = time.monotonic() + 2
    while tcp_open(ip, port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not tcp_open(ip, port)  # a crashed app refuses connections
    api.ctl("POST", f"/_sim/instances/{iid}/app", {"state": "healthy"})
    api.wait_app(iid)
    assert get(ip, port, "/healthz")[0] == 204
    # a crash that Restart=always recovers from
    t0 = time.monotonic()
    api.ctl("POST", f"/_sim/instances/{iid}/app", {"state": "crashed", "restart_after_s": 1.0})
    assert get(ip, port, "/healthz") is None
    while get(ip, port, "/healthz") is None:
        assert time.monotonic() - t0 < 5
        time.sleep(0.02)
    assert get(ip, port, "/healthz")[0] == 204 and time.monotonic() - t0 >= 1.0  # restarted, not before
    assert api.ctl("GET", "/_sim/state")[1]["instances"][0]["app"]["crashes"] == 2


def test_tcp_app_listens_only_while_healthy(api):
    port = free_port()
    inst = api.create(rendered_b64(TCP, port))
    ip, iid = inst["ipv4"][0], inst["id"]
    assert not tcp_open(ip, port)
    api.wait_app(iid)
    assert tcp_open(ip, port)
    api.ctl("POST", f"/_sim/instances/{iid}/app", {"state": "unhealthy"})
    deadline = time.monotonic() + 3  # the clock closes the listener within a tick
    while tcp_open(ip, port):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_stopped_instance_serves_nothing(api):
    port = free_port()
    inst = api.create(rendered_b64(HTTP, port))
    ip, iid = inst["ipv4"][0], inst["id"]
    api.wait_app(iid)
    assert api.call("POST", f"/linode/instances/{iid}/shutdown", {})[0] == 200
    time.sleep(0.2)
    assert get(ip, port, "/healthz") is None


def test_explicit_hint_and_bad_control_requests(api):
    inst = api.create(b64("#cloud-config\n"))
    port = free_port()
    status, app = api.ctl("POST", f"/_sim/instances/{inst['id']}/app",
                          {"health": {"type": "http", "port": port, "path": "/ready", "codes": [200]}})
    assert status == 200 and app["settings"]["source"] == "hint"
    api.wait_app(inst["id"])
    assert get(inst["ipv4"][0], port, "/ready")[0] == 200 and get(inst["ipv4"][0], port, "/")[0] == 404
    for body in ({"state": "sleepy"}, {"health": {"type": "udp"}}, {"health": {"port": 70000}}, [1]):
        status, err = api.ctl("POST", f"/_sim/instances/{inst['id']}/app", body)
        assert status == 400 and err["errors"][0]["reason"], body
    assert api.ctl("POST", "/_sim/instances/999/app", {"state": "healthy"})[0] == 404


def test_app_rules_make_a_new_version_unhealthy_from_boot(api):
    port = free_port()
    status, _ = api.ctl("POST", "/_sim/app-rules", [{"match": "template web 1.3.0", "state": "unhealthy"}])
    assert status == 200
    old = api.create(rendered_b64(HTTP, port))
    new_ud = rendered_b64(HTTP, port)
    assert "template web 1.2.0" in gzip.decompress(base64.b64decode(new_ud)).decode()
    api.wait_app(old["id"])
    assert get(old["ipv4"][0], port, "/healthz")[0] == 204
    text = gzip.decompress(base64.b64decode(new_ud)).decode().replace("template web 1.2.0", "template web 1.3.0")
    bad = api.create(b64(text))
    api.wait_app(bad["id"])
    assert get(bad["ipv4"][0], port, "/healthz")[0] == 503
    assert api.ctl("DELETE", "/_sim/app-rules")[0] == 200


def test_with_a_client_ip_the_firewall_decides_who_the_app_answers(api):
    port = free_port()
    rules = {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [
        {"action": "ACCEPT", "protocol": "TCP", "ports": "22", "addresses": {"ipv4": ["0.0.0.0/0"]}},
        {"action": "ACCEPT", "protocol": "TCP", "ports": str(port), "addresses": {"ipv4": ["198.51.100.0/24"]}}]}
    status, fw = api.call("POST", "/networking/firewalls", {"label": "lcai-fw-client", "rules": rules})
    inst = api.create(rendered_b64(HTTP, port), firewall_id=fw["id"])
    ip = inst["ipv4"][0]
    api.wait_app(inst["id"])
    assert get(ip, port, "/healthz")[0] == 204  # no client_ip: every request passes (the default)
    assert api.ctl("POST", "/_sim/settings", {"client_ip": "203.0.113.7"})[1]["client_ip"] == "203.0.113.7"
    assert get(ip, port, "/healthz") is None  # the firewall drops this machine
    api.ctl("POST", "/_sim/settings", {"client_ip": "198.51.100.20"})
    assert get(ip, port, "/healthz")[0] == 204
    assert api.ctl("POST", "/_sim/settings", {"client_ip": "banana"})[0] == 400
    api.ctl("POST", "/_sim/settings", {"client_ip": None})
    assert get(ip, port, "/healthz")[0] == 204
