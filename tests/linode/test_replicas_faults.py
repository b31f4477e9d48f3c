"""Faults at every API call of a replicated deploy, `lcai scale` (up and down) and a rolling redeploy: afterwards
the simulator holds nothing the registry does not know (instances, firewalls, NodeBalancers, nodes) and never a
duplicate; once the API is healthy again the same command (or destroy) finishes the job. Also: the `status`
request count for 200 deployments x 3 replicas, and `sync` adopting a replicated deployment."""

import json

import pytest

from lcai_core.registry import Registry

FAULTS = {  # as in test_faults.py
    "429": dict(status=429, retry_after=0, reason="Too Many Requests", times=2),
    "500": dict(status=500, reason="Internal Server Error", times=2),
    "busy": dict(status=400, reason="Linode busy.", times=2),
    "reset": dict(action="reset", times=1),
    "hang": dict(action="hang", hang_s=1.5, times=1),
    "lost-reply": dict(status=502, reason="Bad Gateway", when="after", times=1),
    "persistent-500": dict(status=500, reason="Internal Server Error", times=100),
    "400": dict(status=400, reason="Region is sold out of this type", times=100),
    "403": dict(status=403, reason="Unauthorized", times=100),
}
REFUSALS = ("400", "403")


def replicated(svc, n=3):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", f"    tags: [team-ml]\n    replicas: {n}\n"))
    return svc


def new_version(svc):
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("version: 1.2.0", "version: 1.3.0")
                                    .replace("nginx:1.27", "nginx:1.28"))


def nodes(sim):
    return [n for nb in sim.state()["nodebalancers"] for c in nb["configs"] for n in c["nodes"]]


def user_data_of(inst):
    import base64
    import gzip

    return gzip.decompress(base64.b64decode(inst["user_data"])).decode()


@pytest.fixture(autouse=True)
def quick_drain(monkeypatch):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0")


def assert_consistent(sim):
    """Every instance, firewall and NodeBalancer is in a registry record; one instance per replica label, one
    NodeBalancer per deployment, no duplicate node address."""
    st = sim.state()
    reg = Registry().all()
    known_linodes, known_fws, known_nbs = set(), set(), set()
    for r in reg.values():
        ps = r.get("provider_state") or {}
        known_linodes |= {x["linode_id"] for x in ps.get("replicas") or []} | {ps.get("linode_id")}
        known_fws.add(ps.get("firewall_id"))
        known_nbs.add(ps.get("nodebalancer_id"))
    for inst in st["instances"]:
        assert inst["id"] in known_linodes, ("unknown instance", inst["label"], reg)
    for fw in st["firewalls"]:
        assert fw["id"] in known_fws, ("unknown firewall", fw["label"], reg)
    for nb in st["nodebalancers"]:
        assert nb["id"] in known_nbs, ("unknown NodeBalancer", nb["label"], reg)
        addrs = [n["address"] for c in nb["configs"] for n in c["nodes"]]
        assert len(addrs) == len(set(addrs)), addrs
    labels = [i["label"] for i in st["instances"]]
    assert len(labels) == len(set(labels))
    deps = [next(t for t in nb["tags"] if t.startswith("lcai-id:")) for nb in st["nodebalancers"]]
    assert len(deps) == len(set(deps))


def destroy_all(sim, lcai):
    sim.sim.state.faults.clear()
    for dep_id in list(Registry().all()):
        code, out, err = lcai("destroy", dep_id, "--yes")
        assert code == 0, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == [] and st["nodebalancers"] == []


def outcome(code, err, fault):
    assert "Traceback" not in err
    if fault == "persistent-500":
        assert code == 1 and "error:" in err, err
    elif fault in REFUSALS:
        assert code in (1, 2), err
        errors = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and "hint:" in err, err
    else:
        assert code == 0, err


# ---------------------------------------------------------------- deploy

