"""init → plan → deploy --wait → status → destroy against the simulator, with the real linode_api4 client."""

import base64
import gzip
import json
import os
import stat
import subprocess
import sys

from lcai_core.registry import Registry


def test_full_flow(sim, svc, lcai, tmp_path):
    code, out, err = lcai("plan", "--directory", svc, "--cloud-config", tmp_path / "plan.yaml")
    assert code == 0, err
    code, out, err = lcai("deploy", "--directory", svc, "--wait", "--yes")
    assert code == 0, err
    for phase in ("preflight", "recorded deployment", "firewall", "provisioning", "booting", "running", "healthy"):
        assert phase in err, (phase, err)
    dep_id = json.loads((svc / ".linode" / "state.json").read_text())["deployment_id"]
    st = sim.state()
    assert len(st["instances"]) == 1 and len(st["firewalls"]) == 1
    inst, fw = st["instances"][0], st["firewalls"][0]
    # contract tags, label rules, user data exactly what plan wrote
    assert inst["tags"] == ["lcai", f"lcai-id:{dep_id}", "lcai-app:web", "lcai-env:default", "team-ml"]
    assert inst["label"] == f"lcai-web-default-{dep_id}"
    assert gzip.decompress(base64.b64decode(inst["user_data"])).decode() == (tmp_path / "plan.yaml").read_text()
    # firewall: inbound DROP except SSH and the app port
    rules = fw["rules"]
    assert rules["inbound_policy"] == "DROP" and rules["outbound_policy"] == "ACCEPT"
    assert sorted(r["ports"] for r in rules["inbound"]) == sorted(["22", str(inst_port(svc))])
    assert fw["entities"][0]["id"] == inst["id"]
    # registry has it, without secrets; local files
    rec = Registry().get(dep_id)
    assert rec["provider_state"]["linode_id"] == inst["id"] and rec["provider_state"]["firewall_id"] == fw["id"]
    assert rec["provider"] == "linode" and rec["address"] == inst["ipv4"][0]
    assert rec["status"] == "running" and rec["health_status"] == "healthy"
    raw = Registry().path.read_text()
    password = (svc / ".linode" / "root-password").read_text().strip()
    assert len(password) >= 32 and password not in raw and "k-123" not in raw
    assert password not in (svc / ".linode" / "state.json").read_text()
    assert stat.S_IMODE((svc / ".linode" / "state.json").stat().st_mode) == 0o600  # it holds the secret seed
    assert stat.S_IMODE((svc / ".linode" / "root-password").stat().st_mode) == 0o600
    assert os.access(svc / "connect.sh", os.X_OK)
    assert not (svc / ".linode" / "pending.json").exists()
    assert "k-123" not in out + err
    # status: all, one (live health), json
    sim.clear_requests()
    code, out, err = lcai("status")
    assert code == 0 and dep_id in out and "running" in out
    assert [r["path"] for r in sim.requests()] == ["/linode/instances"]
    code, out, _ = lcai("status", dep_id[:4], "--json")
    row = json.loads(out)
    assert row["health_live"]["ok"] is True and row["live_status"] == "running"
    # destroy removes instance then firewall and forgets the deployment
    code, out, err = lcai("destroy", dep_id, "--yes")
    assert code == 0, err
    st = sim.state()
    assert st["instances"] == [] and st["firewalls"] == []
    assert Registry().get(dep_id) is None
    # the directory is as init left it: no state, password or connect.sh
    assert sorted(p.name for p in svc.iterdir()) == [".env", "deploy.yml"]
    code, _, err = lcai("destroy", dep_id, "--yes")
    assert code == 2 and "no deployment" in err


def inst_port(svc):
    import re

    return int(re.search(r"external_port: (\d+)", (svc / "deploy.yml").read_text()).group(1))


def test_ssh_keys_used_and_no_password_saved(sim, svc, lcai, tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir()
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))).decode()
    (home / ".ssh" / "id_ed25519.pub").write_text(f"ssh-ed25519 {blob} user@host\n")
    (home / ".ssh" / "id_broken.pub").write_text("ssh-ed25519 this-is-not-base64 x\n")  # skipped, not sent
    (home / ".ssh" / "id_sk.pub").write_text(f"sk-ssh-ed25519@openssh.com {blob} x\n")  # a type Linode refuses
    assert lcai("plan", "-d", svc, "--cloud-config", tmp_path / "plan.yaml")[0] == 0
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert not (svc / ".linode" / "root-password").exists()
    # with a key, password logins are off, and plan rendered exactly what deploy sent
    ud = gzip.decompress(base64.b64decode(sim.state()["instances"][0]["user_data"])).decode()
    assert "ssh_pwauth: false" in ud and ud == (tmp_path / "plan.yaml").read_text()
    assert sim.state()["instances"][0].get("authorized_keys", [f"ssh-ed25519 {blob} user@host"]) == [
        f"ssh-ed25519 {blob} user@host"]


