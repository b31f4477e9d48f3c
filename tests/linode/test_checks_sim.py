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


def _dep(svc):
    import json

    return json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]


def test_destroy_during_a_running_deploy_of_it_is_refused(sim, svc, lcai, monkeypatch):
    import threading

    from lcai_core import lifecycle
    from lcai_core.registry import Registry

    started, go, result = threading.Event(), threading.Event(), {}
    run = lifecycle.StepRunner.run

    def slow_run(self, steps):  # the deploy is between "recorded (creating)" and its resources
        started.set()
        assert go.wait(30)
        return run(self, steps)

    monkeypatch.setattr(lifecycle.StepRunner, "run", slow_run)
    t = threading.Thread(target=lambda: result.setdefault("code", lcai("deploy", "-d", svc, "--yes")[0]))
    t.start()
    try:
        assert started.wait(30)
        (dep,) = Registry().all()
        code, out, err = lcai("destroy", dep, "--yes")
        busy = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(busy) == 1, err
        assert busy[0].startswith(f"error: deployment {dep} is busy: `lcai deploy` (pid ")
        assert busy[0].endswith("is working on it; destroy refused")
        assert Registry().get(dep) is not None  # nothing was deleted or forgotten
    finally:
        go.set()
        t.join(60)
    assert result["code"] == 0 and len(sim.state()["instances"]) == 1
    code, out, err = lcai("destroy", dep, "--yes")  # the deploy is done: free
    assert code == 0 and f"destroyed {dep}" in out, err
    assert sim.state()["instances"] == []


HOLDER = """
import sys, time
from lcai_core.registry import deployment_lock
with deployment_lock(sys.argv[1], "deploy"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_deploy_in_another_process_refuses_destroy_until_that_process_is_gone(sim, svc, lcai):
    import signal
    import subprocess
    import sys

    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = _dep(svc)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, dep], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        code, _, err = lcai("destroy", dep, "--yes")
        assert code == 1 and f"`lcai deploy` (pid {holder.pid}, since " in err, err
        code, _, err = lcai("deploy", "-d", svc, "--yes")  # a second deploy of it too
        assert code == 1 and f"(pid {holder.pid}, since " in err and "deploy refused" in err, err
    finally:
        holder.send_signal(signal.SIGKILL)  # gone without cleaning up: its holder file stays
        holder.wait(10)
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 0 and f"destroyed {dep}" in out, err


def test_redeploy_names_the_environment_variables_that_changed_never_their_values(sim, svc, lcai, lcai_config_dir):
    waited = ("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert lcai(*waited)[0] == 0  # each deploy waits: the simulator refuses a rebuild while busy
    dep = _dep(svc)
    (svc / ".env").write_text("API_KEY=s3cret-two\nEXTRA_FLAG=1\n")
    code, out, err = lcai(*waited)
    assert code == 0, err
    assert "  environment: API_KEY changed, EXTRA_FLAG added (values not shown)" in err.splitlines(), err
    (svc / ".env").write_text("API_KEY=s3cret-two\n")
    code, out, err = lcai(*waited)
    assert code == 0 and "  environment: EXTRA_FLAG removed (values not shown)" in err.splitlines(), err
    registry = (lcai_config_dir / "registry.json").read_text()
    assert dep in registry and "k-123" not in registry and "s3cret-two" not in registry
    # nothing changed: no environment line, nothing to do
    code, out, err = lcai(*waited)
    assert code == 0 and "nothing changed" in err and "environment:" not in err


def test_the_step_runners_hints_follow_linode_cli_build(sim, svc, lcai):
    from lcai_core import ui

    sim.fault(method="POST", path="/linode/instances$", status=403, reason="Unauthorized", times=100)
    sim.fault(method="DELETE", path=r"/networking/firewalls/\d+$", status=403, reason="Unauthorized", times=100)
    ui.set_prog("linode-cli build")
    try:
        code, out, err = lcai("deploy", "-d", svc, "--yes")
    finally:
        ui.set_prog("lcai")
    assert code != 0
    assert "could not remove what was created" in err and "stays recorded: `linode-cli build destroy " in err, err
    assert "`lcai " not in err


def test_deploy_refuses_a_gpu_template_on_a_type_without_gpu(sim, svc, lcai):
    from lcai_core.plugins import get_host
    from lcai_core.registry import Registry

    if get_host().catalog.lookup("gpu-nvidia") is None:
        pytest.skip("gpu-nvidia not installed: pip install -e plugins/lcai-gpu-nvidia")
    text = (svc / "deploy.yml").read_text().replace("  runtime: docker\n",
                                                    "  runtime: docker\n  features: [gpu-nvidia]\n")
    (svc / "deploy.yml").write_text(text)
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and f"{svc / 'deploy.yml'}:10: deploy.linode.type_default: capability 'gpu-nvidia' needs a GPU, " \
        "and Linode type g6-standard-2 has none" in err, err
    code, _, err = lcai("deploy", "-d", svc, "--yes", "--type", "g6-dedicated-4")
    assert code == 2 and "--type g6-dedicated-4: capability 'gpu-nvidia' needs a GPU" in err, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == [] and Registry().all() == {}
