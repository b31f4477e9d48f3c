"""Ctrl-C after the instance was created (its reply lost to the interrupt), then `deploy` again: the create goes
on with what exists (no second instance), and the saved root password is the one the instance has (issue 21 #6)."""


from lcai_core.registry import Registry


def test_the_rerun_resumes_and_the_password_matches(sim, svc, lcai, monkeypatch):
    from lcai_linode import provider as prov_mod

    P = prov_mod.LinodeProvider
    orig, sent = P.create_instance, []

    def interrupted(self, *a, **kw):
        sent.append(kw["root_pass"])
        orig(self, *a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "create_instance", interrupted)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 130
    monkeypatch.setattr(P, "create_instance", orig)
    pw = svc / ".linode" / "root-password"
    assert pw.read_text().strip() == sent[0], "saved before the steps: it matches the instance"
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert len(sim.state()["instances"]) == 1 and len(sim.state()["firewalls"]) == 1
    assert pw.read_text().strip() == sent[0], "the rerun keeps the password the instance was created with"
    (rec,) = Registry().all().values()
    assert rec["status"] != "creating" and (svc / ".linode" / "state.json").exists()


def test_an_undone_create_leaves_no_password_file(sim, svc, lcai):
    sim.fault(method="POST", path="/linode/instances$", status=400, reason="Region is sold out", times=10)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code != 0 and not (svc / ".linode" / "root-password").exists()
    assert Registry().all() == {}


def test_a_create_whose_undo_failed_is_resumed_in_its_directory(sim, svc, lcai):
    """The instance create was refused and removing the firewall failed too: the deployment stays recorded as
    `creating`; deploying again in the directory goes on with the firewall it finds (no second one)."""
    sim.fault(method="POST", path="/linode/instances$", status=400, reason="Region is sold out", times=1)
    sim.fault(method="DELETE", path="/networking/firewalls/", status=500, reason="Internal Server Error", times=50)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code != 0
    (rec,) = Registry().all().values()
    assert rec["status"] == "creating" and len(sim.state()["firewalls"]) == 1
    sim._call("DELETE", "/_sim/faults")
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert "creating again" in err
    assert len(sim.state()["firewalls"]) == 1 and len(sim.state()["instances"]) == 1
    assert list(Registry().all()) == [rec["deployment_id"]]
