"""Fault injection at every API call of deploy and destroy: afterwards the simulator holds no instance or
firewall the registry does not know, and never a duplicate. Ctrl-C leaves a tracked deployment or nothing."""

import pytest

from lcai_core.registry import Registry

DEPLOY_CALLS = [
    ("GET", "/profile$"), ("GET", "/linode/types/"), ("GET", "/regions/"), ("GET", "/images/"),
    ("GET", "/networking/firewalls$"), ("POST", "/networking/firewalls$"),
    ("GET", "/linode/instances$"), ("POST", "/linode/instances$"), ("GET", r"/linode/instances/\d+$"),
]
FAULTS = {
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


def assert_consistent(sim):
    """Nothing in the account that the registry does not know; at most one instance per deployment."""
    st = sim.state()
    reg = Registry().all()
    known_linodes = {(r.get("provider_state") or {}).get("linode_id") for r in reg.values()}
    known_fws = {(r.get("provider_state") or {}).get("firewall_id") for r in reg.values()}
    for inst in st["instances"]:
        assert inst["id"] in known_linodes, ("unknown instance", inst["id"], reg)
    for fw in st["firewalls"]:
        assert fw["id"] in known_fws, ("unknown firewall", fw["id"], reg)
    per_dep = {}
    for inst in st["instances"]:
        dep = next(t for t in inst["tags"] if t.startswith("lcai-id:"))
        per_dep[dep] = per_dep.get(dep, 0) + 1
    assert all(n == 1 for n in per_dep.values()), per_dep


# a lost reply (the request took effect, the response did not arrive) matters for creates; reads just retry
DEPLOY_CASES = [(m, p, f) for m, p in DEPLOY_CALLS for f in FAULTS if f != "lost-reply" or m == "POST"]


@pytest.mark.parametrize("method,path,fault", DEPLOY_CASES, ids=[f"{m} {p} {f}" for m, p, f in DEPLOY_CASES])
def test_deploy_under_faults(sim, svc, lcai, method, path, fault):
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")
    assert "Traceback" not in err
    if fault == "persistent-500":
        assert code == 1 and "error:" in err
    elif fault in REFUSALS:
        # a refusal is final: one line with the API's reason and the next step, nothing left behind
        assert code in (1, 2), err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and ("refused" in errors[0] or "rejected" in errors[0]), err
        assert FAULTS[fault]["reason"] in errors[0] or "(403)" in errors[0], err
        assert "hint:" in err
        if method == "POST":
            assert Registry().all() == {}, "a refused create must not leave a registry entry"
    else:
        assert code == 0, err
    assert_consistent(sim)
    st = sim.state()
    if code == 0:
        assert len(st["instances"]) == 1 and len(st["firewalls"]) == 1
    elif fault in REFUSALS and method == "POST":
        assert st["instances"] == [] and st["firewalls"] == []
    # and, once the API is healthy again, destroy cleans up whatever exists
    sim.sim.state.faults.clear()
    for dep_id in list(Registry().all()):
        assert lcai("destroy", dep_id, "--yes")[0] == 0
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == []


DESTROY_CALLS = [("GET", "/linode/instances$"), ("DELETE", r"/linode/instances/\d+$"),
                 ("DELETE", r"/networking/firewalls/\d+$")]


@pytest.mark.parametrize("fault", ["429", "500", "busy", "reset", "hang", "persistent-500", "403"])
@pytest.mark.parametrize("method,path", DESTROY_CALLS, ids=[f"{m} {p}" for m, p in DESTROY_CALLS])
def test_destroy_under_faults(sim, svc, lcai, method, path, fault):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep_id = next(iter(Registry().all()))
    sim.fault(method=method, path=path, **FAULTS[fault])
    code, out, err = lcai("destroy", dep_id, "--yes")
    assert "Traceback" not in err
    if fault in ("persistent-500", "403"):
        assert code == 1 and "error:" in err
        assert Registry().get(dep_id) is not None  # not forgotten while something may remain
        sim.sim.state.faults.clear()
        assert lcai("destroy", dep_id, "--yes")[0] == 0
    else:
        assert code == 0, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == []
    assert Registry().get(dep_id) is None


def test_already_deleted_resources_are_fine(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep_id = next(iter(Registry().all()))
    sim.sim.state.instances.clear()
    sim.sim.state.firewalls.clear()
    code, out, err = lcai("destroy", dep_id, "--yes")
    assert code == 0 and "already gone" in err


@pytest.mark.parametrize("stage", ["preflight", "create_firewall", "after_firewall", "create_instance",
                                   "after_instance", "wait"])
def test_ctrl_c_leaves_tracked_or_nothing(sim, svc, lcai, monkeypatch, stage):
    from lcai_linode import provider as prov_mod

    P = prov_mod.LinodeProvider
    orig = {n: getattr(P, n) for n in ("preflight", "create_firewall", "create_instance", "get_instance")}

    def interrupt_after(name):
        def f(self, *a, **kw):
            orig[name](self, *a, **kw)
            raise KeyboardInterrupt
        return f

    def interrupt_before(name):
        def f(self, *a, **kw):
            raise KeyboardInterrupt
        return f

    patch = {"preflight": ("preflight", interrupt_before), "create_firewall": ("create_firewall", interrupt_before),
             "after_firewall": ("create_firewall", interrupt_after),
             "create_instance": ("create_instance", interrupt_before),
             "after_instance": ("create_instance", interrupt_after), "wait": ("get_instance", interrupt_before)}[stage]
    monkeypatch.setattr(P, patch[0], patch[1](patch[0]))
    args = ["deploy", "-d", svc, "--yes"] + (["--wait"] if stage == "wait" else [])
    code, out, err = lcai(*args)
    assert code == 130 and "interrupted" in err
    st = sim.state()
    reg = Registry().all()
    if stage in ("after_instance", "wait"):
        assert "is tracked" in err
        assert len(st["instances"]) == 1
        assert reg[next(iter(reg))]["provider_state"]["linode_id"] == st["instances"][0]["id"]
    else:
        assert "nothing was created" in err
        assert st["instances"] == [] and st["firewalls"] == [] and reg == {}
    assert_consistent(sim)
