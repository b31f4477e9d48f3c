"""The simulator refuses what the Linode API refuses (OpenAPI 4.189.0), in the API's error envelope, over real HTTP:
firewall rules, SSH keys, tags; unimplemented operations answer 501 (never 404), foreign methods JSON 405."""

import base64
import json
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lcai_testing.linode.simulator import Simulator

SPEC = Path(os.environ.get("LCAI_LINODE_SPEC", "/work/shared/reference/linode-openapi-4.189.0.json"))


class Client:
    def __init__(self, sim: Simulator):
        self.sim, self.url = sim, sim.url

    def call(self, method, path, body=None, token="sim-token", raw=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, method=method, headers=headers, data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def json(self, method, path, body=None, **kw):
        status, raw, headers = self.call(method, path, body, **kw)
        return status, json.loads(raw or b"null")


@pytest.fixture
def api():
    s = Simulator(provision_s=0.1, boot_s=0.1, app_ready_s=0.05).start()
    yield Client(s)
    s.stop()
    assert s.state.internal_errors == []  # no simulator bug answered a 500


def envelope_ok(body) -> bool:
    """The API's error envelope: {"errors": [{"reason": str, "field"?: str}, ...]}."""
    return (isinstance(body, dict) and set(body) == {"errors"} and body["errors"]
            and all(isinstance(e.get("reason"), str) and set(e) <= {"reason", "field"} for e in body["errors"]))


RULE = {"action": "ACCEPT", "protocol": "TCP", "ports": "22", "addresses": {"ipv4": ["0.0.0.0/0"]}}


def firewall(fw_label="lcai-fw-test1", **rule_changes):
    rule = {**RULE, **rule_changes}
    return {"label": fw_label, "rules": {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [rule]}}


def ssh_key(ktype="ssh-ed25519", inner=None, body_len=32, comment="me@laptop"):
    blob = struct.pack(">I", len(inner or ktype)) + (inner or ktype).encode() + struct.pack(">I", body_len) \
        + b"\x01" * body_len
    return f"{ktype} {base64.b64encode(blob).decode()} {comment}".strip()


@pytest.mark.parametrize("rule", [
    {"ports": "22"}, {"ports": "80-443"}, {"ports": "22, 80, 443"}, {"ports": "22,80,8000-8100"},
    {"ports": "1-65535"}, {"ports": None}, {"protocol": "ICMP", "ports": None},
    {"addresses": {"ipv4": ["192.0.2.0/24", "198.51.100.2/32"]}}, {"addresses": {"ipv6": ["2001:DB8::/128"]}},
    {"addresses": {"ipv4": ["0.0.0.0/0"], "ipv6": ["::/0"]}},
    {"addresses": {"ipv4": [f"10.0.{i // 250}.{i % 250}/32" for i in range(255)]}},
    {"label": "ssh-in", "description": "SSH from the office"},
    {"ports": "1-2, 3-4, 5-6, 7-8, 9-10, 11-12, 13-14, 15"},  # exactly 15 pieces
])
def test_firewall_rules_the_api_accepts(api, rule):
    status, body = api.json("POST", "/networking/firewalls", firewall(**rule))
    assert status == 200, body
    assert body["rules"]["inbound"][0]["ports"] == {**RULE, **rule}["ports"]


@pytest.mark.parametrize("rule,field", [
    ({"addresses": {"ipv4": ["not-an-ip"]}}, "rules.inbound[0].addresses.ipv4[0]"),
    ({"addresses": {"ipv4": ["10.0.0.0/99"]}}, "rules.inbound[0].addresses.ipv4[0]"),
    ({"addresses": {"ipv4": ["10.0.0.1"]}}, "rules.inbound[0].addresses.ipv4[0]"),  # bare address: no mask
    ({"addresses": {"ipv4": ["10.0.0.0/"]}}, "rules.inbound[0].addresses.ipv4[0]"),
    ({"addresses": {"ipv4": ["10.0.0.0/08"]}}, "rules.inbound[0].addresses.ipv4[0]"),
    ({"addresses": {"ipv4": ["2001:db8::/32"]}}, "rules.inbound[0].addresses.ipv4[0]"),
    ({"addresses": {"ipv6": ["2001:db8::/129"]}}, "rules.inbound[0].addresses.ipv6[0]"),
    ({"addresses": {"ipv6": ["fe80::1%eth0/128"]}}, "rules.inbound[0].addresses.ipv6[0]"),
    ({"addresses": {"ipv6": ["10.0.0.0/8"]}}, "rules.inbound[0].addresses.ipv6[0]"),
    ({"addresses": {"ipv4": []}}, "rules.inbound[0].addresses.ipv4"),
    ({"addresses": {}}, "rules.inbound[0].addresses"),
    ({"addresses": {"ipv4": [f"10.0.{i // 250}.{i % 250}/32" for i in range(200)],
                    "ipv6": [f"2001:db8::{i:x}/128" for i in range(56)]}}, "rules.inbound[0].addresses"),
    ({"ports": "70000"}, "rules.inbound[0].ports"),
    ({"ports": "0"}, "rules.inbound[0].ports"),
    ({"ports": "80-22"}, "rules.inbound[0].ports"),
    ({"ports": "80-80"}, "rules.inbound[0].ports"),
    ({"ports": "022"}, "rules.inbound[0].ports"),
    ({"ports": "22 ,80"}, "rules.inbound[0].ports"),
    ({"ports": "22,,80"}, "rules.inbound[0].ports"),
    ({"ports": "ssh"}, "rules.inbound[0].ports"),
    ({"ports": ""}, "rules.inbound[0].ports"),
    ({"ports": "1-2, 3-4, 5-6, 7-8, 9-10, 11-12, 13-14, 15-16"}, "rules.inbound[0].ports"),  # 16 pieces
    ({"protocol": "ICMP"}, "rules.inbound[0].ports"),  # ports only for TCP/UDP
    ({"protocol": "SCTP"}, "rules.inbound[0].protocol"),
    ({"action": "ALLOW"}, "rules.inbound[0].action"),
    ({"label": "ab"}, "rules.inbound[0].label"),
    ({"label": "x" * 33}, "rules.inbound[0].label"),
    ({"description": ""}, "rules.inbound[0].description"),
    ({"bogus": 1}, "rules.inbound[0].bogus"),
])
def test_firewall_rules_the_api_refuses(api, rule, field):
    status, body = api.json("POST", "/networking/firewalls", firewall(**rule))
    assert status == 400 and envelope_ok(body), body
    assert field in [e.get("field") for e in body["errors"]], body


@pytest.mark.parametrize("change,field", [
    ({"label": "fw"}, "label"), ({"label": "x" * 33}, "label"), ({"label": "9fw-digit-first"}, "label"),
    ({"label": "fw--double"}, "label"), ({"label": "fw-ends-"}, "label"),
    ({"tags": ["ok-tag", "xy"]}, "tags"), ({"tags": ["t" * 51]}, "tags"), ({"tags": "lcai"}, "tags"),
    ({"devices": {"linodes": [123]}}, "devices.linodes"),
])
def test_firewall_fields_the_api_refuses(api, change, field):
    status, body = api.json("POST", "/networking/firewalls", {**firewall(), **change})
    assert status == 400 and envelope_ok(body) and field in [e.get("field") for e in body["errors"]], body


def test_firewall_rule_count_and_every_problem_reported(api):
    many = firewall()
    many["rules"]["inbound"] = [RULE] * 20
    many["rules"]["outbound"] = [RULE] * 6
    status, body = api.json("POST", "/networking/firewalls", many)
    assert status == 400 and any("25" in e["reason"] for e in body["errors"])
    two = firewall(ports="70000", addresses={"ipv4": ["banana"]})
    status, body = api.json("POST", "/networking/firewalls", two)
    assert {e["field"] for e in body["errors"]} == {"rules.inbound[0].ports", "rules.inbound[0].addresses.ipv4[0]"}
    assert api.json("GET", "/networking/firewalls")[1]["results"] == 0  # nothing was created


def test_firewall_update_rules_devices(api):
    status, fw = api.json("POST", "/networking/firewalls", firewall())
    assert status == 200 and fw["rules"]["version"] == 1
    bad = {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [{**RULE, "ports": "99999"}]}
    status, body = api.json("PUT", f"/networking/firewalls/{fw['id']}/rules", bad)
    assert status == 400 and body["errors"][0]["field"] == "rules.inbound[0].ports"
    good = {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [{**RULE, "ports": "22, 8080"}]}
    status, rules = api.json("PUT", f"/networking/firewalls/{fw['id']}/rules", good)
    assert status == 200 and rules["version"] == 2 and rules["inbound"][0]["ports"] == "22, 8080"
    assert api.json("GET", f"/networking/firewalls/{fw['id']}/rules")[1] == rules
    status, inst = api.json("POST", "/linode/instances", {"type": "g6-nanode-1", "region": "us-ord"})
    status, dev = api.json("POST", f"/networking/firewalls/{fw['id']}/devices", {"id": inst["id"], "type": "linode"})
    assert status == 200 and dev["entity"] == {"id": inst["id"], "type": "linode", "label": inst["label"],
                                               "url": f"/v4/linode/instances/{inst['id']}"}
    assert api.json("GET", f"/linode/instances/{inst['id']}/firewalls")[1]["data"][0]["id"] == fw["id"]
    assert api.json("POST", f"/networking/firewalls/{fw['id']}/devices", {"id": inst["id"], "type": "linode"})[0] == 400
    assert api.json("DELETE", f"/networking/firewalls/{fw['id']}/devices/{dev['id']}") == (200, {})
    assert api.json("GET", f"/networking/firewalls/{fw['id']}")[1]["entities"] == []
    status, body = api.json("PUT", f"/networking/firewalls/{fw['id']}", {"status": "disabled", "tags": ["lcai"]})
    assert status == 200 and body["status"] == "disabled" and body["tags"] == ["lcai"]


GOOD = {"type": "g6-standard-2", "region": "us-ord", "image": "linode/ubuntu24.04", "root_pass": "Aa1-aaaaaaaaaa"}


@pytest.mark.parametrize("key", [
    ssh_key("ssh-ed25519"), ssh_key("ssh-rsa", body_len=256), ssh_key("ecdsa-sha2-nistp256", body_len=65),
    ssh_key("ecdsa-sha2-nistp384"), ssh_key("ssh-dss"), ssh_key("sk-ecdsa-sha2-nistp256@openssh.com"),
    ssh_key("ssh-ed25519", comment=""),
])
def test_ssh_keys_the_api_accepts(api, key):
    status, body = api.json("POST", "/linode/instances", {**GOOD, "authorized_keys": [key]})
    assert status == 200, body


@pytest.mark.parametrize("key", [
    "ssh-ed25519 this-is-not-base64", "ssh-ed25519", "ssh-ed25519 AAAA", "",
    ssh_key("ssh-ed25519", inner="ssh-rsa"),                   # body says another type
    ssh_key("sk-ssh-ed25519@openssh.com"),                     # a type the API does not list
    ssh_key("ssh-foo"), "AAAAC3NzaC1lZDI1NTE5AAAAIA me", "-----BEGIN OPENSSH PRIVATE KEY-----",
])
def test_ssh_keys_the_api_refuses(api, key):
    status, body = api.json("POST", "/linode/instances", {**GOOD, "authorized_keys": [key]})
    assert status == 400 and envelope_ok(body) and body["errors"][0]["field"] == "authorized_keys", body
    assert api.json("GET", "/linode/instances")[1]["results"] == 0


def test_unimplemented_operations_answer_501_in_the_envelope(api):
    for method, path in [("GET", "/object-storage/buckets"), ("POST", "/domains"), ("GET", "/lke/clusters"),
                         ("POST", "/linode/instances/1/resize"), ("GET", "/nodebalancers/1/stats"),
                         ("POST", "/linode/instances/1/clone"), ("DELETE", "/images/private/1")]:
        if method == "POST" and "/instances/1/" in path:  # an existing instance, so no 404 can hide it
            status, inst = api.json("POST", "/linode/instances", {"type": "g6-nanode-1", "region": "us-ord"})
            path = path.replace("/1/", f"/{inst['id']}/")
        if "/nodebalancers/1/" in path:
            status, nb = api.json("POST", "/nodebalancers", {"region": "us-ord"})
            path = path.replace("/1/", f"/{nb['id']}/")
        status, body = api.json(method, path, {} if method == "POST" else None)
        assert status == 501 and envelope_ok(body) and "not implemented" in body["errors"][0]["reason"], (path, body)
    status, body = api.json("GET", "/linode/instances/12345")
    assert (status, body) == (404, {"errors": [{"reason": "Not found"}]})  # a missing object is still 404


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "HEAD", "FOO"])
def test_foreign_methods_answer_json_never_html(api, method):
    status, inst = api.json("POST", "/linode/instances", {"type": "g6-nanode-1", "region": "us-ord"})
    status, raw, headers = api.call(method, f"/linode/instances/{inst['id']}", {"label": "x"})
    assert headers["Content-Type"] == "application/json"
    assert status in (405, 501)
    if method != "HEAD":
        assert envelope_ok(json.loads(raw)) and b"<html" not in raw.lower()
    assert api.json("GET", f"/linode/instances/{inst['id']}")[1]["label"] == inst["label"]  # unchanged


