"""POST /linode/instances/{id}/rebuild in the simulator, as the spec describes it: same instance and addresses, new
user data, rebuilding → booting → running, firewall kept, events recorded; faults work on it."""

import base64
import gzip
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from lcai_testing.linode.simulator import Simulator

TEMPLATE = """\
name: web
version: {version}
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: {port}
      health: {{type: http, path: {path}, initial_delay_seconds: 1}}
"""
PASS = "Aa1-aaaaaaaaaa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_data(version: str, path: str, port: int) -> str:
    from lcai_testing import render_text

    return render_text(TEMPLATE.format(version=version, path=path, port=port)).user_data_b64


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

    def wait_status(self, iid, want, timeout=5.0):
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.call("GET", f"/linode/instances/{iid}")[1]["status"]
            if not seen or seen[-1] != s:
                seen.append(s)
            if s == want:
                return seen
            time.sleep(0.01)
        raise AssertionError(f"never {want}: {seen}")

    def state_of(self, iid):
        return next(i for i in self.ctl("GET", "/_sim/state")[1]["instances"] if i["id"] == iid)


@pytest.fixture
def api():
    s = Simulator(provision_s=0.15, boot_s=0.15, app_ready_s=0.05, tick_s=0.02).start()
    yield Client(s)
    s.stop()
    assert s.state.internal_errors == []  # no simulator bug answered a 500


def http_status(ip, port, path):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_http(ip, port, path, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(ip, port, path) == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"http://{ip}:{port}{path} never answered {want}")


