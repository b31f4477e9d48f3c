"""Replicas behind a NodeBalancer on the simulator (docs/scaling.md): deploy 3, a replica failing shows in
status, scale up and down, rolling redeploys that keep serving, and destroy leaving the account empty."""

import base64
import gzip
import json
import os
import re
import threading
import time
import urllib.request

import pytest

from lcai_core.registry import Registry


@pytest.fixture(autouse=True)
def quick_drain(monkeypatch):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0.05")  # how long a drained node keeps its open connections


def replicated(svc, n=3):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", f"    tags: [team-ml]\n    replicas: {n}\n"))
    return svc


def dep_of(svc):
    return json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]


def port_of(svc):
    return int(re.search(r"external_port: (\d+)", (svc / "deploy.yml").read_text()).group(1))


def user_data_of(inst):
    return gzip.decompress(base64.b64decode(inst["user_data"])).decode()


def nodes(sim):
    st = sim.state()
    assert len(st["nodebalancers"]) == 1, st["nodebalancers"]
    return st["nodebalancers"][0]["configs"][0]["nodes"]


def in_dir(d, lcai, *args):
    cwd = os.getcwd()
    os.chdir(d)
    try:
        return lcai(*args)
    finally:
        os.chdir(cwd)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.headers.get("X-Sim-Backend")


def test_deploy_three_replicas_status_scale_destroy(sim, svc, lcai):
    replicated(svc)
    port = port_of(svc)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 0, err
    # the price covers three instances and the NodeBalancer (from /nodebalancers/types)
    assert "3 x Linode" in err and "3 x $0.036/h instances + $0.015/h NodeBalancer" in err, err
    assert "$0.123/h" in err
    assert "healthy 3/3" in err
    dep = dep_of(svc)
    st = sim.state()
    assert len(st["instances"]) == 3 and len(st["firewalls"]) == 1 and len(st["nodebalancers"]) == 1
    labels = sorted(i["label"] for i in st["instances"])
    assert labels == [f"lcai-web-default-{dep}-{k}" for k in (1, 2, 3)]
    for inst in st["instances"]:
        assert inst["tags"] == ["lcai", f"lcai-id:{dep}", "lcai-app:web", "lcai-env:default", "team-ml"]
        assert inst["private_ip"] and inst["private_ip"].startswith("192.168.")
    # one firewall for all: SSH as usual, the app port only from the NodeBalancer range
    fw = st["firewalls"][0]
    assert sorted(e["id"] for e in fw["entities"]) == sorted(i["id"] for i in st["instances"])
    app_rule = next(r for r in fw["rules"]["inbound"] if r["ports"] == str(port))
    assert app_rule["addresses"] == {"ipv4": ["192.168.255.0/24"]}
    nb = st["nodebalancers"][0]
    assert nb["label"] == f"lcai-nb-{dep}" and f"lcai-id:{dep}" in nb["tags"] and nb["region"] == "us-ord"
    cfg = nb["configs"][0]
    assert cfg["port"] == port and cfg["check"] == "http" and cfg["check_path"] == "/"
    assert cfg["check_interval"] > cfg["check_timeout"] and cfg["check_attempts"] == 3
    assert sorted(n["address"] for n in cfg["nodes"]) == sorted(f"{i['private_ip']}:{port}" for i in st["instances"])
    assert [n["status"] for n in cfg["nodes"]] == ["UP"] * 3 and {n["mode"] for n in cfg["nodes"]} == {"accept"}
    # clients use the NodeBalancer's address, which answers through the replicas
    rec = Registry().get(dep)
    assert rec["address"] == nb["ipv4"] and rec["replicas"] == 3 and rec["price_hourly"] == pytest.approx(0.123)
    backends = {get(f"http://{nb['ipv4']}:{port}/")[1] for _ in range(6)}
    assert len(backends) == 3
    # status ID: the list's requests (instances, NodeBalancers, its nodes) plus one for the nodes' health now
    sim.clear_requests()
    assert lcai("status", dep)[0] == 0
    nodes_path = f"/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes"
    assert [r["path"] for r in sim.requests()] == ["/linode/instances", "/nodebalancers", nodes_path, nodes_path]

    # one replica's app fails: its node goes DOWN, status says 2/3 and lists it
    victim = sorted(st["instances"], key=lambda i: i["label"])[1]
    sim._call("POST", f"/_sim/instances/{victim['id']}/app", {"state": "unhealthy"})
    code, out, err = in_dir(svc, lcai, "status")
    assert code == 0, err
    assert "healthy 2/3" in out and "failing" in out
    line = next(x for x in out.splitlines() if x.startswith("replica 2"))
    assert str(victim["id"]) in line and victim["private_ip"] in line and "node DOWN, accept" in line
    assert sum(1 for x in out.splitlines() if x.startswith("replica ")) == 3
    code, out, err = lcai("status", "--all")
    row = next(x for x in out.splitlines() if x.startswith(dep))
    assert "healthy 2/3" in row and "running" in row
    sim._call("POST", f"/_sim/instances/{victim['id']}/app", {"state": "healthy"})

    # scale to 5 (inside the directory: the ID may be left out), then to 2
    code, out, err = in_dir(svc, lcai, "scale", "5", "--yes", "--timeout", "30")
    assert code == 0, err
    assert "healthy 5/5" in out and "mode reject" in err and "accepting traffic" in err
    assert len(sim.state()["instances"]) == 5 and [n["status"] for n in nodes(sim)] == ["UP"] * 5
    assert Registry().get(dep)["replicas"] == 5
    assert Registry().get(dep)["price_hourly"] == pytest.approx(5 * 0.036 + 0.015)
    new = [i for i in sim.state()["instances"] if i["label"].endswith(("-4", "-5"))]
    assert len(new) == 2 and all(user_data_of(i) == user_data_of(victim) for i in new)
    code, out, err = lcai("scale", dep, "2", "--yes")
    assert code == 0, err
    assert "draining" in err and "healthy 2/2" in out
    st = sim.state()
    assert sorted(i["label"][-2:] for i in st["instances"]) == ["-1", "-2"]
    assert len(nodes(sim)) == 2 and {n["mode"] for n in nodes(sim)} == {"accept"}
    assert len(Registry().get(dep)["provider_state"]["replicas"]) == 2

    # destroy leaves the account empty and the directory as init left it
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 0, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == [] and st["nodebalancers"] == []
    assert Registry().get(dep) is None and not (svc / ".linode" / "state.json").exists()


