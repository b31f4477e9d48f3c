"""The simulator behaves like the Linode API as the spec and FACTS describe, and the real SDK works against it."""

import base64
import gzip
import json
import time
import urllib.error
import urllib.request

import pytest


def call(sim, method, path, body=None, token="sim-token", xfilter=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if xfilter is not None:
        headers["X-Filter"] = json.dumps(xfilter)
    req = urllib.request.Request(sim.url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


GOOD = {"type": "g6-standard-2", "region": "us-ord", "image": "linode/ubuntu24.04", "root_pass": "Aa1-aaaaaaaaaa",
        "label": "lcai-web-default-abcd1234", "tags": ["lcai", "lcai-id:abcd1234"]}


def test_auth(sim):
    assert call(sim, "GET", "/profile", token=None)[0] == 401
    status, body, _ = call(sim, "GET", "/profile", token="nope")
    assert status == 401 and body == {"errors": [{"reason": "Invalid Token"}]}


def test_pagination_envelope_and_page_size(sim):
    status, body, _ = call(sim, "GET", "/linode/types?page_size=25")
    assert status == 200 and set(body) == {"data", "page", "pages", "results"} and body["page"] == 1
    assert call(sim, "GET", "/linode/types?page_size=10")[0] == 400
    assert call(sim, "GET", "/linode/types?page=9")[0] == 400


def test_filters(sim):
    status, body, _ = call(sim, "GET", "/linode/types", xfilter={"class": "gpu"})
    assert status == 200 and body["results"] >= 2 and all(t["class"] == "gpu" for t in body["data"])
    status, body, _ = call(sim, "GET", "/linode/instances", xfilter={"tags": ["lcai"]})
    assert status == 400 and body["errors"][0]["reason"] == "Tags filter must be a string or dict"


@pytest.mark.parametrize("change,field", [
    ({"label": "9starts-with-digit"}, "label"), ({"label": "has--double"}, "label"), ({"label": "ab"}, "label"),
    ({"label": "ends-with-dash-"}, "label"), ({"root_pass": "short"}, "root_pass"),
    ({"root_pass": "alllowercaseletters"}, "root_pass"), ({"tags": ["ok-tag", "xy"]}, "tags"),
    ({"region": "mars-1"}, "region"), ({"type": "g9-huge"}, "type"), ({"firewall_id": "12"}, "firewall_id"),
    ({"firewall_id": 999}, "firewall_id"), ({"metadata": {"user_data": "not base64!"}}, "metadata.user_data"),
    ({"metadata": {"user_data": "", "extra": 1}}, "metadata"),
    ({"region": "ap-southeast", "metadata": {"user_data": "e30="}}, "metadata"),
    ({"image": "linode/ubuntu20.04", "metadata": {"user_data": "e30="}}, "metadata"),
    ({"type": "g2-gpu-rtx4000a1-s", "region": "us-mia"}, "type"),
])
def test_instance_create_validation(sim, change, field):
    status, body, _ = call(sim, "POST", "/linode/instances", {**GOOD, **change})
    assert status == 400 and any(e.get("field") == field for e in body["errors"]), body


def test_user_data_size_limit(sim):
    big = base64.b64encode(b"x" * 65536).decode()
    status, body, _ = call(sim, "POST", "/linode/instances", {**GOOD, "metadata": {"user_data": big}})
    assert status == 400 and "65535" in body["errors"][0]["reason"]


def test_lifecycle_events_and_delete_returns_empty_object(sim):
    status, inst, _ = call(sim, "POST", "/linode/instances", {**GOOD, "metadata": {"user_data": base64.b64encode(
        gzip.compress(b"#cloud-config\n")).decode()}})
    assert status == 200 and inst["status"] == "provisioning" and inst["has_user_data"] is True
    assert inst["ipv4"][0].startswith("127.0.1.")
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen.add(call(sim, "GET", f"/linode/instances/{inst['id']}")[1]["status"])
        if "running" in seen:
            break
        time.sleep(0.02)
    assert {"provisioning", "booting", "running"} <= seen
    actions = {(e["action"], e["status"]) for e in call(sim, "GET", "/account/events")[1]["data"]}
    assert {("linode_create", "finished"), ("linode_boot", "finished")} <= actions
    status, body, _ = call(sim, "DELETE", f"/linode/instances/{inst['id']}")
    assert (status, body) == (200, {})
    assert call(sim, "GET", f"/linode/instances/{inst['id']}")[0] == 404


def test_firewall_validation(sim):
    rule = {"action": "ACCEPT", "protocol": "TCP", "ports": "22", "addresses": {"ipv4": ["0.0.0.0/0"]}}
    ok = {"label": "lcai-fw-abcd1234", "rules": {"inbound_policy": "DROP", "outbound_policy": "ACCEPT",
                                                 "inbound": [rule]}}
    assert call(sim, "POST", "/networking/firewalls", ok)[0] == 200
    bad = [{**ok, "label": "fw"}, {**ok, "label": "x" * 33}, {**ok, "rules": {"inbound": [rule]}},
           {**ok, "label": "a2", "rules": {**ok["rules"], "inbound": [{**rule, "addresses": {}}]}},
           {**ok, "label": "a3b", "rules": {**ok["rules"], "inbound": [{**rule, "ports": "022"}]}},
           {**ok, "label": "a4b", "rules": {**ok["rules"], "inbound": [{**rule, "protocol": "ICMP"}]}}]
    for b in bad:
        assert call(sim, "POST", "/networking/firewalls", b)[0] == 400, b


def test_faults_retry_after_and_lost_reply(sim):
    sim.fault(method="GET", path="/profile$", status=429, retry_after=0, times=1)
    status, body, headers = call(sim, "GET", "/profile")
    assert status == 429 and headers.get("Retry-After") == "0"
    assert call(sim, "GET", "/profile")[0] == 200
    sim.fault(method="POST", path="/linode/instances$", status=502, when="after", times=1)
    assert call(sim, "POST", "/linode/instances", GOOD)[0] == 502
    assert len(sim.state()["instances"]) == 1  # it happened, though the reply said otherwise


def test_real_sdk_objects_work_against_the_simulator(sim):
    from linode_api4 import Instance, LinodeClient, Type

    client = LinodeClient("sim-token", base_url=sim.url, retry=False)
    gpu = client.linode.types(Type.type_class == "gpu")
    assert len(gpu) >= 2 and all(t.type_class == "gpu" for t in gpu)
    inst = client.linode.instance_create("g6-standard-2", "us-ord", image="linode/ubuntu24.04",
                                         root_pass="Aa1-aaaaaaaaaa", label="sdk-test-1", tags=["lcai", "lcai-id:sdk1"])
    assert isinstance(inst, Instance) and inst.label == "sdk-test-1"
    found = client.linode.instances(Instance.tags.contains("lcai-id:sdk1"))
    assert [i.id for i in found] == [inst.id]
    assert client.load(Instance, inst.id).region.id == "us-ord"
    assert inst.ips.ipv4.public[0].address == inst.ipv4[0]
    assert inst.delete() is True
