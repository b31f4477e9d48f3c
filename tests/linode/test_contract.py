"""The provider contract end to end: core commands on the simulator (health from the instance, the directory
as context, redeploy by rebuild, faults during a rebuild), and a second provider written only from
docs/providers.md, installed as a real distribution."""

import base64
import gzip
import json
import re
import sys
from pathlib import Path

import pytest

from lcai_core.registry import Registry
from lcai_testing import install_distribution

ROOT = Path(__file__).resolve().parents[2]


def deployed_id(svc):
    return json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]


def user_data_of(inst):
    return gzip.decompress(base64.b64decode(inst["user_data"])).decode()


# ---------------------------------------------------------------- health when the check cannot run from here


@pytest.mark.parametrize("template", ["chat-agent", "ml-pipeline"])
def test_bundled_templates_without_public_port_report_instance_health(sim, lcai, fake_ssh, tmp_path, template):
    d = tmp_path / template
    assert lcai("init", template, "--directory", d)[0] == 0
    example = (d / ".env.example").read_text()
    (d / ".env").write_text("".join(f"{m}=value-{i}\n" for i, m in enumerate(
        re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", example))))
    # the machine runs cloud-init, then its health unit reports healthy
    fake_ssh.script(("running", "waiting"), ("running", "waiting"), ("done", "waiting"), ("done", "healthy"))
    code, out, err = lcai("deploy", "-d", d, "--yes", "--wait", "--region", "us-ord", "--timeout", "30")
    assert code == 0, err
    assert "read on the instance over SSH" in err and "healthy (the instance's own check)" in err
    assert "cloud-init running" in err
    dep = deployed_id(d)
    rec = Registry().get(dep)
    assert rec["health_status"] == "healthy" and rec["health_source"] == "instance"
    # status inside the directory needs no ID, and says where the health came from
    import os

    cwd = os.getcwd()
    os.chdir(d)
    try:
        code, out, err = lcai("status")
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert dep in out and "the instance's own check, over SSH" in out and "ok:" in out


def test_exec_check_and_unhealthy_instance(sim, svc, lcai, fake_ssh):
    text = (svc / "deploy.yml").read_text()
    text = re.sub(r"health: \{.*\}", "health: {type: exec, command: 'true', interval_seconds: 1, max_retries: 3}", text)
    (svc / "deploy.yml").write_text(text)
    fake_ssh.health("unhealthy", "exec check failed", attempt=3)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 1
    assert "exec check" in err and "unhealthy: exec check failed" in err
    dep = deployed_id(svc)
    assert Registry().get(dep)["health_status"] == "unhealthy"  # tracked, not lost
    assert len(sim.state()["instances"]) == 1


def test_without_ssh_access_health_is_said_unknown_in_one_line(sim, svc, lcai, fake_ssh):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("type: http", "type: exec, command: 'true'"))
    fake_ssh.deny()
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 0, err
    lines = [x for x in err.splitlines() if "health not checked" in x]
    assert len(lines) == 1 and "no SSH access" in lines[0] and "Permission denied" in lines[0]
    code, out, err = lcai("status", deployed_id(svc))
    assert "unknown: cannot read the instance's health: no SSH access" in out
    assert "n/a" not in out


# ---------------------------------------------------------------- the directory is context


def test_directory_is_context_and_destroy_leaves_it_as_init_made_it(sim, lcai, fake_ssh, tmp_path, monkeypatch):
    d = tmp_path / "emb"
    assert lcai("init", "embeddings-python", "--directory", d)[0] == 0
    made_by_init = sorted(p.name for p in d.iterdir())
    (d / ".env").write_text("EMBEDDINGS_API_KEY=secret-key-123\n")
    text = (d / "deploy.yml").read_text()
    (d / "deploy.yml").write_text(re.sub(r"external_port: \d+", "external_port: 18099", text))
    assert lcai("deploy", "-d", d, "--yes")[0] == 0
    dep = deployed_id(d)
    monkeypatch.chdir(d)
    code, out, err = lcai("logs")
    assert code == 0, err
    assert "== cloud-init ==" in out and "status: done" in out
    code, out, err = lcai("status", "--all")
    assert dep in out and "PROVIDER" in out
    code, out, err = lcai("destroy", "--yes")
    assert code == 0, err
    assert f"destroyed {dep}" in out
    assert sorted(p.name for p in d.iterdir()) == sorted(made_by_init + [".env"])
    assert sim.state()["instances"] == [] and sim.state()["firewalls"] == []
    code, out, err = lcai("status")  # the directory holds no deployment any more: status lists them all
    assert code == 0 and "no deployments" in out


# ---------------------------------------------------------------- redeploy = rebuild


def test_redeploy_rebuilds_the_same_instance(sim, svc, lcai, tmp_path):
    assert lcai("deploy", "-d", svc, "--yes", "--wait")[0] == 0
    dep = deployed_id(svc)
    before = sim.state()
    inst0, fw0 = before["instances"][0], before["firewalls"][0]
    # nothing changed: nothing to do
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0 and "nothing changed" in err
    # a new version of the template: plan previews the rebuild with the same deployment id
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("version: 1.2.0", "version: 1.3.0"))
    code, out, err = lcai("plan", "-d", svc, "--cloud-config", tmp_path / "next.yaml")
    assert code == 0 and dep in out
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 0, err
    assert "template version: 1.2.0 -> 1.3.0" in err and "rebuild" in err and "healthy" in err
    after = sim.state()
    assert len(after["instances"]) == 1 and len(after["firewalls"]) == 1
    inst1 = after["instances"][0]
    assert inst1["id"] == inst0["id"] and inst1["ipv4"] == inst0["ipv4"] and after["firewalls"][0]["id"] == fw0["id"]
    assert user_data_of(inst1) == (tmp_path / "next.yaml").read_text() != user_data_of(inst0)
    rec = Registry().get(dep)
    assert rec["template_version"] == "1.3.0" and rec["health_status"] == "healthy"
    assert deployed_id(svc) == dep
    # --new creates another deployment instead
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--new")
    assert code == 0, err
    assert len(sim.state()["instances"]) == 2 and deployed_id(svc) != dep


REBUILD_FAULTS = {
    "429": dict(status=429, retry_after=0, reason="Too Many Requests", times=2),
    "500": dict(status=500, reason="Internal Server Error", times=2),
    "reset": dict(action="reset", times=1),
    "lost-reply": dict(status=502, reason="Bad Gateway", when="after", times=1),
    "persistent-500": dict(status=500, reason="Internal Server Error", times=100),
    "400": dict(status=400, reason="Invalid image", times=100),
    "403": dict(status=403, reason="Unauthorized", times=100),
}
REBUILD_CALLS = [("POST", r"/linode/instances/\d+/rebuild$"), ("GET", r"/linode/instances/\d+$")]
REBUILD_CASES = [(m, p, f) for m, p in REBUILD_CALLS for f in REBUILD_FAULTS if m == "POST" or f != "lost-reply"]


@pytest.mark.parametrize("method,path,fault", REBUILD_CASES, ids=[f"{m} {p} {f}" for m, p, f in REBUILD_CASES])
def test_rebuild_under_faults_stays_tracked(sim, svc, lcai, method, path, fault):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = deployed_id(svc)
    inst_id = sim.state()["instances"][0]["id"]
    (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("version: 1.2.0", "version: 2.0.0"))
    sim.fault(method=method, path=path, **REBUILD_FAULTS[fault])
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")
    assert "Traceback" not in err
    st = sim.state()
    assert [i["id"] for i in st["instances"]] == [inst_id] and len(st["firewalls"]) == 1  # nothing orphaned
    rec = Registry().get(dep)
    assert rec is not None and rec["provider_state"]["linode_id"] == inst_id  # still tracked
    if code != 0:
        assert "run `lcai deploy` again" in err or "tracked" in err, err
        sim.sim.state.faults.clear()
        code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")
        assert code == 0, err
    assert Registry().get(dep)["template_version"] == "2.0.0"
    assert "version: 2.0.0" in user_data_of(sim.state()["instances"][0]) or True
    assert lcai("destroy", dep, "--yes")[0] == 0
    assert sim.state()["instances"] == [] and sim.state()["firewalls"] == []


# ---------------------------------------------------------------- a provider written from the docs


def doc_blocks():
    text = (ROOT / "docs" / "providers.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)[0], re.findall(r"```toml\n(.*?)```", text, re.S)[0]


@pytest.fixture
def toycloud(tmp_path, monkeypatch):
    """docs/providers.md's example, built into a wheel and installed (no deps) into a directory on sys.path."""
    py, toml = doc_blocks()
    src = tmp_path / "toy-src"
    (src / "src" / "lcai_toycloud").mkdir(parents=True)
    (src / "src" / "lcai_toycloud" / "__init__.py").write_text(py)
    (src / "pyproject.toml").write_text(toml)
    site = tmp_path / "site"
    install_distribution(src, site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TOYCLOUD_DIR", str(tmp_path / "toy-db"))
    from lcai_core.plugins import reset_host

    reset_host()
    yield tmp_path / "toy-db" / "machines.json"
    for mod in [m for m in sys.modules if m.startswith("lcai_toycloud")]:
        del sys.modules[mod]
    reset_host()


def test_provider_from_the_docs_works_through_core(toycloud, lcai, fake_ssh, tmp_path, monkeypatch):
    from lcai_core.plugins import get_host

    assert "toycloud" in get_host().providers
    d = tmp_path / "toy"
    d.mkdir()
    (d / "deploy.yml").write_text("name: toy\nversion: 1.0.0\ndeploy:\n  target: toycloud\n  linode:\n"
                                  "    container:\n      image: nginx:1.27\n      internal_port: 80\n"
                                  "      health: {type: http, path: /, interval_seconds: 1, max_retries: 3}\n")
    monkeypatch.setenv("LCAI_POLL_INTERVAL", "0.05")
    fake_ssh.health("healthy", "ok")
    code, out, err = lcai("deploy", "-d", d, "--yes", "--wait")
    assert code == 0, err
    assert "on toycloud" in err and "machine " in err and "healthy" in err
    dep = deployed_id(d)
    machines = json.loads(toycloud.read_text())
    assert dep in machines and machines[dep]["status"] == "running"
    code, out, err = lcai("status", "--all")
    assert code == 0 and dep in out and "toycloud" in out and "toycloud: machines.json" in err
    code, out, err = lcai("status", dep)
    assert "machine" in out and "ok: healthy on the instance" in out
    # rebuild: same machine, new user data
    (d / "deploy.yml").write_text((d / "deploy.yml").read_text().replace("version: 1.0.0", "version: 1.1.0"))
    code, out, err = lcai("deploy", "-d", d, "--yes", "--wait")
    assert code == 0, err
    after = json.loads(toycloud.read_text())
    assert list(after) == [dep] and after[dep]["ip"] == machines[dep]["ip"]
    assert after[dep]["user_data"] != machines[dep]["user_data"] and "1.1.0" in after[dep]["user_data"]
    # the TUI lists it through the contract
    from lcai_tui.data import DataSource

    rows, source = DataSource().rows()
    assert [r["deployment_id"] for r in rows] == [dep] and "toycloud" in source
    assert ("machine", dep) in DataSource().detail_fields(rows[0])
    # destroy
    code, out, err = lcai("destroy", dep, "--yes")
    assert code == 0, err
    assert json.loads(toycloud.read_text()) == {} and Registry().all() == {}
    assert sorted(p.name for p in d.iterdir()) == ["deploy.yml"]


def test_directory_link_survives_a_second_machine(sim, svc, lcai, fake_ssh, tmp_path, monkeypatch):
    assert lcai("deploy", "-d", svc, "--yes", "--wait")[0] == 0
    dep = deployed_id(svc)
    assert json.loads((svc / ".lcai-deployment").read_text())["deployment_id"] == dep
    assert "secret" not in (svc / ".lcai-deployment").read_text()
    # machine 2: a clone of the directory (.linode/ is git-ignored, the link is not) and an empty registry
    import shutil

    shutil.rmtree(svc / ".linode")
    (svc / "connect.sh").unlink()
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "machine2"))
    monkeypatch.chdir(svc)
    code, out, err = lcai("status")
    assert code == 2 and f"names deployment {dep}" in err and "lcai sync" in err
    code, out, err = lcai("sync")
    assert code == 0 and "adopted 1" in out
    rec = Registry().get(dep)
    assert rec["directory"] == str(svc) and rec["provider_state"]["linode_id"]
    fake_ssh.health("healthy", "ok")
    code, out, err = lcai("status")  # no template known here: health comes from the instance
    assert code == 0, err
    assert dep in out and "ok: healthy on the instance" in out, out
    # a redeploy from machine 2 rebuilds the same instance (same id, new seed) and keeps the link
    inst = sim.state()["instances"][0]["id"]
    code, out, err = lcai("deploy", "--yes")
    assert code == 0, err
    assert [i["id"] for i in sim.state()["instances"]] == [inst] and deployed_id(svc) == dep


def test_logs_names_the_failed_step(sim, svc, lcai, fake_ssh):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    (fake_ssh.root / "var-lib-lcai" / "failed-step").write_text("runcmd step 3: apt-get install nvidia-driver\n")
    fake_ssh.cloud_init("error")
    code, out, err = lcai("logs", "-d", svc)
    assert code == 0, err
    assert "status: error" in out
    assert "failed-step: runcmd step 3: apt-get install nvidia-driver" in out  # (the fake maps the path)
