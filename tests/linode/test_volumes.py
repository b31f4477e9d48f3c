"""Block Storage volumes through the Linode provider and the simulator: the create order (unbooted instance,
volumes, boot), a redeploy keeps them, destroy keeps them (and their record) unless --volumes, a new deploy of
the same app and env attaches them again, faults at a volume call leave nothing unknown and no duplicate."""

import pytest

from lcai_core.registry import Registry


def with_volumes(svc, vols="      - {name: data, mount: /var/lib/lcai-data, size_gb: 50}\n"):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    volumes:\n" + vols))
    return svc


def writes(sim):
    return [(r["method"], r["path"]) for r in sim.requests() if r["method"] in ("POST", "PUT", "DELETE")]


def test_plan_prices_the_volumes(sim, svc, lcai):
    with_volumes(svc)
    code, out, err = lcai("plan", "-d", svc)
    assert code == 0, err
    assert "volumes: data 50 GB at /var/lib/lcai-data (50 GB, $5.0/mo, in the total)" in out + err, out + err


def test_create_order_is_unbooted_then_volume_then_boot(sim, svc, lcai):
    with_volumes(svc)
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    w = writes(sim)
    create = w.index(("POST", "/linode/instances"))
    vol = w.index(("POST", "/volumes"))
    boot = next(i for i, x in enumerate(w) if x[1].endswith("/boot"))
    assert create < vol < boot, w
    (vol_state,) = sim.state()["volumes"]
    (inst,) = sim.state()["instances"]
    assert vol_state["linode_id"] == inst["id"] and vol_state["size"] == 50
    dep = next(iter(Registry().all()))
    assert f"lcai-id:{dep}" in vol_state["tags"]
    rec = Registry().get(dep)
    assert rec["volumes"][0]["label"] == vol_state["label"]
    assert rec["provider_state"]["volumes"][0]["id"] == vol_state["id"]


def test_redeploy_keeps_the_volume_and_says_so(sim, svc, lcai):
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    vid = sim.state()["volumes"][0]["id"]
    (svc / ".env").write_text("API_KEY=k-456\n")
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert "kept: volume data, 50 GB" in err, err
    assert [v["id"] for v in sim.state()["volumes"]] == [vid] and sim.state()["volumes"][0]["linode_id"]
    assert not any(p == "/volumes" for m, p in writes(sim)), "no second volume"
    # a rebuild that lost the attachment attaches it again before booting
    sim.sim.state.volumes[vid]["linode_id"] = None
    (svc / ".env").write_text("API_KEY=k-789\n")
    sim.clear_requests()
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    w = writes(sim)
    assert ("POST", f"/volumes/{vid}/attach") in w
    assert w.index(("POST", f"/volumes/{vid}/attach")) < next(i for i, x in enumerate(w) if x[1].endswith("/boot"))


def test_a_smaller_or_removed_volume_is_refused(sim, svc, lcai):
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("size_gb: 50", "size_gb: 20"))
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "a volume never shrinks (20 GB asked)" in err
    assert sim.state()["volumes"][0]["size"] == 50
    (svc / "deploy.yml").write_text(text.replace("    volumes:\n      - {name: data, mount: /var/lib/lcai-data, "
                                                 "size_gb: 50}\n", ""))
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "never drops a volume" in err


def test_a_larger_volume_is_grown_before_the_rebuilt_machine_boots(sim, svc, lcai):
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    vid = sim.state()["volumes"][0]["id"]
    dep = next(iter(Registry().all()))
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("size_gb: 50", "size_gb: 80"))
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert "volume data: 50 GB -> 80 GB (grown before the machine boots" in out + err, out + err
    w = writes(sim)
    rebuild = w.index(("POST", f"/linode/instances/{sim.state()['instances'][0]['id']}/rebuild"))
    resize = w.index(("POST", f"/volumes/{vid}/resize"))
    boot = next(i for i, x in enumerate(w) if x[1].endswith("/boot"))
    assert rebuild < resize < boot, w
    assert [(v["id"], v["size"]) for v in sim.state()["volumes"]] == [(vid, 80)]
    assert "volume data: grown from 50 GB to 80 GB" in err, err
    assert Registry().get(dep)["volumes"][0]["size_gb"] == 80
    # unchanged now: no second resize, no rebuild
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0 and writes(sim) == [], writes(sim)