def test_scale_keeps_healthy_replicas_and_refuses_single_instances(sim, svc, lcai):
    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    dep = dep_of(svc)
    insts = sorted(sim.state()["instances"], key=lambda i: i["label"])
    # replica 1 fails: scaling to 2 removes it (not a healthy one), so 2 healthy replicas remain
    sim._call("POST", f"/_sim/instances/{insts[0]['id']}/app", {"state": "crashed"})
    code, out, err = lcai("scale", dep, "2", "--yes")
    assert code == 0, err
    left = {i["id"] for i in sim.state()["instances"]}
    assert left == {insts[1]["id"], insts[2]["id"]}
    assert [n["status"] for n in nodes(sim)] == ["UP", "UP"]
    # a changed deploy.yml is refused for new replicas (they would run another version)
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("nginx:1.27", "nginx:1.28"))
    code, out, err = lcai("scale", dep, "3", "--yes")
    assert code == 2 and "changed since" in err and "lcai deploy" in err
    # bad N
    assert lcai("scale", dep, "0", "--yes")[0] == 2
    assert lcai("scale", dep, "x", "--yes")[0] == 2
    assert lcai("destroy", dep, "--yes")[0] == 0


def test_one_instance_is_not_scaled_in_place(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = dep_of(svc)
    code, out, err = lcai("scale", dep, "3", "--yes")
    assert code == 2 and "one instance" in err and "deploy --new" in err
    # nor by a redeploy asking for replicas
    replicated(svc)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "one instance" in err
    assert len(sim.state()["instances"]) == 1 and sim.state()["nodebalancers"] == []


def test_replicas_refused_where_they_cannot_work(sim, svc, lcai):
    replicated(svc)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--app-from", "203.0.113.7")
    assert code == 2 and "--app-from" in err
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("replicas: 3", "replicas: 99"))
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "replicas" in err and "1-25" in err
    st = sim.state()
    assert st["instances"] == [] and st["nodebalancers"] == [] and Registry().all() == {}


def new_version(svc):
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("version: 1.2.0", "version: 1.3.0")
                                    .replace("nginx:1.27", "nginx:1.28"))


