"""`deploy --new` in a live directory no longer overwrites the first deployment's state (its secret seed) and
root password: they move to .linode/previous/<id>/ (0700), and `destroy` of that deployment removes them
(issue 21 #6)."""

import json
import stat

from lcai_core.registry import Registry


def test_deploy_new_keeps_the_first_deployments_state_and_password(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    first = json.loads((svc / ".linode" / "state.json").read_text())
    pw_file = svc / ".linode" / "root-password"
    first_pw = pw_file.read_text() if pw_file.exists() else None
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--new")
    assert code == 0, err
    second = json.loads((svc / ".linode" / "state.json").read_text())
    assert second["deployment_id"] != first["deployment_id"]
    kept = svc / ".linode" / "previous" / first["deployment_id"]
    assert json.loads((kept / "state.json").read_text()) == first, "the seed is kept, byte for byte"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    if first_pw is not None:
        assert (kept / "root-password").read_text() == first_pw
    assert f"kept in .linode/previous/{first['deployment_id']}/" in err
    assert lcai("destroy", first["deployment_id"], "--yes")[0] == 0
    assert not kept.exists() and (svc / ".linode" / "state.json").exists()
    assert set(Registry().all()) == {second["deployment_id"]}
