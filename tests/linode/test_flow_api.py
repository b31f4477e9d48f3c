"""The deploy flow as a library: another front end (the TUI, linode-cli) plans and applies a deploy through
lcai_core.api.frontend, with no click and nothing printed, against the simulator."""

from lcai_core.api import frontend as F
from lcai_core.errors import InputError
from lcai_core.registry import Registry


class Recorder:
    def __init__(self):
        self.said: list[str] = []

    def say(self, line: str) -> None:
        self.said.append(line)

    def notice(self, line: str) -> None:
        self.said.append(line)

    def clear(self) -> None:
        pass


def _plan(svc, **kw):
    host = F.get_host()
    return F.plan_deploy(host, Registry(), F.DeployOptions(directory=svc, **kw))


def test_plan_then_apply_creates_then_is_unchanged(sim, svc, capsys):
    plan = _plan(svc)
    assert plan.kind is F.Kind.CREATE
    assert not sim.state()["instances"], "planning creates nothing"
    ev = Recorder()
    out = F.apply(plan, ev, Registry())
    rec = out.record
    assert rec["deployment_id"] == plan.deployment_id
    assert Registry().get(rec["deployment_id"])["provider_state"]["linode_id"] in {
        i["id"] for i in sim.state()["instances"]}
    assert ev.said, "progress goes to the events"
    assert capsys.readouterr().out == "", "the flow prints nothing itself"
    again = _plan(svc)
    assert again.kind is F.Kind.UNCHANGED and again.deployment_id == rec["deployment_id"]
    assert F.apply(again, F.Quiet(), Registry()).record["deployment_id"] == rec["deployment_id"]
    assert len(sim.state()["instances"]) == 1


def test_a_plan_made_stale_by_another_deploy_is_refused(sim, svc):
    first = _plan(svc)
    second = _plan(svc)  # planned before the first one ran: both think they create
    F.apply(first, F.Quiet(), Registry())
    try:
        F.apply(second, F.Quiet(), Registry())
    except InputError as e:
        assert "created meanwhile" in str(e), str(e)
    else:
        raise AssertionError("a stale create plan was applied")
    assert len(sim.state()["instances"]) == 1, "the stale plan created no second instance"
