"""NodeBalancers in the simulator, as the spec describes them; node status follows each replica's real health
(through its private IPv4 and its Cloud Firewall, from 192.168.255.0/24)."""

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from lcai_testing.linode.simulator import Simulator

TEMPLATE = """\
name: web
version: 1.0.0
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: {port}
      health: {{type: http, path: /healthz, initial_delay_seconds: 1}}
"""
PASS = "Aa1-aaaaaaaaaa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def call(self, method, path, body=None, xfilter=None):
        h = {"Authorization": "Bearer sim-token"}
        if xfilter is not None:
            h["X-Filter"] = json.dumps(xfilter)
        return self._req(method, self.url + path, body, h)

    def ok(self, method, path, body=None):
        status, out = self.call(method, path, body)
        assert status == 200, (method, path, out)
        return out

    def ctl(self, method, path, body=None):
        return self._req(method, self.base + path, body)


@pytest.fixture
def api():
    s = Simulator(provision_s=0.05, boot_s=0.05, app_ready_s=0.02, tick_s=0.02).start()
    yield Client(s)
    s.stop()
    assert s.state.internal_errors == []  # no simulator bug answered a 500


def app_rule(port):
    return {"action": "ACCEPT", "protocol": "TCP", "ports": str(port), "addresses": {"ipv4": ["192.168.255.0/24"]}}