def test_destroy_keeps_the_volume_then_a_new_deploy_attaches_it(sim, svc, lcai):
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    vid = sim.state()["volumes"][0]["id"]
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 0, err
    assert "kept: volume data" in err and "--volumes" in err
    assert sim.state()["instances"] == [] and sim.state()["volumes"][0]["linode_id"] is None
    assert Registry().get(dep)["status"] == "volumes kept"
    code, out, err = lcai("status")
    assert code == 0 and "volumes kept" in next(x for x in out.splitlines() if x.startswith(dep)), out
    code, out, err = lcai("destroy", "--purge", "--yes")
    assert Registry().get(dep) is not None, "purge does not take kept volumes for vanished"
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 2 and "only its volumes are kept" in err
    # the next deploy of the directory: a new deployment, the same volume, attached before its first boot
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    (new,) = [d for d in Registry().all() if d != dep]
    assert Registry().get(dep) is None, "the old record is absorbed"
    assert [v["id"] for v in sim.state()["volumes"]] == [vid]
    assert sim.state()["volumes"][0]["linode_id"] == sim.state()["instances"][0]["id"]
    assert "with its data" in err
    # --volumes deletes them, after saying so
    code, out, err = lcai("destroy", new, "--volumes")
    assert code == 2 and "AND its volumes data 50 GB, with their data" in err
    code, out, err = lcai("destroy", new, "--volumes", "--yes")
    assert code == 0, err
    assert sim.state()["volumes"] == [] and Registry().all() == {}


def test_a_volume_held_by_another_deployment_is_refused_and_undone(sim, svc, lcai):
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--new")
    assert code == 2 and "is attached to instance" in err, err
    assert len(sim.state()["instances"]) == 1 and len(sim.state()["volumes"]) == 1
    assert len(Registry().all()) == 1


@pytest.mark.parametrize("fault", [
    {"method": "POST", "path": "/volumes$", "status": 500, "when": "after", "times": 1},  # created, reply lost
    {"method": "POST", "path": "/volumes$", "status": 429, "times": 2},
    {"method": "POST", "path": "/boot$", "status": 400, "reason": "boot refused", "times": 50},
])
def test_faults_at_volume_calls_leave_no_unknown_or_duplicate_volume(sim, svc, lcai, fault):
    with_volumes(svc)
    sim.fault(**fault)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    vols = sim.state()["volumes"]
    assert len(vols) <= 1, "no duplicate volume"
    if code == 0:
        assert len(vols) == 1 and vols[0]["linode_id"] == sim.state()["instances"][0]["id"]
        assert Registry().get(next(iter(Registry().all())))["provider_state"]["volumes"][0]["id"] == vols[0]["id"]
    else:
        # undone: the empty volume this deployment created is deleted with the instance
        assert vols == [] and sim.state()["instances"] == [] and Registry().all() == {}, (err, vols)


def test_undo_never_deletes_a_kept_volume(sim, svc, lcai):
    """A failed create that had attached an earlier deployment's kept volume leaves it, with its data."""
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    assert lcai("destroy", dep, "--yes")[0] == 0
    sim.fault(method="POST", path="/boot$", status=400, reason="boot refused", times=50)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code != 0
    assert len(sim.state()["volumes"]) == 1 and sim.state()["volumes"][0]["linode_id"] is None
    assert "kept (an earlier deployment's data)" in err
    assert Registry().get(dep)["status"] == "volumes kept"


def test_sync_on_another_machine_knows_the_kept_volumes(sim, svc, lcai, monkeypatch, tmp_path):
    """Nothing lcai creates is unknown: a second machine's `sync` adopts the kept volumes as a `volumes kept`
    record, and `destroy --volumes` there deletes them."""
    with_volumes(svc)
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    assert lcai("destroy", dep, "--yes")[0] == 0
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "machine2"))
    code, out, err = lcai("sync")
    assert code == 0 and "adopted 1" in out, out + err
    rec = Registry().get(dep)
    assert rec["status"] == "volumes kept" and rec["volumes"][0]["name"] == "data" and rec["app"] == "web"
    code, out, err = lcai("destroy", dep, "--volumes", "--yes")
    assert code == 0, err
    assert sim.state()["volumes"] == [] and Registry().all() == {}
