"""The step runner undoes every step that happened exactly once, in reverse, whatever failed: a step, or saving
the registry after a step (the step is then done, and must not be undone a second time as "the current one")."""

import pytest

from lcai_core.lifecycle import StepRunner
from lcai_core.providers import Step
from lcai_core.registry import Registry


class FlakyRegistry(Registry):
    """A registry whose ``update`` fails once the create has saved ``fail_after`` times."""

    def __init__(self, fail_after: int):
        super().__init__()
        self.fail_after, self.saves = fail_after, 0

    def update(self, deployment_id, create=False, **fields):
        if not create and "provider_state" in fields and fields.get("status") != "creating":
            self.saves += 1
            if self.saves > self.fail_after:
                raise OSError("disk full")
        return super().update(deployment_id, create=create, **fields)


def steps(calls: list, names=("reserve", "upload", "boot"), fail: str = ""):
    made: set = set()

    def step(name):
        def run(state, say):
            calls.append(("run", name))
            if name == fail:
                raise RuntimeError(f"{name} failed")
            made.add(name)
            return {name: True}

        def find(state):
            return {name: True} if name in made else None

        def undo(state, say):
            calls.append(("undo", name))
            made.discard(name)

        return Step.of(name, run, find, undo)

    return [step(n) for n in names]


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_a_failed_save_after_a_step_undoes_each_done_step_once(fail_after):
    reg = FlakyRegistry(fail_after)
    reg.update("dep00001", create=True, status="creating", provider_state={})
    calls: list = []
    said: list = []
    with pytest.raises(OSError, match="disk full"):
        StepRunner(reg, "dep00001", said.append, "toy").run(steps(calls))
    done = ["reserve", "upload", "boot"][:fail_after + 1]  # the step whose save failed did happen
    assert [n for k, n in calls if k == "run"] == done
    assert [n for k, n in calls if k == "undo"] == list(reversed(done))
    assert said[-1] == f"failed: nothing was left on toy ({', '.join(reversed(done))} removed)"
    assert Registry().get("dep00001") is None


def test_a_failed_step_is_undone_when_it_made_its_resource_and_others_once():
    reg = Registry()
    reg.update("dep00002", create=True, status="creating", provider_state={})
    calls: list = []
    said: list = []
    with pytest.raises(RuntimeError, match="boot failed"):
        StepRunner(reg, "dep00002", said.append, "toy").run(steps(calls, fail="boot"))
    assert [n for k, n in calls if k == "undo"] == ["upload", "reserve"]
    assert said[-1] == "failed: nothing was left on toy (upload, reserve removed)"