def test_preflight_refusals(sim, svc, lcai):
    text = (svc / "deploy.yml").read_text()
    cases = [("region_default: us-ord", "region_default: ap-southeast", "does not support Metadata"),
             ("image: linode/ubuntu24.04", "image: linode/ubuntu20.04", "does not support cloud-init"),
             ("type_default: g6-standard-2", "type_default: g6-nope-9", "type g6-nope-9 does not exist"),
             ("type_default: g6-standard-2\n", "type_default: g2-gpu-rtx4000a1-s\n", None)]
    for old, new, msg in cases:
        (svc / "deploy.yml").write_text(text.replace(old, new))
        code, _, err = lcai("deploy", "-d", svc, "--yes", *(["--region", "us-mia"] if msg is None else []))
        assert code == 2, err
        assert (msg or "has no GPU Linodes") in err
        assert sim.state()["instances"] == [] and sim.state()["firewalls"] == []
    assert Registry().all() == {}


def test_bad_token(sim, svc, lcai, monkeypatch):
    monkeypatch.setenv("LINODE_TOKEN", "wrong")
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "rejected the token (401)" in err and "wrong" not in err


def test_no_yes_without_terminal(sim, svc):
    env = {**os.environ}
    r = subprocess.run([sys.executable, "-m", "lcai_core", "deploy", "-d", str(svc)], capture_output=True, text=True,
                       env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2 and "--yes" in r.stderr
    assert sim.state()["instances"] == []


def test_hostile_env_values_reach_the_instance_literally(sim, svc, lcai):
    hostile = {"API_KEY": "k", "Q": "it's \"q\"", "SUB": "$(id)", "BT": "`id`", "H": "${HOME}", "P": "50%",
               "BS": "a\\b", "HASH": "x # y", "U": "héllo ✓", "BIG": "z" * 4096}
    lines = []
    for k, v in hostile.items():
        if "'" not in v:
            lines.append(f"{k}='{v}'")
        else:
            escaped = v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))
            lines.append(f'{k}="{escaped}"')
    (svc / ".env").write_text("\n".join(lines) + "\n")
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    ud = gzip.decompress(base64.b64decode(sim.state()["instances"][0]["user_data"])).decode()
    import yaml

    env_file = next(w["content"] for w in yaml.safe_load(ud)["write_files"] if w["path"] == "/etc/lcai/app.env")
    for k, v in hostile.items():
        assert f"{k}={v}" in env_file.splitlines(), k


def test_newline_in_env_rejected_before_any_call(sim, svc, lcai):
    (svc / ".env").write_text('API_KEY=k\nMULTI="a\nb"\n')
    code, _, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 2 and "MULTI" in err and "newline" in err
    assert sim.requests() == []


def test_sync_from_a_second_machine(sim, svc, lcai, monkeypatch, tmp_path):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "machine2"))
    code, out, err = lcai("status")
    assert "untracked" in out and "lcai sync" in err
    code, out, _ = lcai("sync")
    assert "adopted 1" in out
    dep = next(iter(Registry().all().values()))
    assert dep["app"] == "web" and dep["env"] == "default" and dep["provider_state"]["firewall_id"]
    assert dep["price_hourly"] is not None  # from the type, so status shows a cost for adopted deployments
    # an instance deleted behind lcai's back is marked vanished, and purge forgets it
    sim.sim.state.instances.clear()
    code, out, _ = lcai("status")
    assert "vanished" in out
    assert "marked vanished 1" in lcai("sync")[1]
    assert "purged 1" in lcai("destroy", "--purge", "--yes")[1]
    assert Registry().all() == {}


def test_status_when_api_unreachable_shows_registry(sim, svc, lcai, monkeypatch):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    monkeypatch.setenv("LCAI_LINODE_API_URL", "http://127.0.0.1:9/v4")
    code, out, err = lcai("status")
    assert code == 0 and "linode was not reached" in err and "127.0.0.1:9" in err and "web" in out


def test_linode_cli_shim(sim, svc, capsys, monkeypatch):
    from lcai_linode import linode_cli

    monkeypatch.delenv("LINODE_TOKEN")

    class Ctx:
        token = "sim-token"
        client = None

    assert linode_cli.PLUGIN_NAME == "build"
    linode_cli.call(["status", "--json"], Ctx())
    data = json.loads(capsys.readouterr().out)
    assert data["reached"] is True and data["sources"]["linode"]["source"].startswith("api")