def test_rolling_redeploy_keeps_two_of_three_serving(sim, svc, lcai):
    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    dep = dep_of(svc)
    before = {i["id"]: i for i in sim.state()["instances"]}
    new_version(svc)
    low, polls, stop = [], [0], threading.Event()

    def watch():
        while not stop.is_set():
            serving = sum(1 for n in nodes(sim) if n["mode"] == "accept" and n["status"] == "UP")
            polls[0] += 1
            if serving < 2:
                low.append(serving)
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "60")
    finally:
        stop.set()
        t.join()
    assert code == 0, err
    assert low == [] and polls[0] > 20, (low, polls)
    assert err.count("drained at the NodeBalancer") == 3 and "rollout done" in err
    after = {i["id"]: i for i in sim.state()["instances"]}
    assert set(after) == set(before)  # same instances, rebuilt
    assert all("nginx:1.28" in user_data_of(i) for i in after.values())
    assert [n["status"] for n in nodes(sim)] == ["UP"] * 3 and {n["mode"] for n in nodes(sim)} == {"accept"}
    rec = Registry().get(dep)
    assert rec["template_version"] == "1.3.0" and rec["status"] == "running" and rec["replicas_healthy"] == 3
    assert rec["address"] == sim.state()["nodebalancers"][0]["ipv4"]


def test_failing_rollout_stops_after_the_first_replica(sim, svc, lcai):
    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    dep = dep_of(svc)
    old = {i["id"]: user_data_of(i) for i in sim.state()["instances"]}
    new_version(svc)
    sim._call("POST", "/_sim/app-rules", [{"match": "nginx:1.28", "state": "unhealthy"}])
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "4")
    assert code == 1, err
    assert "rollout stopped" in err and "still serve the previous version" in err
    assert "roll back" in err and "resume" in err and "Traceback" not in err
    st = sim.state()
    changed = [i for i in st["instances"] if user_data_of(i) != old[i["id"]]]
    assert len(changed) == 1 and "nginx:1.28" in user_data_of(changed[0])
    by_addr = {n["address"].split(":")[0]: n for n in nodes(sim)}
    for inst in st["instances"]:
        n = by_addr[inst["private_ip"]]
        if inst["id"] == changed[0]["id"]:
            assert n["mode"] == "drain" and n["status"] == "DOWN"
        else:
            assert n["mode"] == "accept" and n["status"] == "UP" and "nginx:1.27" in user_data_of(inst)
    assert Registry().get(dep)["status"] == "rollout stopped"
    assert Registry().get(dep)["replicas_healthy"] == 2  # recorded for `lcai status`: healthy 2/3
    assert Registry().get(dep)["template_version"] == "1.2.0"  # the record still describes what serves
    code, out, err = lcai("scale", dep, "4", "--yes", "--directory", svc)  # which version would a new one run?
    assert code == 2 and "a rollout did not finish" in err
    # roll back: the previous deploy.yml, deploy again -> the failed replica gets the old version back
    sim._call("DELETE", "/_sim/app-rules")
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("version: 1.3.0", "version: 1.2.0")
                                    .replace("nginx:1.28", "nginx:1.27"))
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "30")
    assert code == 0, err
    assert "already run the new version" in err and err.count("drained at the NodeBalancer") == 1
    assert all("nginx:1.27" in user_data_of(i) for i in sim.state()["instances"])
    assert [n["status"] for n in nodes(sim)] == ["UP"] * 3 and {n["mode"] for n in nodes(sim)} == {"accept"}


@pytest.mark.parametrize("value,message", [
    ("0", "deploy.linode.replicas: replicas must be 1-25, got 0"),
    ("three", "deploy.linode.replicas: expected an integer, got string 'three'"),
])
def test_replicas_field_is_checked_with_file_and_line(svc, lcai, value, message):
    replicated(svc)
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("replicas: 3", f"replicas: {value}"))
    line = next(i for i, x in enumerate((svc / "deploy.yml").read_text().splitlines(), 1) if "replicas:" in x)
    code, out, err = lcai("templates", "validate", svc / "deploy.yml")
    assert code == 2 and f"deploy.yml:{line}: {message}" in err, err
    code, out, err = lcai("templates", "schema")
    prop = json.loads(out)["$defs"]["LinodeDeploy"]["properties"]["replicas"]
    assert prop["type"] == "integer" and prop["default"] == 1 and "NodeBalancer" in prop["description"]
    assert (prop["minimum"], prop["maximum"]) == (1, 25)


def test_replicas_need_a_public_port(svc, lcai):
    replicated(svc)
    (svc / "deploy.yml").write_text(re.sub(r"      external_port: \d+\n", "", (svc / "deploy.yml").read_text())
                                    .replace("      health: {type: http", "      health: {type: exec, command: 'true'"))
    code, out, err = lcai("templates", "validate", svc / "deploy.yml")
    assert code == 2 and "replicas > 1 need container.external_port" in err, err