@pytest.fixture
def replicas(api):
    """Three running replicas with private IPs behind one firewall that lets NodeBalancers reach the app port."""
    from lcai_testing import render_text

    port = free_port()
    ud = render_text(TEMPLATE.format(port=port)).user_data_b64
    fw = api.ok("POST", "/networking/firewalls", {"label": "lcai-fw-rep", "rules": {
        "inbound_policy": "DROP", "outbound_policy": "ACCEPT",
        "inbound": [{"action": "ACCEPT", "protocol": "TCP", "ports": "22", "addresses": {"ipv4": ["0.0.0.0/0"]}},
                    app_rule(port)]}})
    insts = [api.ok("POST", "/linode/instances", {
        "type": "g6-nanode-1", "region": "us-ord", "image": "linode/ubuntu24.04", "root_pass": PASS,
        "label": f"lcai-web-default-rep-{k}", "private_ip": True, "firewall_id": fw["id"],
        "metadata": {"user_data": ud}}) for k in range(3)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        apps = [i["app"] for i in api.ctl("GET", "/_sim/state")[1]["instances"]]
        if all(a["listening"] for a in apps):
            break
        time.sleep(0.02)
    return insts, fw, port


def nb_with_nodes(api, insts, app_port, **config):
    cfg = {"port": 80, "protocol": "http", "check": "http", "check_path": "/healthz", "check_interval": 5,
           "check_timeout": 3, "check_attempts": 2, **config,
           "nodes": [{"label": f"rep-{k}", "address": f"{i['ipv4'][1]}:{app_port}"} for k, i in enumerate(insts)]}
    return api.ok("POST", "/nodebalancers", {"region": "us-ord", "label": "lcai-nb-web", "tags": ["lcai", "lcai-id:x1"],
                                             "client_conn_throttle": 5, "configs": [cfg]})


def nodes_of(api, nb):
    cfg = api.ok("GET", f"/nodebalancers/{nb['id']}/configs")["data"][0]
    return cfg, api.ok("GET", f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes")["data"]


def test_types_have_the_price(api):
    types = api.ok("GET", "/nodebalancers/types")
    assert set(types) == {"data", "page", "pages", "results"}
    nb = types["data"][0]
    assert nb["id"] == "nodebalancer" and nb["price"] == {"hourly": 0.015, "monthly": 10.0}
    assert {"id": "br-gru", "hourly": 0.018, "monthly": 12.0} in nb["region_prices"]


def test_nodes_follow_the_replicas_health(api, replicas):
    insts, _, port = replicas
    nb = nb_with_nodes(api, insts, port)
    assert set(nb) >= {"id", "label", "region", "hostname", "ipv4", "ipv6", "client_conn_throttle", "tags",
                       "created", "updated", "transfer"} and nb["client_conn_throttle"] == 5
    cfg, nodes = nodes_of(api, nb)
    assert cfg["nodes_status"] == {"up": 3, "down": 0} and [n["status"] for n in nodes] == ["UP"] * 3
    assert nodes[0]["mode"] == "accept" and nodes[0]["weight"] == 100 and nodes[0]["config_id"] == cfg["id"]
    victim = insts[1]["id"]
    api.ctl("POST", f"/_sim/instances/{victim}/app", {"state": "unhealthy"})
    cfg, nodes = nodes_of(api, nb)
    assert [n["status"] for n in nodes] == ["UP", "DOWN", "UP"] and cfg["nodes_status"] == {"up": 2, "down": 1}
    api.ctl("POST", f"/_sim/instances/{victim}/app", {"state": "crashed"})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["UP", "DOWN", "UP"]
    api.ctl("POST", f"/_sim/instances/{victim}/app", {"state": "healthy"})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["UP"] * 3
    # a rebuilding replica is DOWN until its new app is up
    api.ok("POST", f"/linode/instances/{victim}/rebuild", {"image": "linode/ubuntu24.04", "root_pass": PASS})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["UP", "DOWN", "UP"]
    api.ok("DELETE", f"/linode/instances/{insts[2]['id']}")
    assert nodes_of(api, nb)[1][2]["status"] == "DOWN"


def test_check_types(api, replicas):
    insts, _, port = replicas
    api.ctl("POST", f"/_sim/instances/{insts[0]['id']}/app", {"state": "unhealthy"})
    nb = nb_with_nodes(api, insts, port, check="connection")
    cfg, nodes = nodes_of(api, nb)
    assert [n["status"] for n in nodes] == ["UP"] * 3  # unhealthy but still accepting connections
    base = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}"
    api.ok("PUT", base, {"check": "http", "check_path": "/"})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["DOWN"] * 3  # "/" answers 404 on every replica
    api.ok("PUT", base, {"check": "http_body", "check_path": "/healthz", "check_body": '"status": "ok"'})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["DOWN", "UP", "UP"]
    api.ok("PUT", base, {"check_body": "never-there"})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["DOWN"] * 3


def test_the_firewall_must_let_the_nodebalancer_in(api, replicas):
    insts, fw, port = replicas
    nb = nb_with_nodes(api, insts, port)
    ssh_only = {"inbound_policy": "DROP", "outbound_policy": "ACCEPT",
                "inbound": [{"action": "ACCEPT", "protocol": "TCP", "ports": "22",
                             "addresses": {"ipv4": ["0.0.0.0/0"]}}]}
    api.ok("PUT", f"/networking/firewalls/{fw['id']}/rules", ssh_only)
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["DOWN"] * 3
    wrong_range = {**ssh_only, "inbound": ssh_only["inbound"] + [
        {**app_rule(port), "addresses": {"ipv4": ["192.168.128.0/24", "203.0.113.0/24"]}}]}
    api.ok("PUT", f"/networking/firewalls/{fw['id']}/rules", wrong_range)
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["DOWN"] * 3
    api.ok("PUT", f"/networking/firewalls/{fw['id']}/rules",
           {**ssh_only, "inbound": ssh_only["inbound"] + [app_rule(port)]})
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["UP"] * 3
    api.ok("PUT", f"/networking/firewalls/{fw['id']}", {"status": "disabled"})
    api.ok("PUT", f"/networking/firewalls/{fw['id']}/rules", ssh_only)
    assert [n["status"] for n in nodes_of(api, nb)[1]] == ["UP"] * 3  # a disabled firewall filters nothing


def test_nodes_crud_modes_and_listing(api, replicas):
    insts, _, port = replicas
    nb = api.ok("POST", "/nodebalancers", {"region": "us-ord"})
    assert nb["label"] == f"balancer{nb['id']}" and nb["tags"] == [] and nb["client_conn_throttle"] == 0
    cfg = api.ok("POST", f"/nodebalancers/{nb['id']}/configs", {"port": 8080, "protocol": "tcp",
                                                                "check": "connection"})
    assert (cfg["algorithm"], cfg["stickiness"], cfg["check_interval"], cfg["check_timeout"],
            cfg["check_attempts"], cfg["ssl_cert"], cfg["nodes_status"]) == ("roundrobin", "none", 31, 30, 3, None,
                                                                            {"up": 0, "down": 0})
    base = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes"
    node = api.ok("POST", base, {"label": "rep-0", "address": f"{insts[0]['ipv4'][1]}:{port}", "weight": 50})
    assert node["status"] == "UP" and node["weight"] == 50 and node["nodebalancer_id"] == nb["id"]
    drained = api.ok("PUT", f"{base}/{node['id']}", {"mode": "drain"})
    assert drained["mode"] == "drain" and drained["status"] == "UP"
    assert api.ok("GET", f"{base}/{node['id']}")["mode"] == "drain"
    assert api.call("POST", base, {"label": "dup", "address": node["address"]})[0] == 400
    assert api.ok("GET", f"/linode/instances/{insts[0]['id']}/nodebalancers")["data"][0]["id"] == nb["id"]
    assert api.ok("GET", f"/linode/instances/{insts[1]['id']}/nodebalancers")["data"] == []
    assert api.ok("DELETE", f"{base}/{node['id']}") == {}
    assert api.call("GET", f"{base}/{node['id']}")[0] == 404
    assert api.ok("DELETE", f"/nodebalancers/{nb['id']}/configs/{cfg['id']}") == {}
    assert api.ok("GET", f"/nodebalancers/{nb['id']}/configs")["results"] == 0


def test_update_list_filter_delete(api):
    fw = api.ok("POST", "/networking/firewalls", {"label": "lcai-fw-nb", "rules": {
        "inbound_policy": "ACCEPT", "outbound_policy": "ACCEPT"}})
    a = api.ok("POST", "/nodebalancers", {"region": "us-ord", "label": "lcai-nb-a", "tags": ["lcai", "lcai-id:aaa"],
                                          "firewall_id": fw["id"]})
    b = api.ok("POST", "/nodebalancers", {"region": "us-mia", "label": "lcai-nb-b", "tags": ["lcai", "lcai-id:bbb"]})
    assert api.ok("GET", f"/nodebalancers/{a['id']}/firewalls")["data"][0]["id"] == fw["id"]
    status, body = api.call("GET", "/nodebalancers", xfilter={"tags": "lcai-id:bbb"})
    assert status == 200 and [n["id"] for n in body["data"]] == [b["id"]]
    assert [n["id"] for n in api.call("GET", "/nodebalancers", xfilter={"label": "lcai-nb-a"})[1]["data"]] == [a["id"]]
    assert api.call("GET", "/nodebalancers", xfilter={"tags": "lcai"})[1]["results"] == 2
    upd = api.ok("PUT", f"/nodebalancers/{b['id']}", {"label": "lcai-nb-b2", "tags": ["lcai"],
                                                      "client_conn_throttle": 20})
    assert (upd["label"], upd["tags"], upd["client_conn_throttle"]) == ("lcai-nb-b2", ["lcai"], 20)
    assert api.call("PUT", f"/nodebalancers/{b['id']}", {"label": "lcai-nb-a"})[0] == 400  # unique
    assert api.ok("DELETE", f"/nodebalancers/{a['id']}") == {}
    assert api.call("GET", f"/nodebalancers/{a['id']}") == (404, {"errors": [{"reason": "Not found"}]})
    assert api.ok("GET", f"/networking/firewalls/{fw['id']}")["entities"] == []
    state = api.ctl("GET", "/_sim/state")[1]
    assert [n["id"] for n in state["nodebalancers"]] == [b["id"]] and state["nodebalancers"][0]["configs"] == []


NODE = {"label": "rep-0", "address": "192.168.128.10:8080"}
CFG = {"port": 80, "protocol": "http", "nodes": [NODE]}


@pytest.mark.parametrize("body,field", [
    ({}, "region"), ({"region": "mars-1"}, "region"), ({"region": "ap-southeast"}, "region"),
    ({"region": "us-ord", "label": "ab"}, "label"), ({"region": "us-ord", "label": "has.dot"}, "label"),
    ({"region": "us-ord", "client_conn_throttle": 21}, "client_conn_throttle"),
    ({"region": "us-ord", "tags": ["xy"]}, "tags"), ({"region": "us-ord", "firewall_id": 1}, "firewall_id"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": []}]}, "configs[0].nodes"),
    ({"region": "us-ord", "configs": [CFG, CFG]}, "configs[1].port"),
    ({"region": "us-ord", "configs": [{**CFG, "port": 0}]}, "configs[0].port"),
    ({"region": "us-ord", "configs": [{**CFG, "protocol": "udp"}]}, "configs[0].protocol"),
    ({"region": "us-ord", "configs": [{**CFG, "algorithm": "random"}]}, "configs[0].algorithm"),
    ({"region": "us-ord", "configs": [{**CFG, "stickiness": "cookie"}]}, "configs[0].stickiness"),
    ({"region": "us-ord", "configs": [{**CFG, "check": "ping"}]}, "configs[0].check"),
    ({"region": "us-ord", "configs": [{**CFG, "check_attempts": 31}]}, "configs[0].check_attempts"),
    ({"region": "us-ord", "configs": [{**CFG, "check_timeout": 0}]}, "configs[0].check_timeout"),
    ({"region": "us-ord", "configs": [{**CFG, "check_interval": 10, "check_timeout": 10}]},
     "configs[0].check_interval"),
    ({"region": "us-ord", "configs": [{**CFG, "check_path": "/health check"}]}, "configs[0].check_path"),
    ({"region": "us-ord", "configs": [{**CFG, "protocol": "https"}]}, "configs[0].ssl_cert"),
    ({"region": "us-ord", "configs": [{**CFG, "ssl_cert": "x", "ssl_key": "y"}]}, "configs[0].ssl_cert"),
    ({"region": "us-ord", "configs": [{**CFG, "proxy_protocol": "v2"}]}, "configs[0].proxy_protocol"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "address": "203.0.113.5:80"}]}]},
     "configs[0].nodes[0].address"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "address": "10.0.0.5:80"}]}]},
     "configs[0].nodes[0].address"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "address": "192.168.128.10"}]}]},
     "configs[0].nodes[0].address"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "address": "192.168.128.10:70000"}]}]},
     "configs[0].nodes[0].address"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "label": "ab"}]}]}, "configs[0].nodes[0].label"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "weight": 0}]}]}, "configs[0].nodes[0].weight"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [{**NODE, "mode": "maintenance"}]}]},
     "configs[0].nodes[0].mode"),
    ({"region": "us-ord", "configs": [{**CFG, "nodes": [NODE, NODE]}]}, "configs[0].nodes"),
])
def test_create_validation(api, body, field):
    status, err = api.call("POST", "/nodebalancers", body)
    assert status == 400 and field in [e.get("field") for e in err["errors"]], err
    assert api.ok("GET", "/nodebalancers")["results"] == 0


