"""`lcai destroy --purge` on the local provider: a VM whose vm.json is gone is `vanished`, but purge looks at
what is really there first: a VM disk (the machine's data) keeps the deployment, a bare directory is deleted."""

import os

from lcai_core.cli import main
from lcai_core.registry import Registry


def _record(tmp_path, monkeypatch, dep):
    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    d = tmp_path / "local" / "vms" / dep
    d.mkdir(parents=True)
    Registry().update(dep, create=True, provider="local", app="web", env="default", status="running",
                      provider_state={"vm_dir": str(d), "pid": 0})
    return d


def test_a_vm_disk_keeps_the_deployment(tmp_path, monkeypatch, capsys, lcai_config_dir):
    d = _record(tmp_path, monkeypatch, "loc00001")
    (d / "disk.qcow2").write_bytes(b"QFI\xfb")
    assert main(["destroy", "--purge", "--yes"]) == 0
    out, err = capsys.readouterr()
    assert "purged 0" in out and f"loc00001 is not gone: VM disk {d}/disk.qcow2" in err, err
    assert (d / "disk.qcow2").exists() and Registry().get("loc00001")


def test_a_bare_vm_directory_is_listed_then_deleted(tmp_path, monkeypatch, capsys, lcai_config_dir):
    d = _record(tmp_path, monkeypatch, "loc00002")
    (d / "serial.log").write_text("boot\n")
    assert main(["destroy", "--purge"]) == 2  # off a terminal without --yes: refused, with what it would delete
    assert f"purge deletes loc00002: delete VM directory {d}" in capsys.readouterr().err
    assert d.exists()
    assert main(["destroy", "--purge", "--yes"]) == 0
    assert "purged 1 vanished deployment(s): loc00002" in capsys.readouterr().out
    assert not os.path.exists(d) and Registry().get("loc00002") is None
