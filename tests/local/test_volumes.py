"""The local provider's Block Storage volumes (plugins/lcai-local/src/lcai_local/volumes.py), with a fake qemu:
one persistent qcow2 file per volume, attached as Linode attaches it (the guest sees
/dev/disk/by-id/scsi-0Linode_Volume_<label>; the boot tests check that name in a real VM), kept by a rebuild and
by destroy, deleted only when asked, held by one deployment at a time."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from lcai_core.errors import InputError, LcaiError
from lcai_core.providers import VolumeSpec
from lcai_testing import tools

import importlib.util as _ilu

_spec = _ilu.spec_from_file_location("_lcai_local_tests", Path(__file__).with_name("test_local.py"))
_tl = _ilu.module_from_spec(_spec)  # the helpers of test_local.py (--import-mode=importlib: not importable)
_spec.loader.exec_module(_tl)
USER_DATA, alive, create, provider, spec = _tl.USER_DATA, _tl.alive, _tl.create, _tl.provider, _tl.spec

LABEL = "lcai-0a1b2c3d-data"


def vspec(**kw):
    vols = kw.pop("volumes", (VolumeSpec("data", LABEL, 20, "/var/lib/lcai-data"),))
    return spec(volumes=vols, **kw)


def volume_file(label: str = LABEL) -> Path:
    return Path(os.environ["LCAI_LOCAL_DIR"]) / "volumes" / f"{label}.qcow2"


def info(path: Path) -> dict:
    return json.loads(subprocess.run([tools.which("qemu-img"), "info", "--output=json", str(path)],
                                     capture_output=True, text=True, check=True).stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_argv(rec: dict) -> list[str]:
    return (Path(rec["provider_state"]["vm_dir"]) / "fake-argv").read_text().split("\n")


def test_a_volume_is_a_qcow2_file_attached_as_linode_attaches_it(local_env, fake_qemu, tiny_image):
    p = provider()
    said: list[str] = []
    rec = create(p, vspec(), said.append)
    f = volume_file()
    assert info(f)["format"] == "qcow2" and info(f)["virtual-size"] == 20 * 2**30
    assert not str(f).startswith(rec["provider_state"]["vm_dir"])  # outside the VM directory destroy removes
    argv = fake_argv(rec)
    assert "virtio-scsi-pci,id=lcaiscsi" in argv
    assert (f"scsi-hd,bus=lcaiscsi.0,drive=vol0,vendor=Linode,product=Volume,serial={LABEL}" in argv)
    assert f"file={f},if=none,id=vol0,format=qcow2,discard=unmap" in argv
    assert [v["label"] for v in rec["provider_state"]["volumes"]] == [LABEL]
    assert rec["provider_state"]["volumes"][0]["created"] is True
    assert any(m.startswith(f"volume data ({LABEL}, 20 GB): created") for m in said), said
    p.destroy(rec)


def test_no_volumes_no_scsi_controller(local_env, fake_qemu, tiny_image):
    p = provider()
    rec = create(p, spec())
    assert not [a for a in fake_argv(rec) if a.startswith(("virtio-scsi", "scsi-hd"))]
    assert [s.name for s in p.create_steps(spec())] == ["disk", "vm"]
    p.destroy(rec)


def test_rebuild_and_destroy_keep_the_volume_and_the_next_deployment_attaches_it(local_env, fake_qemu, tiny_image):
    p = provider()
    rec = create(p, vspec())
    f = volume_file()
    with open(f, "ab") as out:  # stands for the data the guest wrote
        out.write(b"rows and queue items")
    before = (f.stat().st_ino, digest(f))
    fields = p.rebuild(rec, vspec(user_data=USER_DATA + "# v2\n"))
    rec["provider_state"].update(fields)
    assert (f.stat().st_ino, digest(f)) == before
    assert f"serial={LABEL}" in " ".join(fake_argv(rec))  # the rebuilt VM has it attached again
    pid = rec["provider_state"]["pid"]
    rec["volumes"] = [{"name": "data", "label": LABEL, "size_gb": 20, "mount": "/var/lib/lcai-data"}]
    p.destroy(rec)
    assert not alive(pid) and (f.stat().st_ino, digest(f)) == before  # destroy kept it, with its data
    # the next deployment of the app and env (another id) finds it, with its data
    said: list[str] = []
    rec2 = create(p, vspec(deployment_id="dep00002", label="lcai-web-default-dep00002"), said.append)
    assert (f.stat().st_ino, digest(f)) == before
    assert rec2["provider_state"]["volumes"][0]["created"] is False
    assert f"volume data ({LABEL}, 20 GB): attached, with its data" in said
    p.destroy(rec2)


def test_one_deployment_holds_a_volume_at_a_time(local_env, fake_qemu, tiny_image):
    p = provider()
    rec = create(p, vspec())
    other = vspec(deployment_id="dep00002", label="lcai-web-default-dep00002")
    with pytest.raises(InputError, match=f"volume {LABEL} .* is attached to deployment dep00001"):
        create(p, other)
    with pytest.raises(LcaiError, match="attached to deployment dep00001: not deleting it"):
        p.delete_volumes({"deployment_id": "dep00002", "volumes": [{"name": "data", "label": LABEL}]})
    assert volume_file().exists()
    p.destroy(rec)


def test_an_undo_deletes_only_a_volume_its_deployment_created(local_env, fake_qemu, tiny_image):
    p = provider()
    disk, vols, vm = p.create_steps(vspec())
    state = disk.run({}, lambda m: None)
    state.update(vols.run(state, lambda m: None))
    assert vols.find({}) == {"volumes": state["volumes"]}  # core lost the step result: found again
    said: list[str] = []
    vols.undo(state, said.append)
    disk.undo(state, said.append)
    assert not volume_file().exists() and f"volume {LABEL}: deleted ({volume_file()})" in said
    # a volume an earlier deployment kept survives the undo of a failed create that attached it
    rec = create(p, vspec())
    rec["volumes"] = [{"name": "data", "label": LABEL, "size_gb": 20}]
    p.destroy(rec)
    disk, vols, vm = p.create_steps(vspec(deployment_id="dep00002", label="lcai-web-default-dep00002"))
    state = disk.run({}, lambda m: None)
    state.update(vols.run(state, lambda m: None))
    said = []
    vols.undo(state, said.append)
    disk.undo(state, said.append)
    assert volume_file().exists() and f"volume {LABEL}: kept (an earlier deployment's data)" in said
    # and the next deployment may attach it again (the undo released it)
    rec3 = create(p, vspec(deployment_id="dep00003", label="lcai-web-default-dep00003"))
    assert rec3["provider_state"]["volumes"][0]["created"] is False
    p.destroy(rec3)


def test_delete_volumes_deletes_the_file_and_is_idempotent(local_env, fake_qemu, tiny_image):
    p = provider()
    rec = create(p, vspec())
    rec["volumes"] = [{"name": "data", "label": LABEL, "size_gb": 20}]
    p.destroy(rec)
    assert [r["live_status"] for r in p.rows({"dep00001": dict(rec, status="volumes kept")}).rows] == \
        ["volumes kept"]
    said: list[str] = []
    p.delete_volumes(rec, said.append)
    assert not volume_file().exists() and said == [f"volume {LABEL}: deleted ({volume_file()})"]
    p.delete_volumes(rec, said.append)
    assert said[-1] == f"volume {LABEL}: already gone"


def test_preflight_names_the_volumes_and_where_they_live(local_env, fake_qemu, tiny_image):
    pre = provider().preflight(vspec())
    assert pre.summary.endswith("+ 1 volume(s)")
    note = next(n for n in pre.notes if n.startswith("volumes:"))
    assert "data 20 GB at /var/lib/lcai-data" in note and str(volume_file().parent) in note


def test_a_redeploy_asking_more_grows_the_file_with_its_data(local_env, fake_qemu, tiny_image):
    p = provider()
    rec = create(p, vspec())
    f = volume_file()
    said: list[str] = []
    fields = p.rebuild(rec, vspec(volumes=(VolumeSpec("data", LABEL, 30, "/var/lib/lcai-data"),)), said.append)
    assert info(f)["virtual-size"] == 30 * 2**30 and fields["volumes"][0]["size_gb"] == 30
    assert "volume data: grown from 20 GB to 30 GB (its filesystem grows when the VM boots)" in said
    rec["provider_state"].update(fields)
    p.destroy(rec)
