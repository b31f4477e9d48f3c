"""What a user expects from deploy on the simulator (issue 25, items 8 and 9): the words suggest only what
works (a replicated deploy does not suggest --app-from, which it refuses; under `linode-cli build` the hints
say so) and Linode's preflight refuses a GPU template on a type the API says has no GPU."""

import pytest

from lcai_core.errors import InputError
from lcai_core.providers import Spec

from .test_replicas import replicated


def test_replicated_deploy_does_not_suggest_app_from(sim, svc, lcai):
    code, _, err = lcai("deploy", "-d", replicated(svc, 2), "--yes")
    assert code == 0, err
    assert "open to the whole internet at the NodeBalancer" in err
    assert "--app-from CIDR limits" not in err


def test_single_deploy_still_suggests_app_from(sim, svc, lcai):
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0 and "--app-from CIDR limits who can reach it" in err, err


def test_hints_under_linode_cli_build_say_linode_cli_build(sim, svc, lcai):
    from lcai_core import ui

    ui.set_prog("linode-cli build")
    try:
        code, out, _ = lcai("status")
        assert code == 0 and out.strip() == ("no deployments (linode-cli build deploy creates one; linode-cli "
                                             "build sync adopts ones made elsewhere)")
        code, out, err = lcai("deploy", "-d", svc, "--yes")
        assert code == 0, err
        dep = (svc / ".linode" / "state.json").read_text().split('"deployment_id": "')[1].split('"')[0]
        assert (f"  linode-cli build status {dep}   ·   linode-cli build logs {dep}   ·   "
                f"linode-cli build destroy {dep}") in out, out
        assert "lcai status" not in out + err and "lcai destroy" not in out + err
    finally:
        ui.set_prog("lcai")


def _spec(type_, gpu=True):
    return Spec(deployment_id="abcd1234", app="web", env="default", label="lcai-web-default-abcd1234", tags=(),
                region="us-ord", type=type_, image="linode/ubuntu24.04", user_data="", user_data_b64="", gpu=gpu)


def test_preflight_asks_the_api_whether_the_type_has_a_gpu(sim):
    from lcai_linode.provider import LinodeProvider

    with pytest.raises(InputError) as e:
        LinodeProvider().preflight(_spec("g6-standard-2"))
    assert e.value.exit_code == 2
    assert e.value.message == "the template needs a GPU (gpu-nvidia), and type g6-standard-2 has none"
    assert "g2-gpu-rtx4000a1-s" in (e.value.hint or "")
    assert "RTX4000" in LinodeProvider().preflight(_spec("g2-gpu-rtx4000a1-s")).summary
    assert LinodeProvider().preflight(_spec("g6-standard-2", gpu=False)).summary