def test_rollout_applies_new_health_settings_last_and_keeps_the_port(sim, svc, lcai):
    replicated(svc, 2)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    cfg = sim.state()["nodebalancers"][0]["configs"][0]
    assert (cfg["check_timeout"], cfg["check_interval"], cfg["check_attempts"]) == (5, 6, 3)
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("max_retries: 3}", "max_retries: 4, timeout_seconds: 2}"))
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "30")
    assert code == 0, err
    assert "NodeBalancer health check now http / every 3s" in err
    cfg = sim.state()["nodebalancers"][0]["configs"][0]
    assert (cfg["check_timeout"], cfg["check_interval"], cfg["check_attempts"]) == (2, 3, 4)
    # the public port is the NodeBalancer's: a redeploy cannot move it
    port = port_of(svc)
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace(f"external_port: {port}",
                                                                             f"external_port: {port + 1}"))
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and f"serves port {port}" in err
    assert [n["status"] for n in nodes(sim)] == ["UP", "UP"]


def test_the_list_shows_the_nodebalancers_view_now(sim, svc, lcai):
    """No `status ID` in between: the list itself reads each NodeBalancer's nodes (issue 21 #15)."""
    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    dep = dep_of(svc)
    assert Registry().get(dep)["replicas_healthy"] == 3
    victim = sorted(sim.state()["instances"], key=lambda i: i["label"])[0]
    sim._call("POST", f"/_sim/instances/{victim['id']}/app", {"state": "unhealthy"})
    code, out, err = lcai("status", "--all")
    assert code == 0, err
    assert "healthy 2/3" in next(x for x in out.splitlines() if x.startswith(dep)), out
    assert Registry().get(dep)["replicas_healthy"] == 3, "the list reads, it does not rewrite the record"
    rows = json.loads(lcai("status", "--all", "--json")[1])["deployments"]
    row = next(r for r in rows if r["deployment_id"] == dep)
    assert row["replicas_healthy"] == 2 and [n["status"] for n in row["replica_nodes"]].count("DOWN") == 1


def test_tui_shows_the_replica_count_and_lists_the_replicas(sim, svc, lcai):
    pytest.importorskip("lcai_tui")
    from lcai_tui.app import cells
    from lcai_tui.data import DataSource

    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0
    dep = dep_of(svc)
    data = DataSource()
    rows, source = data.rows()
    row = next(r for r in rows if r["deployment_id"] == dep)
    assert str(cells(row, time.time())["health"]) == "healthy 3/3"
    victim = sorted(sim.state()["instances"], key=lambda i: i["label"])[2]
    sim._call("POST", f"/_sim/instances/{victim['id']}/app", {"state": "crashed"})
    ok, detail = data.probe(row)  # what the detail screen does: the NodeBalancer's view
    assert ok is False and "healthy 2/3" in detail
    assert str(cells(row, time.time())["health"]) == "healthy 2/3"
    fields = dict(data.detail_fields(row))
    assert fields["replicas"] == "3, healthy 2/3"
    assert "node DOWN" in fields["replica 3"] and str(victim["id"]) in fields["replica 3"]
    assert "node UP, accept" in fields["replica 1"]


def test_plan_shows_the_total_price_when_the_provider_is_configured(sim, svc, lcai):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    region_default: us-ord\n",
                                                 "    region_default: us-ord\n    replicas: 3\n"))
    code, out, err = lcai("plan", "-d", svc, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["replicas"] == 3 and data["target"] == "linode"
    # 3 × g6-standard-2 ($0.036/h) + a NodeBalancer ($0.015/h), as deploy shows before asking
    assert abs(data["price"]["hourly"] - (3 * 0.036 + 0.015)) < 1e-9
    code, out, err = lcai("plan", "-d", svc)
    assert "3 replicas behind a NodeBalancer" in out and "price:" in out and "in all" in out


def test_status_of_replicas_fits_80_and_120_columns(sim, svc, lcai, monkeypatch):
    """A long app name and two replicas at 80 and 120 columns: STATUS, HEALTH (`healthy 2/2` whole), $/H and
    the app name show, every line fits."""
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("name: web\n", "name: embeddings-python\n"))
    replicated(svc, 2)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 0, err
    dep = dep_of(svc)
    for columns in (80, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, err = lcai("status", "--all")
        assert code == 0, err
        lines = out.splitlines()
        assert max(len(x) for x in lines) <= columns, out
        header, row = lines[0], next(x for x in lines if x.startswith(dep))
        assert {"ID", "APP", "STATUS", "HEALTH", "$/H"} <= set(header.split()), header
        assert row.index("healthy 2/2") == header.index("HEALTH"), out
        assert row.index("running") == header.index("STATUS") and "embeddings-python" in row
        assert row.endswith("0.087")  # two $0.036/h instances and the $0.015/h NodeBalancer
