"""A rollout that stopped left a replica drained: the resumed rollout rebuilds that one first and never takes a
serving replica out while another is out of rotation; `scale` down removes the drained one, not a serving one
(issue 21 #12: with 2 replicas, 0 nodes accepted traffic)."""

import json

import pytest

from lcai_core.registry import Registry


@pytest.fixture(autouse=True)
def quick_drain(monkeypatch):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0")


def _setup(sim, svc, lcai, drained=2):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    replicas: 2\n"))
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    st = Registry().get(dep)["provider_state"]
    nb = sim.state()["nodebalancers"][0]
    cfg = nb["configs"][0]
    by_ip = {r["private_ip"]: r for r in st["replicas"]}
    node2 = next(n for n in cfg["nodes"] if by_ip[n["address"].rsplit(":", 1)[0]]["k"] == drained)
    import urllib.request

    req = urllib.request.Request(f"{sim.url}/nodebalancers/{nb['id']}/configs/{cfg['id']}/nodes/{node2['id']}",
                                 method="PUT", data=json.dumps({"mode": "drain"}).encode(),
                                 headers={"Authorization": "Bearer sim-token", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()  # what a stopped rollout leaves: a replica drained
    return dep, st, nb, cfg


def accepting(sim):
    return [n for n in sim.state()["nodebalancers"][0]["configs"][0]["nodes"] if n["mode"] == "accept"]


def test_a_resumed_rollout_rebuilds_the_drained_replica_first(sim, svc, lcai):
    dep, st, nb, cfg = _setup(sim, svc, lcai)
    rep2 = next(r for r in st["replicas"] if r["k"] == 2)
    (svc / ".env").write_text("API_KEY=k-new\n")
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "30")
    assert code == 0, err
    rebuilds = [r["path"] for r in sim.requests() if r["method"] == "POST" and r["path"].endswith("/rebuild")]
    assert rebuilds[0] == f"/linode/instances/{rep2['linode_id']}/rebuild", rebuilds
    assert len(accepting(sim)) == 2


def test_scale_down_removes_the_drained_replica(sim, svc, lcai):
    dep, st, nb, cfg = _setup(sim, svc, lcai, drained=1)
    rep2 = next(r for r in st["replicas"] if r["k"] == 2)
    code, out, err = lcai("scale", dep, "1", "--yes", "--timeout", "30")
    assert code == 0, err
    assert [i["id"] for i in sim.state()["instances"]] == [rep2["linode_id"]], "the serving replica is kept"
    assert len(accepting(sim)) == 1
