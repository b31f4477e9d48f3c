"""Ctrl-C is reported once: the step runner (or the wait) says what is left, and deploy adds no line of its own
(an ``InterruptReported`` tells it so); before anything exists, deploy says nothing was created."""

import re

import pytest


@pytest.mark.parametrize("stage,said", [
    ("preflight", "interrupted: nothing was created"),
    ("after_firewall", "interrupted: nothing was created (firewall removed)"),
    ("after_instance", "interrupted: deployment "),
])
def test_one_interrupted_line(sim, svc, lcai, monkeypatch, stage, said):
    from lcai_linode import provider as prov_mod

    P = prov_mod.LinodeProvider
    name = {"preflight": "preflight", "after_firewall": "create_firewall", "after_instance": "create_instance"}[stage]
    orig = getattr(P, name)

    def interrupted(self, *a, **kw):
        if stage != "preflight":
            orig(self, *a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(P, name, interrupted)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 130
    lines = [re.sub(r"^\[\s*[\d.]+s\] ", "", x) for x in err.splitlines()]  # progress lines carry a time
    lines = [x for x in lines if x.startswith("interrupted")]
    assert len(lines) == 1 and lines[0].startswith(said), err
