"""A single-instance rebuild whose reply was lost is looked up, never sent again: the disk is wiped once
(issue 21 #5)."""


def test_a_lost_rebuild_reply_is_not_resent(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0  # running: rebuildable
    (svc / ".env").write_text("API_KEY=k-new\n")
    sim.fault(method="POST", path="/rebuild$", status=502, reason="Bad Gateway", when="after", times=1)
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    rebuilds = [r for r in sim.requests() if r["method"] == "POST" and r["path"].endswith("/rebuild")]
    assert len(rebuilds) == 1, err
    assert "checking first whether it happened" in err


def test_a_refused_rebuild_behind_a_lost_reply_is_not_taken_for_one(sim, svc, lcai):
    """The machine is still booting from its create (the API refuses the rebuild: busy) and the reply is lost:
    no rebuild event, so lcai does not report a rebuild that never happened."""
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0  # not waited: still provisioning or booting
    (svc / ".env").write_text("API_KEY=k-new\n")
    sim.fault(method="POST", path="/rebuild$", status=502, reason="Bad Gateway", when="after", times=1)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    events = [e for e in sim.sim.state.events if e["action"] == "linode_rebuild"]
    if code == 0:
        assert events, "a rebuild reported as accepted happened"
    else:
        assert not events and "rebuild" in err


def test_an_accepted_rebuild_whose_record_failed_is_not_sent_again(sim, svc, lcai, monkeypatch):
    """The disk filled up right after the API accepted the rebuild: the next, unchanged deploy records it and
    sends no second rebuild (issue 21 #5)."""
    import errno

    from lcai_core import files
    from lcai_core.registry import Registry

    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))
    (svc / ".env").write_text("API_KEY=k-new\n")
    real, writes = files.write_private, []

    def fill_after_intent(path, text):
        if str(path).endswith("registry.json"):
            writes.append(path)
            if len(writes) == 2:  # the first write records the intent; the one after the accepted rebuild fails
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(files, "write_private", fill_after_intent)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 1 and "No space left on device" in err, err
    monkeypatch.setattr(files, "write_private", real)
    assert len([e for e in sim.sim.state.events if e["action"] == "linode_rebuild"]) == 1
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert "accepted before, but its record was not written" in err + out
    assert not [r for r in sim.requests() if r["path"].endswith("/rebuild")], "no second rebuild"
    rec = Registry().get(dep)
    assert rec["rebuild_sha256"] is None and rec["rendered_sha256"]
    sim.clear_requests()
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0 and "nothing changed" in lcai("deploy", "-d", svc, "--yes")[2]