DEPLOY_CALLS = [
    ("GET", "/nodebalancers/types$"), ("POST", "/linode/instances$"), ("GET", "/linode/instances$"),
    ("GET", "/nodebalancers$"), ("POST", "/nodebalancers$"), ("GET", r"/nodebalancers/\d+/configs$"),
    ("GET", r"/nodebalancers/\d+/configs/\d+/nodes$"),
]
DEPLOY_CASES = [(m, p, f) for m, p in DEPLOY_CALLS for f in FAULTS
                if (f != "lost-reply" or m == "POST") and f != "busy"]


@pytest.mark.parametrize("method,path,fault", DEPLOY_CASES, ids=[f"{m} {p} {f}" for m, p, f in DEPLOY_CASES])
def test_replicated_deploy_under_faults(sim, svc, lcai, method, path, fault):
    replicated(svc)
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")
    if fault == "persistent-500" and "/configs" in path:
        # read only while waiting for health: said, and retried until the API answers again (or the deadline)
        assert code in (0, 1) and "Traceback" not in err and "cannot read the NodeBalancer" in err, err
    else:
        outcome(code, err, fault)
    if code != 0 and "/configs" in path:
        assert "is tracked" in err and len(Registry().all()) == 1
    assert_consistent(sim)
    st = sim.state()
    if code == 0:
        assert len(st["instances"]) == 3 and len(st["firewalls"]) == 1 and len(st["nodebalancers"]) == 1
        assert [n["status"] for n in nodes(sim)] == ["UP"] * 3
    elif fault in REFUSALS and method == "POST":
        assert st["instances"] == [] and st["firewalls"] == [] and st["nodebalancers"] == []
        assert Registry().all() == {}
    destroy_all(sim, lcai)


# ---------------------------------------------------------------- scale up and down

SCALE_CASES = [(d, m, p, f)
               for d, calls in (("up", [("POST", "/linode/instances$"), ("POST", r"/configs/\d+/nodes$"),
                                        ("PUT", r"/nodes/\d+$"), ("GET", r"/configs/\d+/nodes$")]),
                                ("down", [("PUT", r"/nodes/\d+$"), ("DELETE", r"/nodes/\d+$"),
                                          ("DELETE", r"/linode/instances/\d+$")]))
               for m, p in calls
               for f in ("429", "500", "reset", "hang", "lost-reply", "persistent-500", "403")
               if f != "lost-reply" or m == "POST"]


@pytest.mark.parametrize("direction,method,path,fault", SCALE_CASES,
                         ids=[f"{d} {m} {p} {f}" for d, m, p, f in SCALE_CASES])
def test_scale_under_faults(sim, svc, lcai, direction, method, path, fault):
    replicated(svc, 2)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))
    target = 3 if direction == "up" else 1
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("scale", dep, target, "--yes", "--directory", svc, "--timeout", "20")
    outcome(code, err, fault)
    assert_consistent(sim)
    rec = Registry().get(dep)
    st = sim.state()
    assert len(st["instances"]) == len(rec["provider_state"]["replicas"]) == rec["replicas"]
    if code == 0:
        assert rec["replicas"] == target and len(nodes(sim)) == target
        assert {n["mode"] for n in nodes(sim)} == {"accept"} and {n["status"] for n in nodes(sim)} == {"UP"}
    elif direction == "up":
        assert rec["replicas"] == 2 and len(nodes(sim)) == 2  # the half-made replica was removed again
    # with the API healthy again, the same command finishes the job
    sim.sim.state.faults.clear()
    code, out, err = lcai("scale", dep, target, "--yes", "--directory", svc, "--timeout", "20")
    assert code == 0, err
    assert len(sim.state()["instances"]) == target and len(nodes(sim)) == target
    assert_consistent(sim)
    destroy_all(sim, lcai)


# ---------------------------------------------------------------- rolling redeploy

ROLLOUT_CASES = [(m, p, f) for m, p in [("POST", r"/linode/instances/\d+/rebuild$"), ("PUT", r"/nodes/\d+$"),
                                        ("GET", r"/configs/\d+/nodes$")]
                 for f in ("429", "500", "busy", "reset", "lost-reply", "persistent-500", "403")
                 if f != "lost-reply" or m == "POST"]


