"""Block Storage volumes, emulated the way the guest sees Linode's: one persistent qcow2 file per volume
(``<LCAI_LOCAL_DIR>/volumes/<label>.qcow2``, outside every VM directory), attached on a virtio-scsi controller as
``scsi-hd,vendor=Linode,product=Volume,serial=<label>``, so udev in the guest names it
``/dev/disk/by-id/scsi-0Linode_Volume_<label>`` exactly as on Linode (no ``wwn``: it would change the name).

The same rules as the Linode provider: a volume is found by its label (the same for every deployment of an app
and env), created only when none exists, kept by a rebuild and by ``destroy``, deleted only by
``delete_volumes`` (``lcai destroy --volumes``). One deployment holds it at a time (``<label>.json`` names the
holder while that deployment's VM directory exists); an undo deletes only the volumes its deployment created."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Optional

from lcai_core.api import InputError, LcaiError, Spec

from .paths import local_dir, require_tools, vm_dir

#: a Linode volume label: what ``conventions.volume_label`` makes (letters, digits, - and _), at most 32
_LABEL_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def volumes_dir() -> str:
    return os.path.join(local_dir(), "volumes")


def _paths(label: str) -> tuple[str, str]:
    if not label or len(label) > 32 or not set(label) <= _LABEL_OK:
        raise LcaiError(f"internal: not a volume label: {label!r}")
    d = volumes_dir()
    return os.path.join(d, f"{label}.qcow2"), os.path.join(d, f"{label}.json")


def load(label: str) -> Optional[dict]:
    """The volume's metadata, or None when there is no such volume (no qcow2 file)."""
    disk, meta = _paths(label)
    if not os.path.exists(disk):
        return None
    try:
        with open(meta, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    return dict(data if isinstance(data, dict) else {}, label=label, disk=disk)


def _save(vol: dict) -> None:
    _disk, meta = _paths(vol["label"])
    tmp = meta + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in vol.items() if k != "disk"}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, meta)


def holder(vol: dict) -> Optional[str]:
    """The deployment holding ``vol``: its recorded holder while that deployment's VM directory exists."""
    dep = vol.get("attached_to")
    return dep if dep and os.path.isdir(vm_dir(dep)) else None


def _create(label: str, size_gb: int) -> None:
    tools = require_tools("qemu-img", purpose="creating a local volume")
    disk, _meta = _paths(label)
    os.makedirs(volumes_dir(), mode=0o700, exist_ok=True)
    tmp = disk + ".tmp"
    proc = subprocess.run([tools["qemu-img"], "create", "-q", "-f", "qcow2", tmp, f"{size_gb}G"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LcaiError(f"creating volume {label} failed: {proc.stderr.strip()[-300:]}")
    os.replace(tmp, disk)


def _grow(label: str, size_gb: int) -> None:
    tools = require_tools("qemu-img", purpose="growing a local volume")
    proc = subprocess.run([tools["qemu-img"], "resize", "-q", _paths(label)[0], f"{size_gb}G"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LcaiError(f"growing volume {label} failed: {proc.stderr.strip()[-300:]}")


def ensure(spec: Spec, say) -> list[dict]:
    """Every volume of ``spec`` held by its deployment: found by label (refused while another deployment's VM
    holds it) or created empty (no filesystem: the user data makes one); grown when the template asks more (call it
while no VM uses the file). Returns the record's
    ``provider_state["volumes"]`` entries."""
    dep = spec.deployment_id
    out = []
    for v in spec.volumes:
        vol = load(v.label)
        if vol is None:
            _create(v.label, v.size_gb)
            vol = {"label": v.label, "name": v.name, "size_gb": v.size_gb, "created_by": dep,
                   "created_at": time.time()}
            say(f"volume {v.name} ({v.label}, {v.size_gb} GB): created ({_paths(v.label)[0]})")
        else:
            other = holder(vol)
            if other and other != dep:
                raise InputError(f"volume {v.label} ({v.name}) is attached to deployment {other}: one deployment "
                                 "of an app and env holds its volumes",
                                 hint="destroy that deployment first (its volumes are kept), or use another --env")
            if other != dep:
                say(f"volume {v.name} ({v.label}, {vol.get('size_gb')} GB): attached, with its data")
            if (vol.get("size_gb") or 0) < v.size_gb:  # grown while no VM uses it (before qemu starts)
                _grow(v.label, v.size_gb)
                say(f"volume {v.name}: grown from {vol.get('size_gb')} GB to {v.size_gb} GB (its filesystem grows "
                    "when the VM boots)")
                vol["size_gb"] = v.size_gb
        vol["attached_to"] = dep
        _save(vol)
        out.append({"name": v.name, "label": v.label, "size_gb": vol.get("size_gb"), "disk": _paths(v.label)[0],
                    "created": vol.get("created_by") == dep})
    return out


def release(dep: str, labels) -> None:
    """``dep`` no longer holds these volumes (its VM is destroyed): the next deployment attaches them."""
    for label in labels:
        vol = load(label)
        if vol is not None and vol.get("attached_to") == dep:
            vol["attached_to"] = None
            _save(vol)


def delete(label: str, dep: str, say, only_created: bool = False) -> None:
    """Delete a volume's file (its data), for deployment ``dep``; ``only_created``: only if ``dep`` created it
    (an undo keeps what an earlier deployment left). Refused while another deployment holds it."""
    vol = load(label)
    if vol is None:
        say(f"volume {label}: already gone")
        return
    if only_created and vol.get("created_by") != dep:
        say(f"volume {label}: kept (an earlier deployment's data)")
        return
    other = holder(vol)
    if other not in (None, dep):
        raise LcaiError(f"volume {label} is attached to deployment {other}: not deleting it",
                        hint=f"`lcai destroy {other}` first")
    disk, meta = _paths(label)
    for p in (disk, meta):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    say(f"volume {label}: deleted ({disk})")


def qemu_args(volumes) -> list[str]:
    """The qemu arguments attaching ``volumes`` (``vm.json``'s entries) on one virtio-scsi controller."""
    if not volumes:
        return []
    argv = ["-device", "virtio-scsi-pci,id=lcaiscsi"]
    for i, v in enumerate(volumes):
        disk = v.get("disk") or _paths(v["label"])[0]
        argv += ["-drive", f"file={disk},if=none,id=vol{i},format=qcow2,discard=unmap",
                 "-device", f"scsi-hd,bus=lcaiscsi.0,drive=vol{i},vendor=Linode,product=Volume,serial={v['label']}"]
    return argv