def test_bad_json_body_is_a_400_envelope(api):
    status, raw, _ = api.call("POST", "/linode/instances", raw=b"{not json")
    assert status == 400 and envelope_ok(json.loads(raw))


def test_booted_false_stays_offline_until_booted():
    import time

    def wait(api, iid, want):
        deadline = time.monotonic() + 5
        while (s := api.json("GET", f"/linode/instances/{iid}")[1]["status"]) != want:
            assert time.monotonic() < deadline, s
            time.sleep(0.01)

    with Simulator(provision_s=0.1, boot_s=1.0, shutdown_s=1.0, serve_health=False) as s:
        api = Client(s)
        status, inst = api.json("POST", "/linode/instances", {**GOOD, "booted": False})
        assert status == 200 and inst["status"] == "provisioning"
        wait(api, inst["id"], "offline")
        time.sleep(0.2)  # and it stays offline
        assert api.json("GET", f"/linode/instances/{inst['id']}")[1]["status"] == "offline"
        events = {(e["action"], e["status"]) for e in api.json("GET", "/account/events")[1]["data"]}
        assert ("linode_create", "finished") in events and not any(a == "linode_boot" for a, _ in events)
        assert api.json("POST", f"/linode/instances/{inst['id']}/boot", {}) == (200, {})
        assert api.json("GET", f"/linode/instances/{inst['id']}")[1]["status"] == "booting"
        wait(api, inst["id"], "running")
        assert api.json("POST", f"/linode/instances/{inst['id']}/shutdown", {}) == (200, {})
        assert api.json("GET", f"/linode/instances/{inst['id']}")[1]["status"] == "shutting_down"
        assert api.json("POST", f"/linode/instances/{inst['id']}/reboot", {})[1] == \
            {"errors": [{"reason": "Linode busy."}]}
        wait(api, inst["id"], "offline")
        status, body = api.json("POST", "/linode/instances", {**GOOD, "booted": "no"})
        assert status == 400 and body["errors"][0]["field"] == "booted"