@pytest.mark.parametrize("method,path,fault", ROLLOUT_CASES, ids=[f"{m} {p} {f}" for m, p, f in ROLLOUT_CASES])
def test_rollout_under_faults(sim, svc, lcai, method, path, fault):
    replicated(svc, 2)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))
    ids = sorted(i["id"] for i in sim.state()["instances"])
    new_version(svc)
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "20")
    outcome(code, err, fault)
    assert_consistent(sim)
    st = sim.state()
    assert sorted(i["id"] for i in st["instances"]) == ids  # rebuilt in place, never a new instance
    # at least one replica serves at every moment; afterwards, whatever failed, one still does
    assert sum(1 for n in nodes(sim) if n["mode"] == "accept" and n["status"] == "UP") >= 1
    if code != 0:
        assert Registry().get(dep)["status"] in ("rollout stopped",)
        sim.sim.state.faults.clear()
        code, out, err = lcai("deploy", "-d", svc, "--yes", "--timeout", "20")  # resume
        assert code == 0, err
    assert all("nginx:1.28" in user_data_of(i) for i in sim.state()["instances"])
    assert {n["mode"] for n in nodes(sim)} == {"accept"} and {n["status"] for n in nodes(sim)} == {"UP"}
    destroy_all(sim, lcai)


# ---------------------------------------------------------------- destroy

DESTROY_CALLS = [("DELETE", r"/nodebalancers/\d+$"), ("GET", "/linode/instances$"),
                 ("DELETE", r"/linode/instances/\d+$"), ("DELETE", r"/networking/firewalls/\d+$")]


@pytest.mark.parametrize("fault", ["429", "500", "reset", "hang", "persistent-500", "403"])
@pytest.mark.parametrize("method,path", DESTROY_CALLS, ids=[f"{m} {p}" for m, p in DESTROY_CALLS])
def test_replicated_destroy_under_faults(sim, svc, lcai, method, path, fault):
    replicated(svc, 2)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("destroy", dep, "--yes")
    assert "Traceback" not in err
    if fault in ("persistent-500", "403"):
        assert code == 1 and Registry().get(dep) is not None  # not forgotten while something may remain
    else:
        assert code == 0, err
    destroy_all(sim, lcai)


