"""The registry: concurrent writers keep every entry, a crash mid-write never corrupts it, no secrets."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from lcai_core.errors import LcaiError
from lcai_core.registry import Registry


def _writer(path: str, dep_id: str) -> None:
    Registry(path).update(dep_id, create=True, app=f"app-{dep_id}", status="creating")
    Registry(path).update(dep_id, status="running", provider_state={"linode_id": int(dep_id[3:])})


def test_sixteen_concurrent_deploys_keep_all_sixteen(tmp_path):
    path = str(tmp_path / "registry.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"dep{i:05d}")) for i in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    deps = Registry(path).all()
    assert len(deps) == 16 and all(d["status"] == "running" for d in deps.values())
    assert json.loads((tmp_path / "registry.json").read_text())["schema"] == 2


def test_failure_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "registry.json")
    reg.update("aaaa1111", create=True, app="one")
    before = reg.path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        reg.update("bbbb2222", create=True, app="two")
    monkeypatch.undo()
    assert reg.path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_killed_writers_never_leave_a_torn_file(tmp_path):
    """SIGKILL writers at random moments while a reader checks the file is always complete JSON."""
    path = tmp_path / "registry.json"
    code = ("import sys\nfrom lcai_core.registry import Registry\nr = Registry(sys.argv[1])\ni = 0\n"
            "while True:\n    r.update(f'd{i % 50:07d}', create=True, app='x' * 2000)\n    i += 1\n")
    for _ in range(5):
        p = subprocess.Popen([sys.executable, "-c", code, str(path)])
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            if path.exists():
                json.loads(path.read_text())  # never a partial file
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert len(Registry(path).all()) >= 1


def test_refuses_secrets_and_reports_corruption(tmp_path):
    reg = Registry(tmp_path / "registry.json")
    with pytest.raises(LcaiError, match="refusing to store 'root_pass'"):
        reg.update("x1234567", create=True, root_pass="hunter2hunter2")
    reg.path.write_text("{not json")
    with pytest.raises(LcaiError, match="not valid JSON") as e:
        reg.all()
    assert "lcai sync" in e.value.hint


def test_schema_1_is_migrated_without_losing_anything(tmp_path):
    """lcai 0.1's Linode-only records: ids move into provider_state, ipv4 becomes address; nothing is lost."""
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"schema": 1, "deployments": {"abcd1234": {
        "deployment_id": "abcd1234", "app": "web", "linode_id": 42, "firewall_id": 7, "ipv4": "192.0.2.5",
        "status": "running", "health": {"type": "http", "path": "/"}}}}))
    reg = Registry(path)
    rec = reg.get("abcd1234")
    assert rec["provider"] == "linode" and rec["address"] == "192.0.2.5"
    assert rec["provider_state"] == {"linode_id": 42, "firewall_id": 7}
    assert "linode_id" not in rec and "ipv4" not in rec and rec["health"] == {"type": "http", "path": "/"}
    reg.update("abcd1234", status="offline")
    data = json.loads(path.read_text())
    assert data["schema"] == 2 and data["deployments"]["abcd1234"]["provider_state"]["linode_id"] == 42
    with pytest.raises(LcaiError, match="refusing to store 'root_pass'"):
        reg.update("abcd1234", provider_state={"root_pass": "x"})  # nested secrets are refused too


def test_find_by_prefix(tmp_path):
    reg = Registry(tmp_path / "registry.json")
    reg.update("abcd1234", create=True)
    reg.update("abce5678", create=True)
    assert reg.find("abcd")["deployment_id"] == "abcd1234"
    with pytest.raises(LcaiError, match="matches 2 deployments"):
        reg.find("abc")