def test_private_ip_on_create_and_by_ips_endpoint(api):
    status, a = api.json("POST", "/linode/instances", {**GOOD, "private_ip": True})
    assert status == 200 and len(a["ipv4"]) == 2 and a["ipv4"][0].startswith("127.0.1.")
    import ipaddress

    assert ipaddress.ip_address(a["ipv4"][1]) in ipaddress.ip_network("192.168.128.0/17")
    ips = api.json("GET", f"/linode/instances/{a['id']}/ips")[1]
    assert [p["address"] for p in ips["ipv4"]["private"]] == [a["ipv4"][1]]
    assert ips["ipv4"]["private"][0]["public"] is False and ips["ipv4"]["private"][0]["prefix"] == 17
    status, b = api.json("POST", "/linode/instances", GOOD)
    assert len(b["ipv4"]) == 1 and api.json("GET", f"/linode/instances/{b['id']}/ips")[1]["ipv4"]["private"] == []
    status, ip = api.json("POST", f"/linode/instances/{b['id']}/ips", {"type": "ipv4", "public": False})
    assert status == 200 and ip["public"] is False and ip["linode_id"] == b["id"] and ip["address"] != a["ipv4"][1]
    assert api.json("GET", f"/linode/instances/{b['id']}")[1]["ipv4"] == [b["ipv4"][0], ip["address"]]
    for body, field in [({"type": "ipv4", "public": False}, "public"), ({"type": "ipv4", "public": True}, "public"),
                        ({"type": "ipv6", "public": False}, "type"), ({"type": "ipv4"}, "public")]:
        status, err = api.json("POST", f"/linode/instances/{b['id']}/ips", body)
        assert status == 400 and err["errors"][0]["field"] == field, (body, err)