def test_config_and_node_update_validation(api):
    nb = api.ok("POST", "/nodebalancers", {"region": "us-ord", "configs": [CFG, {**CFG, "port": 443,
                                                                                "protocol": "tcp"}]})
    c80, c443 = api.ok("GET", f"/nodebalancers/{nb['id']}/configs")["data"]
    base = f"/nodebalancers/{nb['id']}/configs"
    assert api.call("PUT", f"{base}/{c80['id']}", {"port": 443})[1]["errors"][0]["field"] == "port"
    assert api.call("PUT", f"{base}/{c80['id']}", {"check_timeout": 40})[1]["errors"][0]["field"] == "check_timeout"
    assert api.call("POST", base, {"port": 80})[1]["errors"][0]["field"] == "port"
    node = api.ok("GET", f"{base}/{c80['id']}/nodes")["data"][0]
    for body, field in [({"mode": "off"}, "mode"), ({"weight": 256}, "weight"), ({"address": "1.2.3.4:80"}, "address")]:
        status, err = api.call("PUT", f"{base}/{c80['id']}/nodes/{node['id']}", body)
        assert status == 400 and err["errors"][0]["field"] == field
    assert api.call("POST", f"{base}/{c80['id']}/nodes", {"address": "192.168.128.11:80"})[1]["errors"][0]["field"] \
        == "label"


