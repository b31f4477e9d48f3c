"""`lcai stop` ends the machine's bill and keeps what holds data or configuration (firewall, volumes, record,
directory); `lcai start` creates the same deployment's machine again with its volumes (issue 23 #4, Linode)."""

import json

from lcai_core.registry import Registry


def with_volume(svc):
    text = (svc / "deploy.yml").read_text()
    vol = "    volumes:\n      - {name: data, mount: /var/lib/lcai-data}\n"
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n" + vol))


def test_stop_then_start_keeps_firewall_volume_and_id(sim, svc, lcai):
    with_volume(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    fw = sim.state()["firewalls"][0]["id"]
    vol = sim.state()["volumes"][0]["id"]
    code, out, err = lcai("stop", dep)  # off a terminal without --yes: refused, saying what it loses
    assert code == 2 and "what is not on a volume is lost" in err and len(sim.state()["instances"]) == 1
    code, out, err = lcai("stop", dep, "--yes")
    assert code == 0 and "no machine bills now" in out, err
    assert sim.state()["instances"] == [] and [f["id"] for f in sim.state()["firewalls"]] == [fw]
    assert [v["id"] for v in sim.state()["volumes"]] == [vol] and sim.state()["volumes"][0]["linode_id"] is None
    rec = Registry().get(dep)
    assert rec["status"] == "stopped" and rec["price_hourly"] is None and (svc / ".linode" / "state.json").exists()
    code, out, err = lcai("status", "--all")
    assert "stopped" in next(x for x in out.splitlines() if x.startswith(dep))
    assert lcai("destroy", "--purge", "--yes")[0] == 0 and Registry().get(dep), "purge leaves a stopped one"
    code, out, err = lcai("start", dep, "--yes")
    assert code == 0, err
    assert "start the stopped deployment" in err
    (inst,) = sim.state()["instances"]
    assert [f["id"] for f in sim.state()["firewalls"]] == [fw], "the same firewall"
    assert sim.state()["volumes"][0]["linode_id"] == inst["id"] and len(sim.state()["volumes"]) == 1
    assert list(Registry().all()) == [dep] and Registry().get(dep)["status"] != "stopped"
    assert lcai("start", dep, "--yes")[0] == 2, "a live deployment is not started"


def test_stop_of_replicas_releases_the_nodebalancer(sim, svc, lcai, monkeypatch):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0")
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    replicas: 2\n"))
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    assert lcai("stop", dep, "--yes")[0] == 0
    assert sim.state()["instances"] == [] and sim.state()["nodebalancers"] == [] and sim.state()["firewalls"]
    code, out, err = lcai("start", dep, "--yes")
    assert code == 0, err
    assert len(sim.state()["instances"]) == 2 and len(sim.state()["nodebalancers"]) == 1