@pytest.fixture
def live(api):
    """A running instance with a firewall, a private IP and v1 user data (health on /v1/health)."""
    port = free_port()
    rule = {"action": "ACCEPT", "protocol": "TCP", "ports": str(port), "addresses": {"ipv4": ["0.0.0.0/0"]}}
    fw = api.call("POST", "/networking/firewalls", {"label": "lcai-fw-rebuild", "rules": {
        "inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [rule]}})[1]
    status, inst = api.call("POST", "/linode/instances", {
        "type": "g6-nanode-1", "region": "us-ord", "image": "linode/ubuntu22.04", "root_pass": PASS,
        "label": "lcai-web-default-rb1", "firewall_id": fw["id"], "private_ip": True,
        "metadata": {"user_data": user_data("1.0.0", "/v1/health", port)}})
    assert status == 200, inst
    api.wait_status(inst["id"], "running")
    wait_http(inst["ipv4"][0], port, "/v1/health", 200)
    return inst, fw, port


def test_rebuild_keeps_the_instance_and_replaces_the_user_data(api, live):
    inst, fw, port = live
    ip = inst["ipv4"][0]
    new = user_data("2.0.0", "/v2/health", port)
    status, body = api.call("POST", f"/linode/instances/{inst['id']}/rebuild", {
        "image": "linode/ubuntu24.04", "root_pass": PASS, "metadata": {"user_data": new}})
    assert status == 200 and body["id"] == inst["id"] and body["status"] == "rebuilding"
    assert body["ipv4"] == inst["ipv4"] and body["image"] == "linode/ubuntu24.04" and body["label"] == inst["label"]
    assert http_status(ip, port, "/v1/health") is None  # the machine is being rebuilt: nothing answers
    seen = api.wait_status(inst["id"], "running")
    assert seen[0] == "rebuilding" and set(seen) <= {"rebuilding", "booting", "running"}  # polls may skip a phase
    wait_http(ip, port, "/v2/health", 200)
    assert http_status(ip, port, "/v1/health") == 404  # the old version's path is gone
    st = api.state_of(inst["id"])
    assert st["user_data"] == new and st["private_ip"] == inst["ipv4"][1]
    assert "template web 2.0.0" in gzip.decompress(base64.b64decode(st["user_data"])).decode()
    assert [e["id"] for e in api.call("GET", f"/networking/firewalls/{fw['id']}")[1]["entities"]] == [inst["id"]]
    events = [(e["action"], e["status"]) for e in reversed(api.call("GET", "/account/events")[1]["data"])
              if e["entity"]["id"] == inst["id"]]
    assert events[-4:] == [("linode_rebuild", "started"), ("linode_rebuild", "finished"),
                           ("linode_boot", "started"), ("linode_boot", "finished")]


def test_rebuild_without_metadata_keeps_the_user_data_and_booted_false_stays_offline(api, live):
    inst, _, port = live
    before = api.state_of(inst["id"])["user_data"]
    status, _ = api.call("POST", f"/linode/instances/{inst['id']}/rebuild",
                         {"image": "linode/ubuntu24.04", "root_pass": PASS, "booted": False})
    assert status == 200
    seen = api.wait_status(inst["id"], "offline")
    assert set(seen) <= {"rebuilding", "offline"} and "running" not in seen
    assert api.state_of(inst["id"])["user_data"] == before
    assert http_status(inst["ipv4"][0], port, "/v1/health") is None


@pytest.mark.parametrize("body,field", [
    ({"root_pass": PASS}, "image"), ({"image": "linode/nope", "root_pass": PASS}, "image"),
    ({"image": "linode/ubuntu24.04"}, "root_pass"),
    ({"image": "linode/ubuntu24.04", "root_pass": "short"}, "root_pass"),
    ({"image": "linode/ubuntu24.04", "root_pass": PASS, "authorized_keys": ["ssh-ed25519 nope"]}, "authorized_keys"),
    ({"image": "linode/ubuntu24.04", "root_pass": PASS, "metadata": {"user_data": "not base64!"}},
     "metadata.user_data"),
    ({"image": "linode/ubuntu24.04", "root_pass": PASS,
      "metadata": {"user_data": base64.b64encode(b"x" * 65536).decode()}}, "metadata.user_data"),
    ({"image": "linode/ubuntu20.04", "root_pass": PASS, "metadata": {"user_data": "e30="}}, "metadata"),
    ({"image": "linode/ubuntu24.04", "root_pass": PASS, "booted": "yes"}, "booted"),
    ({"image": "linode/ubuntu24.04", "root_pass": PASS, "type": "g9-huge"}, "type"),
])
def test_rebuild_validation_changes_nothing(api, live, body, field):
    inst, _, _ = live
    before = api.state_of(inst["id"])
    status, err = api.call("POST", f"/linode/instances/{inst['id']}/rebuild", body)
    assert status == 400 and field in [e.get("field") for e in err["errors"]], err
    after = api.state_of(inst["id"])
    assert (after["status"], after["image"], after["user_data"]) == ("running", before["image"], before["user_data"])


def test_rebuild_busy_and_missing(api, live):
    inst, _, _ = live
    body = {"image": "linode/ubuntu24.04", "root_pass": PASS}
    assert api.call("POST", f"/linode/instances/{inst['id']}/rebuild", body)[0] == 200
    assert api.call("POST", f"/linode/instances/{inst['id']}/rebuild", body) == \
        (400, {"errors": [{"reason": "Linode busy."}]})
    assert api.call("POST", "/linode/instances/123/rebuild", body) == (404, {"errors": [{"reason": "Not found"}]})


def test_faults_on_rebuild(api, live):
    inst, _, port = live
    path = f"/linode/instances/{inst['id']}/rebuild"
    new = user_data("3.0.0", "/v3/health", port)
    body = {"image": "linode/ubuntu24.04", "root_pass": PASS, "metadata": {"user_data": new}}
    api.ctl("POST", "/_sim/faults", [{"method": "POST", "path": "/rebuild$", "status": 400,
                                     "reason": "Linode busy.", "times": 1}])
    assert api.call("POST", path, body) == (400, {"errors": [{"reason": "Linode busy."}]})
    assert api.state_of(inst["id"])["status"] == "running"  # refused before anything happened
    api.ctl("POST", "/_sim/faults", [{"method": "POST", "path": "/rebuild$", "status": 502, "when": "after"}])
    assert api.call("POST", path, body)[0] == 502
    st = api.state_of(inst["id"])  # the reply was lost, but the rebuild happened
    assert st["status"] == "rebuilding" and st["user_data"] == new
    api.wait_status(inst["id"], "running")
    api.ctl("POST", "/_sim/faults", [{"method": "POST", "path": "/rebuild$", "action": "reset"}])
    with pytest.raises(OSError):
        api.call("POST", path, body)
    assert api.ctl("GET", "/_sim/state")[1]["faults_left"] == 0


def test_rebuild_through_linode_api4(api, live):
    from linode_api4 import Instance, LinodeClient

    inst, _, port = live
    client = LinodeClient("sim-token", base_url=api.url, retry=False)
    obj = client.load(Instance, inst["id"])
    new = user_data("4.0.0", "/v4/health", port)
    assert obj.rebuild("linode/ubuntu24.04", root_pass=PASS, metadata={"user_data": new}) is True
    assert obj.status == "rebuilding" and obj.ipv4 == inst["ipv4"]
    api.wait_status(inst["id"], "running")
    wait_http(inst["ipv4"][0], port, "/v4/health", 200)