def test_config_rebuild_replaces_the_node_list(api):
    nb = api.ok("POST", "/nodebalancers", {"region": "us-ord", "configs": [
        {**CFG, "nodes": [NODE, {"label": "rep-1", "address": "192.168.128.11:8080"}]}]})
    cfg = api.ok("GET", f"/nodebalancers/{nb['id']}/configs")["data"][0]
    base = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}"
    keep = api.ok("GET", f"{base}/nodes")["data"][0]
    out = api.ok("POST", f"{base}/rebuild", {"port": 80, "check": "connection", "nodes": [
        {"id": keep["id"], "address": keep["address"], "label": keep["label"], "mode": "drain"},
        {"label": "rep-2", "address": "192.168.128.12:8080"}]})
    assert out["check"] == "connection"
    nodes = api.ok("GET", f"{base}/nodes")["data"]
    assert [(n["label"], n["mode"]) for n in nodes] == [("rep-0", "drain"), ("rep-2", "accept")]
    assert api.call("POST", f"{base}/rebuild", {"port": 80})[1]["errors"][0]["field"] == "nodes"


def test_faults_on_nodebalancer_calls(api):
    api.ctl("POST", "/_sim/faults", [{"method": "POST", "path": "^/nodebalancers$", "status": 502, "when": "after"}])
    status, _ = api.call("POST", "/nodebalancers", {"region": "us-ord", "label": "lcai-nb-lost"})
    assert status == 502 and api.ok("GET", "/nodebalancers")["data"][0]["label"] == "lcai-nb-lost"  # it happened
    nb = api.ok("GET", "/nodebalancers")["data"][0]
    cfg = api.ok("POST", f"/nodebalancers/{nb['id']}/configs", {"port": 80})
    node = api.ok("POST", f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes", NODE)
    api.ctl("POST", "/_sim/faults", [{"method": "PUT", "path": "/nodes/\\d+$", "status": 429, "retry_after": 1}])
    path = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes/{node['id']}"
    assert api.call("PUT", path, {"mode": "drain"})[0] == 429
    assert api.ok("GET", path)["mode"] == "accept"  # refused before anything happened
    api.ctl("POST", "/_sim/faults", [{"method": "DELETE", "path": "^/nodebalancers/\\d+$", "action": "reset"}])
    with pytest.raises(OSError):
        api.call("DELETE", f"/nodebalancers/{nb['id']}")
    assert api.ok("GET", f"/nodebalancers/{nb['id']}")["id"] == nb["id"]


def test_through_linode_api4(api, replicas):
    from linode_api4 import LinodeClient, NodeBalancer

    insts, _, port = replicas
    client = LinodeClient("sim-token", base_url=api.url, retry=False)
    nb = client.nodebalancers.create("us-ord", label="lcai-nb-sdk", tags=["lcai"])
    assert isinstance(nb, NodeBalancer) and nb.label == "lcai-nb-sdk"
    cfg = nb.config_create(port=80, protocol="http", check="http", check_path="/healthz", check_interval=5,
                           check_timeout=3)
    nodes = [cfg.node_create(f"rep-{k}", f"{i['ipv4'][1]}:{port}") for k, i in enumerate(insts)]
    assert [n.status for n in nodes] == ["UP"] * 3
    nodes[0].mode = "drain"
    nodes[0].save()
    api.ctl("POST", f"/_sim/instances/{insts[2]['id']}/app", {"state": "crashed"})
    fresh = client.load(NodeBalancer, nb.id).configs[0].nodes
    assert [(n.mode, n.status) for n in fresh] == [("drain", "UP"), ("accept", "UP"), ("accept", "DOWN")]
    assert client.nodebalancers()[0].id == nb.id
    nb.delete()
    assert api.ok("GET", "/nodebalancers")["results"] == 0


def test_the_nodebalancer_address_serves_through_up_accepting_nodes(api, replicas):
    insts, _, port = replicas
    front = free_port()
    nb = nb_with_nodes(api, insts, port, port=front)
    cfg, nodes = nodes_of(api, nb)

    def hit(path="/healthz"):
        deadline = time.monotonic() + 3
        while True:
            try:
                with urllib.request.urlopen(f"http://{nb['ipv4']}:{front}{path}", timeout=2) as r:
                    return r.status, r.headers.get("X-Sim-Backend")
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("X-Sim-Backend")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # the clock opens the listener within a tick

    assert {hit() for _ in range(6)} == {(200, "rep-0"), (200, "rep-1"), (200, "rep-2")}  # round robin
    assert hit("/nope")[0] == 404  # the backend's own answer
    base = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes"
    api.ok("PUT", f"{base}/{nodes[0]['id']}", {"mode": "drain"})
    api.ctl("POST", f"/_sim/instances/{insts[1]['id']}/app", {"state": "unhealthy"})
    assert {hit() for _ in range(4)} == {(200, "rep-2")}  # drained and DOWN nodes get no new requests
    api.ok("PUT", f"{base}/{nodes[2]['id']}", {"mode": "backup"})
    assert hit() == (200, "rep-2")  # no accept node is UP: the backup node serves
    api.ctl("POST", f"/_sim/instances/{insts[1]['id']}/app", {"state": "healthy"})
    assert {hit() for _ in range(3)} == {(200, "rep-1")}  # an accept node is UP again: the backup rests
    api.ctl("POST", f"/_sim/instances/{insts[1]['id']}/app", {"state": "crashed"})
    api.ctl("POST", f"/_sim/instances/{insts[2]['id']}/app", {"state": "crashed"})
    assert hit() == (503, None)  # nothing UP to take a new request
    state = api.ctl("GET", "/_sim/state")[1]
    assert state["nodebalancers"][0]["listening"] == [front]


def test_check_timing_when_scaled(api, replicas):
    """nb_check_scale > 0: unknown until the first check, DOWN only after check_attempts failing checks, UP after
    one passing check — the stale window a rollout must wait out on a real NodeBalancer."""
    insts, _, port = replicas
    assert api.ctl("POST", "/_sim/settings", {"nb_check_scale": 0.05})[1]["nb_check_scale"] == 0.05
    t0 = time.monotonic()
    nb = nb_with_nodes(api, insts, port, check_interval=10, check_timeout=5, check_attempts=3)  # 0.5 s, x3

    def statuses():
        return [n["status"] for n in nodes_of(api, nb)[1]]

    first = statuses()
    if time.monotonic() - t0 < 0.5:  # (always, unless this machine stalled for half a second)
        assert first == ["unknown"] * 3 and nodes_of(api, nb)[0]["nodes_status"] == {"up": 0, "down": 0}
    while statuses() != ["UP"] * 3:
        assert time.monotonic() - t0 < 5
        time.sleep(0.01)
    assert time.monotonic() - t0 >= 0.5
    t1 = time.monotonic()
    api.ctl("POST", f"/_sim/instances/{insts[0]['id']}/app", {"state": "crashed"})
    while statuses()[0] != "DOWN":
        assert time.monotonic() - t1 < 6
        time.sleep(0.01)
    assert time.monotonic() - t1 >= 1.5  # three failing checks, 0.5 s apart: UP (stale) until then
    t2 = time.monotonic()
    api.ctl("POST", f"/_sim/instances/{insts[0]['id']}/app", {"state": "healthy"})
    while statuses()[0] != "UP":
        assert time.monotonic() - t2 < 5
        time.sleep(0.01)
    assert time.monotonic() - t2 >= 0.5  # one passing check
    assert api.ctl("POST", "/_sim/settings", {"nb_check_scale": -1})[0] == 400
