"""An `lcai-id:` tag anyone with write access to the account can set (`lcai-id:../../x`, a terminal sequence) is not
a deployment id: `status` and `sync` leave that instance out, so its id never becomes a registry key, a lock file's
name or a string on the terminal (issue 21 item 11)."""

import copy
import json

from lcai_core.registry import Registry


def test_an_instance_whose_lcai_id_tag_is_not_an_id_is_not_adopted(sim, svc, lcai, tmp_path, lcai_config_dir):
    code, out, err = lcai("deploy", "--directory", svc, "--yes")
    assert code == 0, err
    dep = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    insts = sim.sim.state.instances
    base = next(iter(insts.values()))
    for n, bad in enumerate(("../../../../tmp/lcai-escape", "zz\x1b[2Jzz", "Web Prod", "")):
        other = copy.deepcopy(base)
        other["id"] = base["id"] + 1000 + n
        other["tags"] = ["lcai", f"lcai-id:{bad}", "lcai-app:x", "lcai-env:y"]
        insts[other["id"]] = other
    code, out, err = lcai("status", "--all")
    assert code == 0, err
    assert "escape" not in out and "zz" not in out and "untracked" not in out + err and dep in out, out
    code, out, err = lcai("sync")
    assert code == 0 and "adopted 0" in out, out + err
    assert set(Registry().all()) == {dep}
    code, out, err = lcai("destroy", "../../../../tmp/lcai-escape", "--yes")
    assert code == 2 and "no deployment" in err, err
    assert not list(tmp_path.rglob("lcai-escape*")) and not list(lcai_config_dir.parent.rglob("lcai-escape*"))
