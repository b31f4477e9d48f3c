"""What core really stores in registry.json is what docs/providers.md's record table says: every key of every
record after deploy, --wait, redeploy, a firewall change, status, replicas, scale, volumes, destroy and sync is in
RECORD_KEYS, and every status is core's vocabulary or a word the provider's own wait returned."""

from lcai_core.providers import CORE_STATUSES, RECORD_KEYS
from lcai_core.registry import Registry

LINODE_WORDS = {"provisioning", "booting", "running", "offline", "rebuilding"}


def seen(keys, statuses):
    for r in Registry().all().values():
        keys.update(r)
        statuses.add(r.get("status"))


def test_every_stored_key_and_status_is_documented(sim, svc, lcai, fake_ssh, monkeypatch, tmp_path):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0.05")
    keys, statuses = set(), set()
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    seen(keys, statuses)
    dep = next(iter(Registry().all()))
    (svc / ".env").write_text("API_KEY=k-2\n")
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    seen(keys, statuses)
    assert lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7")[0] == 0
    lcai("status", dep)
    seen(keys, statuses)
    # replicas, scale
    rep = tmp_path / "rep"
    rep.mkdir()
    text = (svc / "deploy.yml").read_text()
    (rep / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    replicas: 2\n")
                                    .replace("external_port: 1", "external_port: 2"))
    (rep / ".env").write_text("API_KEY=k\n")
    r = lcai("deploy", "-d", rep, "--yes", "--wait", "--timeout", "20")
    assert r[0] == 0, r[2]
    rdep = next(d for d in Registry().all() if d != dep)
    assert lcai("scale", rdep, "3", "--yes", "--timeout", "20")[0] == 0
    seen(keys, statuses)
    # volumes, destroy keeping them
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "deploy.yml").write_text(text.replace("name: web", "name: webvol").replace(
        "    tags: [team-ml]\n", "    tags: [team-ml]\n    volumes:\n      - {name: data, mount: /data}\n")
        .replace("external_port: 1", "external_port: 3"))
    (vol / ".env").write_text("API_KEY=k\n")
    assert lcai("deploy", "-d", vol, "--yes")[0] == 0
    vdep = next(d for d in Registry().all() if d not in (dep, rdep))
    assert lcai("destroy", vdep, "--yes")[0] == 0
    seen(keys, statuses)
    # sync from a second machine adopts them
    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "machine2"))
    assert lcai("sync")[0] == 0
    seen(keys, statuses)
    assert keys <= set(RECORD_KEYS), sorted(keys - set(RECORD_KEYS))
    assert statuses <= set(CORE_STATUSES) | LINODE_WORDS, statuses - set(CORE_STATUSES) - LINODE_WORDS
    assert "volumes kept" in statuses
