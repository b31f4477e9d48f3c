"""A capability that keeps its data on the machine (redis, postgresql: `Capability.keeps_data`) cannot run on
replicas: each would hold its own database behind round-robin, and `lcai scale` down would delete one."""

import json

import pytest

from lcai_core.registry import Registry

pytest.importorskip("lcai_redis")


def with_redis(svc, replicas=None):
    text = (svc / "deploy.yml").read_text().replace("  runtime: docker\n", "  runtime: docker\n  features: [redis]\n")
    if replicas:
        text = text.replace("    tags: [team-ml]\n", f"    tags: [team-ml]\n    replicas: {replicas}\n")
    (svc / "deploy.yml").write_text(text)
    return svc


def test_validate_refuses_replicas_with_redis_naming_the_line(svc, lcai):
    with_redis(svc, replicas=2)
    code, out, err = lcai("templates", "validate", svc / "deploy.yml")
    assert code == 2
    line = next(x for x in (out + err).splitlines() if "keeps its data" in x)
    assert "deploy.yml:" in line and "replicas" in line and "capability 'redis'" in line, line


def test_deploy_replicas_flag_refused_before_anything_is_created(sim, svc, lcai):
    with_redis(svc)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--replicas", "2")
    assert code == 2 and "capability 'redis' keeps its data on the machine" in err, err
    assert sim.state()["instances"] == [] and Registry().all() == {}


def test_scale_of_a_replicated_deployment_with_redis(sim, svc, lcai, monkeypatch):
    """One that exists already (made before this check): scale up is refused, scale down says what it loses."""
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0.05")
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    replicas: 2\n"))
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    Registry().update(dep, features=["redis"])
    code, out, err = lcai("scale", dep, "3", "--yes")
    assert code == 2 and "capability 'redis' keeps its data" in err, err
    code, out, err = lcai("scale", dep, "1")  # off a terminal without --yes: refused, saying what it would lose
    assert code == 2 and "their redis data" in err and "data lost" in err, err
    assert len(sim.state()["instances"]) == 2