def test_ctrl_c_while_adding_a_replica_removes_it(sim, svc, lcai, monkeypatch):
    from lcai_linode import replicas

    replicated(svc, 2)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))

    def interrupted(self, *a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(replicas.ReplicaMixin, "_wait_node_up", interrupted)
    code, out, err = lcai("scale", dep, 3, "--yes", "--directory", svc)
    assert code == 130 and "replica 3 removed again" in err and "is tracked with 2 replica(s)" in err
    assert len(sim.state()["instances"]) == 2 and len(nodes(sim)) == 2
    assert_consistent(sim)
    destroy_all(sim, lcai)


# ---------------------------------------------------------------- the request budget, sync


def fill(sim, n, replicas=3):
    """n replicated deployments made directly in the simulator's state (and the registry), as deploy makes them."""
    from lcai_linode.provider import deployment_tags

    st = sim.sim.state
    records = {}
    with st.lock:
        for d in range(n):
            dep = f"r{d:07d}"
            tags = deployment_tags(dep, "bench", "default")
            reps = []
            for k in range(1, replicas + 1):
                iid = st.new_id()
                priv = f"192.168.{128 + d // 200}.{(d % 200) + k}"
                st.instances[iid] = {"id": iid, "label": f"lcai-bench-default-{dep}-{k}", "status": "running",
                                     "tags": tags, "ipv4": [f"127.0.1.{k}", priv], "region": "us-ord",
                                     "type": "g6-standard-2", "created": "2026-01-01T00:00:00", "_t0": 0.0,
                                     "_user_data": None, "_private": priv}
                reps.append({"k": k, "linode_id": iid, "private_ip": priv, "public_ip": f"127.0.1.{k}"})
            nid = st.new_id()
            st.nodebalancers[nid] = {"id": nid, "label": f"lcai-nb-{dep}", "region": "us-ord",
                                     "ipv4": f"127.0.3.{d % 250}", "hostname": "", "ipv6": None,
                                     "client_conn_throttle": 0, "tags": tags,
                                     "created": "2026-01-01T00:00:00", "updated": "2026-01-01T00:00:00",
                                     "transfer": {}, "_configs": {}, "_source_ip": "192.168.255.1"}
            records[dep] = {"deployment_id": dep, "app": "bench", "env": "default", "provider": "linode",
                            "status": "running", "region": "us-ord", "type": "g6-standard-2", "replicas": replicas,
                            "created_at": "2026-01-01T00:00:00Z", "address": f"127.0.3.{d % 250}",
                            "provider_state": {"nodebalancer_id": nid, "replicas": reps}}
    Registry().transform(lambda deps: deps.update(records))


def test_status_of_200_deployments_with_3_replicas_takes_3_requests_and_one_per_nodebalancer(sim, lcai):
    """The lists (3 requests), then each NodeBalancer's live node states, one request each, read concurrently:
    the HEALTH column is the NodeBalancer's view now (issue 21 #15), an honest price of 203 requests."""
    fill(sim, 200)
    sim.clear_requests()
    code, out, err = lcai("status")
    assert code == 0, err
    paths = [r["path"] for r in sim.requests()]
    # 600 instances: two pages of 500 (one tag-filtered list); 200 NodeBalancers: one page
    assert paths[:3] == ["/linode/instances", "/linode/instances", "/nodebalancers"], paths[:3]
    nb_ids = sorted(int(n["id"]) for n in sim.state()["nodebalancers"])
    assert sorted(paths[3:]) == sorted(f"/nodebalancers/{i}/configs" for i in nb_ids), "one request per NodeBalancer"
    rows = [x for x in out.splitlines() if x.startswith("r0")]
    assert len(rows) == 200 and all("running" in x and "(3 replicas)" in x for x in rows)
    code, out, err = lcai("status", "--json")
    deps = json.loads(out)["deployments"]
    assert len(deps) == 200 and {d["replicas"] for d in deps} == {3} and not any(d.get("untracked") for d in deps)


def test_sync_adopts_a_replicated_deployment(sim, svc, lcai, tmp_path, monkeypatch):
    replicated(svc)
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))
    nb = sim.state()["nodebalancers"][0]
    # another machine: an empty registry
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "other"))
    code, out, err = lcai("status")
    assert code == 0 and dep in out and "untracked" in out
    code, out, err = lcai("sync")
    assert code == 0 and "adopted 1" in out, out + err
    rec = Registry().get(dep)
    assert rec["replicas"] == 3 and rec["address"] == nb["ipv4"]
    assert rec["provider_state"]["nodebalancer_id"] == nb["id"] and len(rec["provider_state"]["replicas"]) == 3
    assert rec["price_hourly"] == pytest.approx(0.123)
    code, out, err = lcai("status", dep)
    assert code == 0 and "healthy 3/3" in out
    # scaling down works without the directory; destroy from here removes everything
    code, out, err = lcai("scale", dep, "2", "--yes")
    assert code == 0, err
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 0, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == [] and st["nodebalancers"] == []


@pytest.mark.parametrize("after", [1, 3])
def test_ctrl_c_during_a_replicated_create_leaves_nothing(sim, svc, lcai, monkeypatch, after):
    """Ctrl-C after replica 1 (or 3) was created: every replica, the firewall (and no NodeBalancer) removed."""
    from lcai_linode import replicas

    replicated(svc)
    orig = replicas.ReplicaMixin.create_replica
    made = []

    def create_then_interrupt(self, spec, k, firewall_id):
        inst = orig(self, spec, k, firewall_id)
        made.append(inst["id"])
        if len(made) == after:
            raise KeyboardInterrupt
        return inst

    monkeypatch.setattr(replicas.ReplicaMixin, "create_replica", create_then_interrupt)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 130 and "interrupted: nothing was created" in err, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == [] and st["nodebalancers"] == []
    assert Registry().all() == {}