@pytest.mark.skipif(not SPEC.exists(), reason=f"the Linode OpenAPI document is not at {SPEC}")
def test_every_simulated_operation_exists_in_the_spec():
    """Each path+method the simulator answers (not 501/405) is an operation of the OpenAPI document."""
    spec = json.loads(SPEC.read_text())
    ops = {(m.upper(), p.replace("/{apiVersion}", "")) for p, item in spec["paths"].items() for m in item
           if m in ("get", "post", "put", "delete")}
    import re

    def known(method, path):
        def pattern(p):  # an image id holds a slash (linode/debian12)
            return re.sub(r"\{[^}]+\}", r"[^/]+", p.replace("{imageId}", "[^/]+/[^/]+"))
        return any(m == method and re.fullmatch(pattern(p), path) for m, p in ops)

    simulated = [("GET", "/profile"), ("GET", "/regions"), ("GET", "/regions/x"), ("GET", "/linode/types"),
                 ("GET", "/linode/types/x"), ("GET", "/images"), ("GET", "/images/linode/x"),
                 ("GET", "/linode/instances"), ("POST", "/linode/instances"), ("GET", "/linode/instances/1"),
                 ("PUT", "/linode/instances/1"), ("DELETE", "/linode/instances/1"),
                 ("POST", "/linode/instances/1/rebuild"), ("POST", "/linode/instances/1/boot"),
                 ("POST", "/linode/instances/1/reboot"), ("POST", "/linode/instances/1/shutdown"),
                 ("GET", "/linode/instances/1/ips"), ("POST", "/linode/instances/1/ips"),
                 ("GET", "/linode/instances/1/firewalls"), ("GET", "/linode/instances/1/nodebalancers"),
                 ("GET", "/networking/firewalls"), ("POST", "/networking/firewalls"),
                 ("GET", "/networking/firewalls/1"), ("PUT", "/networking/firewalls/1"),
                 ("DELETE", "/networking/firewalls/1"), ("GET", "/networking/firewalls/1/rules"),
                 ("PUT", "/networking/firewalls/1/rules"), ("GET", "/networking/firewalls/1/devices"),
                 ("POST", "/networking/firewalls/1/devices"), ("GET", "/networking/firewalls/1/devices/2"),
                 ("DELETE", "/networking/firewalls/1/devices/2"), ("GET", "/account/events"),
                 ("GET", "/nodebalancers"), ("POST", "/nodebalancers"), ("GET", "/nodebalancers/types"),
                 ("GET", "/nodebalancers/1"), ("PUT", "/nodebalancers/1"), ("DELETE", "/nodebalancers/1"),
                 ("GET", "/nodebalancers/1/firewalls"), ("GET", "/nodebalancers/1/configs"),
                 ("POST", "/nodebalancers/1/configs"), ("GET", "/nodebalancers/1/configs/2"),
                 ("PUT", "/nodebalancers/1/configs/2"), ("DELETE", "/nodebalancers/1/configs/2"),
                 ("POST", "/nodebalancers/1/configs/2/rebuild"), ("GET", "/nodebalancers/1/configs/2/nodes"),
                 ("POST", "/nodebalancers/1/configs/2/nodes"), ("GET", "/nodebalancers/1/configs/2/nodes/3"),
                 ("PUT", "/nodebalancers/1/configs/2/nodes/3"), ("DELETE", "/nodebalancers/1/configs/2/nodes/3")]
    missing = [op for op in simulated if not known(*op)]
    assert missing == []
    # and the simulator really answers each of them (404 for the made-up ids, never 501)
    with Simulator(provision_s=0, boot_s=0, serve_health=False) as s:
        c = Client(s)
        for method, path in simulated:
            status, raw, _ = c.call(method, path, {} if method in ("POST", "PUT") else None)
            assert status not in (405, 501), (method, path, raw)


def test_a_simulator_bug_answers_500_in_the_envelope_and_is_recorded():
    with Simulator(provision_s=0, boot_s=0, serve_health=False) as s:
        c = Client(s)
        s.state.instances[1] = {"id": 1, "status": "running", "label": "broken", "tags": []}  # no addresses
        status, body = c.json("GET", "/linode/instances/1/ips")
        assert status == 500 and envelope_ok(body) and "internal error: KeyError" in body["errors"][0]["reason"]
        assert len(s.state.internal_errors) == 1 and "KeyError" in s.state.internal_errors[0]
        s.state.internal_errors.clear()
