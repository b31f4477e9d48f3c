"""The ``local`` provider: a deployment is a QEMU VM on this machine booting the exact user data lcai would send
to Linode, through a NoCloud seed, with SSH and the app's ports forwarded to 127.0.0.1.

No network calls: ``rows`` reads the VM directories and ``/proc`` (``list_requests = 0``).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from typing import Any, Optional

from lcai_core.api import (
    Endpoint,
    InputError,
    LcaiError,
    Listing,
    Preflight,
    Price,
    Provider,
    Say,
    Spec,
    SshEndpoint,
    Step,
    VOLUMES_KEPT,
)
from lcai_core.api import quiet as _quiet

from . import images
from . import vm as V
from . import volumes as VOL
from .paths import require_tools, vm_dir

ADDRESS = "127.0.0.1"
#: the disk of a VM from an added image (at least): cloud images are sized to fit, not to install into
ADDED_DISK_BYTES = 10 * 2**30
SSH_OPTIONS = ("UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=no", "LogLevel=ERROR")
#: what TCG means for the user (bench/boot.py and tests/local/test_boot.py measured the figure, docs/local.md)
TCG_NOTE = ("so the CPU is emulated (TCG): booting and installing take minutes, not seconds (a native-runtime "
            "template took 120-146 s to healthy here)")
#: fields of vm.json that are the deployment's provider_state
STATE_KEYS = ("vm_dir", "image", "image_kind", "ssh_port", "ports", "app_port", "memory", "cpus", "instance_id",
              "identity_file", "serial_log", "pid", "accel", "accel_reason", "started_at", "volumes")


def accel_note(accel: str, why: str) -> str:
    """The preflight's one line on the accelerator: which, why, and under TCG what that costs."""
    return f"accelerator {accel}: {why}" + (f"; {TCG_NOTE}" if accel == "tcg" else "")


def _state(vm: dict) -> dict:
    return {k: vm[k] for k in STATE_KEYS if k in vm}


#: the image ``lcai local image build`` makes, offered instead when a template's capabilities all support it
DEBIAN = "linode/debian12"


def _image_for(spec_image: str, spec: Optional[Spec] = None) -> dict:
    img = images.load(spec_image)
    if img is None:
        raise InputError(_missing_message(spec_image, spec), hint=images.missing_hint(spec_image))
    return img


def _missing_message(spec_image: str, spec: Optional[Spec]) -> str:
    """No cached stand-in for ``spec_image``: the one command that makes it, and ``--image linode/debian12``
    where the template runs on Debian 12 too (no GPU; every capability supports it)."""
    msg = f"no local image for {spec_image} (the local provider boots a cached stand-in for it)"
    make = images.make_command(spec_image)
    steps = [f"run `{make}`" + (" (Ubuntu's cloud image, verified against its signed SHA256SUMS)"
                                if make.startswith("lcai local image pull") else "")] if make else []
    if spec is not None and spec_image != DEBIAN and not spec.gpu and (
            spec.supported_images is None or DEBIAN in spec.supported_images):
        cached = images.load(DEBIAN) is not None
        steps.append(f"deploy with `--image {DEBIAN}` (this template's capabilities support Debian 12"
                     + ("; its image is cached)" if cached else f"; `{images.make_command(DEBIAN)}` first)"))
    if steps:
        msg += ": " + ", or ".join(steps)
    return msg


def _probe_kernel(img: dict) -> Optional[str]:
    if img.get("kind") == "kernel":
        return img["kernel"]
    for other in images.all_images():  # an added image has no separate kernel: probe with a built one
        if other.get("kind") == "kernel":
            return other["kernel"]
    return None


class LocalProvider(Provider):
    name = "local"
    summary = "a local QEMU VM running the exact user data under real cloud-init (NoCloud seed)"
    list_requests = 0
    phases_over_ssh = True
    public_network = False  # ports are forwarded to 127.0.0.1 only
    uses_root_password = False  # root logs in by key (the provider's own and yours)

    def configured(self) -> bool:
        """VM directories exist here: `lcai status` and `lcai sync` ask this provider even with no record, so a
        VM an interrupted lcai never recorded is listed (untracked) and adopted, never left running unseen."""
        return bool(V.all_vm_ids())

    def gpu_refusal(self, type_: str) -> Optional[str]:
        return "a local VM has none (deploy it to a GPU plan with --target linode)"

    # ------------------------------------------------------------ create

    def preflight(self, spec: Spec) -> Preflight:
        if spec.gpu:
            raise InputError("this template needs a GPU, and a local VM has none",
                             hint="deploy it to a GPU plan with --target linode")
        img = _image_for(spec.image, spec)
        require_tools("qemu-system-x86_64", "qemu-img", "xorriso", "ssh-keygen", purpose="a local VM")
        mem, cpus = V.sizing(spec.type)
        accel, why = V.accelerator(_probe_kernel(img))
        ports = sorted(set(spec.app_ports) | ({spec.external_port} if spec.external_port else set()))
        fwd = ", ".join(f"{p}" for p in ports)
        boot = "direct kernel boot" if img.get("kind") == "kernel" else "own boot loader"
        summary = (f"local VM from image {img['name']} ({boot}), {cpus} vCPU, {mem} MiB, {accel.upper()}; "
                   f"SSH{' and port ' + fwd if fwd else ''} forwarded to {ADDRESS}")
        notes = [accel_note(accel, why)]
        if spec.volumes:
            require_tools("qemu-img", purpose="local volumes")
            each = ", ".join(f"{v.name} {v.size_gb} GB at {v.mount}" for v in spec.volumes)
            notes.append(f"volumes: {each}, emulated as qcow2 files in {VOL.volumes_dir()} (attached as Linode "
                         "attaches them): kept by redeploys and by `lcai destroy` (`--volumes` deletes them); found "
                         "again by the next deploy of this app and env")
            summary += f" + {len(spec.volumes)} volume(s)"
        if spec.type not in V.TYPE_SIZES:
            notes.append(f"type {spec.type}: no local size known, using {mem} MiB / {cpus} vCPU "
                         "(LCAI_LOCAL_MEMORY, LCAI_LOCAL_CPUS override)")
        return Preflight(summary, Price(0, 0, note="local VM"), tuple(notes))

    def create_steps(self, spec: Spec) -> list[Step]:
        return [DiskStep(spec), *([VolumeStep(spec)] if spec.volumes else []), VmStep(spec)]

    def rebuild(self, record: dict, spec: Spec, say: Say = _quiet) -> dict:
        """Same VM directory and forwarded ports; a fresh overlay disk and seed with the new user data (a new
        instance-id, so cloud-init runs again), then qemu restarts."""
        dep = record["deployment_id"]
        vm = V.load_vm(dep)
        if vm is None:
            raise LcaiError(f"deployment {dep}: its VM directory {vm_dir(dep)} is gone; nothing to rebuild",
                            hint="deploy it anew: lcai deploy --new")
        img = _image_for(spec.image, spec)
        d = vm["vm_dir"]
        if V.kill(d, vm.get("pid")):
            say("VM stopped")
        wanted = sorted(set(spec.app_ports) | ({spec.external_port} if spec.external_port else set()))
        ports = dict(vm.get("ports") or {})
        for p in wanted:
            if str(p) not in ports:
                ports[str(p)] = V.free_port()
        vm.update(ports=ports, app_port=ports.get(str(spec.external_port)) if spec.external_port else None,
                  image=img["name"], image_kind=img.get("kind"), instance_id=_instance_id(dep),
                  external_port=spec.external_port, label=spec.label, app=spec.app, env=spec.env)
        vm.pop("pid", None)
        if spec.volumes or vm.get("volumes"):
            vm["volumes"] = VOL.ensure(spec, say)  # the same files: their data is kept; a new one is created
        _write_disk_and_seed(vm, img, spec)
        say("fresh disk and seed written (new instance-id: cloud-init runs again)")
        vm.update(_start(vm, img, say, reallocate=False))
        return _state(vm)

    def wait(self, record: dict, say: Say, deadline: float) -> dict:
        ps = record.get("provider_state") or {}
        d = ps.get("vm_dir") or vm_dir(record["deployment_id"])
        vm = V.load_vm(record["deployment_id"]) or {}
        pid = vm.get("pid") or ps.get("pid")
        port = int(vm.get("ssh_port") or ps["ssh_port"])
        say(f"VM started ({(vm.get('accel') or ps.get('accel') or '?').upper()}, pid {pid})")
        booted = False
        poll = float(os.environ.get("LCAI_LOCAL_POLL_SECONDS", "1"))
        while True:
            if not V.pid_alive(pid, d):
                raise LcaiError(f"the VM's qemu (pid {pid}) exited before SSH answered",
                                hint="last serial console lines:\n" + "\n".join(V.serial_tail(d)))
            if not booted and any("Linux version" in ln or "cloud-init" in ln.lower() or "login:" in ln
                                  for ln in V.serial_tail(d, 50)):
                booted = True
                say("guest kernel booted")
            if V.ssh_banner(port, timeout=min(3.0, max(0.5, deadline - time.monotonic()))):
                say(f"SSH answers on {ADDRESS}:{port}")
                return {"status": "running", "address": ADDRESS}
            if time.monotonic() >= deadline:
                raise LcaiError(f"SSH did not answer on {ADDRESS}:{port} in time",
                                hint="last serial console lines:\n" + "\n".join(V.serial_tail(d)))
            time.sleep(poll)

    # ------------------------------------------------------------ read

    def rows(self, records: dict[str, dict]) -> Listing:
        rows = []
        seen = set()
        for dep, rec in records.items():
            seen.add(dep)
            rows.append(dict(rec, **_live(dep, rec)))
        for dep in V.all_vm_ids():
            if dep in seen:
                continue
            vm = V.load_vm(dep)
            if vm is None:
                continue
            rec = _record_of(vm)
            rows.append(dict(rec, untracked=True, **_live(dep, rec)))
        return Listing(rows, "local VM directories")

    def detail(self, record: dict) -> list[tuple[str, Any]]:
        dep = record["deployment_id"]
        vm = V.load_vm(dep) or dict(record.get("provider_state") or {})
        if not vm:
            return [("vm", "none (no VM directory)")]
        d = vm.get("vm_dir") or vm_dir(dep)
        alive = V.pid_alive(vm.get("pid"), d)
        out: list[tuple[str, Any]] = [
            ("accelerator", f"{vm.get('accel', '?')}" + (f" ({vm['accel_reason']})" if vm.get("accel_reason") else "")),
            ("qemu pid", f"{vm.get('pid')} ({'running' if alive else 'not running'})"),
            ("image", vm.get("image")),
            ("size", f"{vm.get('cpus')} vCPU, {vm.get('memory')} MiB"),
        ]
        out.append(("ssh options", "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "
                                   "(every new disk makes new host keys on the same port)"))
        guest_ports = sorted((vm.get("ports") or {}).items(), key=lambda kv: int(kv[0]))
        fwd = [f"{ADDRESS}:{vm['ssh_port']} -> 22"] + [f"{ADDRESS}:{h} -> {g}" for g, h in guest_ports]
        out.append(("forwarded ports", ", ".join(fwd)))
        out.append(("serial console log", os.path.join(d, "serial.log")))
        out.append(("vm directory", d))
        return out

    def ssh(self, record: dict) -> Optional[SshEndpoint]:
        ps = record.get("provider_state") or {}
        port = ps.get("ssh_port")
        if not port:
            vm = V.load_vm(record.get("deployment_id", "")) or {}
            port = vm.get("ssh_port")
        if not port:
            return None
        return SshEndpoint(ADDRESS, port=int(port), user="root",
                           identity_file=ps.get("identity_file") or V.ensure_key()[0], options=SSH_OPTIONS)

    def app_endpoint(self, record: dict) -> Optional[Endpoint]:
        ps = record.get("provider_state") or {}
        port = ps.get("app_port")
        if not port and record.get("external_port"):
            port = (ps.get("ports") or {}).get(str(record["external_port"]))
        return Endpoint(ADDRESS, int(port)) if port else None

    # ------------------------------------------------------------ remove, adopt

    def destroy(self, record: dict, say: Say = _quiet) -> None:
        dep = record["deployment_id"]
        ps = record.get("provider_state") or {}
        d = vm_dir(dep)
        if V.kill(d, ps.get("pid")):
            say("VM stopped")
        if os.path.isdir(d):
            V.kill(d)  # the pid in vm.json may be newer than the record's (a rebuild)
            shutil.rmtree(d)
            say(f"VM directory removed: {d}")
        VOL.release(dep, [v.get("label") for v in (record.get("volumes") or ps.get("volumes") or [])
                          if v.get("label")])

    def delete_volumes(self, record: dict, say: Say = _quiet) -> None:
        """``lcai destroy --volumes``: the deployment's volume files (their data)."""
        for v in record.get("volumes") or (record.get("provider_state") or {}).get("volumes") or []:
            VOL.delete(v["label"], record["deployment_id"], say)

    def update_firewall(self, record: dict, spec: Spec, say: Say = _quiet) -> dict:
        """A local VM has no firewall to change: its ports are forwarded to 127.0.0.1 only, whoever the
        sources name; nothing to do, and the VM is not rebuilt for it."""
        say("local VM: no firewall (its ports are forwarded to 127.0.0.1 only); the sources are recorded")
        return {}

    def remains(self, record: dict):
        """A VM whose vm.json is gone may still run (its pid) or hold its disk: purge keeps it then."""
        from lcai_core.api import Remains

        ps = record.get("provider_state") or {}
        d = vm_dir(record["deployment_id"])
        machines = []
        if ps.get("pid") and V.pid_alive(ps.get("pid"), d):
            machines.append(f"VM process {ps['pid']} (running)")
        disk = os.path.join(d, "disk.qcow2")
        if os.path.exists(disk):
            machines.append(f"VM disk {disk}")
        return Remains(tuple(machines), (f"VM directory {d}",) if os.path.isdir(d) else ())

    def discover(self) -> list[dict]:
        out = []
        for dep in V.all_vm_ids():
            vm = V.load_vm(dep)
            if vm is not None:
                out.append(_record_of(vm))
        return out


# ---------------------------------------------------------------- helpers


def _instance_id(dep: str) -> str:
    """A new NoCloud instance-id per disk: cloud-init runs its per-instance modules again after a rebuild."""
    return f"lcai-{dep}-{uuid.uuid4().hex[:8]}"


def _record_of(vm: dict) -> dict:
    """A neutral registry record for a VM directory (``discover``, untracked rows)."""
    alive = V.pid_alive(vm.get("pid"), vm["vm_dir"])
    return {"deployment_id": vm["deployment_id"], "provider": "local", "app": vm.get("app"), "env": vm.get("env"),
            "label": vm.get("label"), "image": vm.get("linode_image"), "address": ADDRESS,
            "external_port": vm.get("external_port"), "status": "running" if alive else "stopped",
            "provider_state": _state(vm)}


def _live(dep: str, rec: dict) -> dict:
    ps = rec.get("provider_state") or {}
    d = vm_dir(dep)
    vm = V.load_vm(dep)
    if vm is None:
        if rec.get("status") == VOLUMES_KEPT and not os.path.isdir(d):
            return {"live_status": VOLUMES_KEPT}
        if not os.path.isdir(d) and not ps.get("pid") and not ps.get("vm_dir"):
            return {"live_status": "creating?"}
        return {"live_status": "vanished"}
    alive = V.pid_alive(vm.get("pid"), d)
    out: dict = {"live_status": "running" if alive else "stopped", "address": ADDRESS}
    if vm.get("app_port"):
        out["app_port"] = vm["app_port"]
    return out


def _write_disk_and_seed(vm: dict, img: dict, spec: Spec) -> None:
    d = vm["vm_dir"]
    _priv, pub = V.ensure_key()
    for f in ("disk.qcow2", "seed.iso", "serial.log"):
        try:
            os.unlink(os.path.join(d, f))
        except FileNotFoundError:
            pass
    size = None
    if img.get("kind") == "disk":  # a cloud image is small (Ubuntu's: 2.2 GiB); its cloud-init grows the root
        size = str(max(int(img.get("virtual_size") or 0), ADDED_DISK_BYTES))
    V.make_overlay(os.path.join(d, "disk.qcow2"), img, size)
    V.write_seed(os.path.join(d, "seed.iso"), spec.user_data,
                 V.meta_data(vm["instance_id"], spec.label, [*spec.ssh_keys, pub]))
    V.save_vm(vm)


def _start(vm: dict, img: dict, say: Say, reallocate: bool = True) -> dict:
    """Start qemu for ``vm`` (retrying with new ports when one was taken meanwhile, if ``reallocate``);
    returns the fields it adds to vm.json."""
    accel, why = V.accelerator(_probe_kernel(img))
    vm.update(accel=accel, accel_reason=why)
    attempts = 3 if reallocate else 1
    for attempt in range(attempts):
        try:
            pid = V.start(vm, img)
            break
        except LcaiError as e:
            if "forward" not in e.message or attempt == attempts - 1:
                raise
            vm["ssh_port"] = V.free_port()
            vm["ports"] = {g: V.free_port() for g in vm.get("ports") or {}}
            if vm.get("external_port"):
                vm["app_port"] = vm["ports"].get(str(vm["external_port"]))
    vm.update(pid=pid, started_at=time.time())
    V.save_vm(vm)
    say(f"qemu started (pid {pid}, {accel})")
    return {k: vm[k] for k in ("pid", "accel", "accel_reason", "started_at", "ssh_port", "ports", "app_port")}


class DiskStep(Step):
    """The VM directory: a qcow2 overlay on the cached image, the NoCloud seed, the forwarded ports chosen."""

    name = "disk"

    def __init__(self, spec: Spec):
        self.spec = spec

    def run(self, state: dict, say: Say) -> dict:
        spec = self.spec
        img = _image_for(spec.image, spec)
        dep = spec.deployment_id
        d = vm_dir(dep)
        existing = V.load_vm(dep)
        if existing and os.path.exists(os.path.join(d, "disk.qcow2")) and os.path.exists(os.path.join(d, "seed.iso")):
            return _state(existing)  # reconciling: never a second disk
        os.makedirs(d, mode=0o700, exist_ok=True)
        mem, cpus = V.sizing(spec.type)
        guest_ports = sorted(set(spec.app_ports) | ({spec.external_port} if spec.external_port else set()))
        ports = {str(p): V.free_port() for p in guest_ports}
        priv, _pub = V.ensure_key()
        vm = {"deployment_id": dep, "vm_dir": d, "image": img["name"], "image_kind": img.get("kind"),
              "linode_image": spec.image, "app": spec.app, "env": spec.env, "label": spec.label,
              "ssh_port": V.free_port(), "ports": ports,
              "app_port": ports.get(str(spec.external_port)) if spec.external_port else None,
              "external_port": spec.external_port, "memory": mem, "cpus": cpus,
              "instance_id": _instance_id(dep), "identity_file": priv,
              "serial_log": os.path.join(d, "serial.log")}
        _write_disk_and_seed(vm, img, spec)
        say(f"disk and NoCloud seed written in {d}")
        return _state(vm)

    def find(self, state: dict) -> Optional[dict]:
        vm = V.load_vm(self.spec.deployment_id)
        return _state(vm) if vm else (
            {"vm_dir": vm_dir(self.spec.deployment_id)} if os.path.isdir(vm_dir(self.spec.deployment_id)) else None)

    def undo(self, state: dict, say: Say) -> None:
        d = vm_dir(self.spec.deployment_id)
        V.kill(d)
        if os.path.isdir(d):
            shutil.rmtree(d)
            say(f"VM directory removed: {d}")


class VolumeStep(Step):
    """The deployment's volumes (``VOL.ensure``), before qemu first starts: found again or created."""

    name = "volumes"

    def __init__(self, spec: Spec):
        self.spec = spec

    def run(self, state: dict, say: Say) -> dict:
        vm = V.load_vm(self.spec.deployment_id)
        if vm is None:
            raise LcaiError(f"deployment {self.spec.deployment_id}: the VM directory is missing "
                            "(the disk step did not finish)")
        vm["volumes"] = VOL.ensure(self.spec, say)
        V.save_vm(vm)
        return {"volumes": vm["volumes"]}

    def find(self, state: dict) -> Optional[dict]:
        vm = V.load_vm(self.spec.deployment_id) or {}
        have = {v.get("label") for v in vm.get("volumes") or []}
        if not all(v.label in have and (VOL.load(v.label) or {}).get("attached_to") == self.spec.deployment_id
                   for v in self.spec.volumes):
            return None
        return {"volumes": vm["volumes"]}

    def undo(self, state: dict, say: Say) -> None:
        for v in self.spec.volumes:
            VOL.delete(v.label, self.spec.deployment_id, say, only_created=True)
        VOL.release(self.spec.deployment_id, [v.label for v in self.spec.volumes])


class VmStep(Step):
    """The qemu process (daemonized, pidfile in the VM directory)."""

    name = "vm"

    def __init__(self, spec: Spec):
        self.spec = spec

    def run(self, state: dict, say: Say) -> dict:
        dep = self.spec.deployment_id
        vm = V.load_vm(dep)
        if vm is None:
            raise LcaiError(f"deployment {dep}: the VM directory is missing (the disk step did not finish)")
        if V.pid_alive(vm.get("pid"), vm["vm_dir"]):
            return {**_state(vm), "address": ADDRESS}  # reconciling: never a second qemu
        img = _image_for(self.spec.image, self.spec)
        return {**_start(vm, img, say), "address": ADDRESS}

    def find(self, state: dict) -> Optional[dict]:
        d = vm_dir(self.spec.deployment_id)
        pid = V.read_pid(d)
        if not V.pid_alive(pid, d):
            return None
        vm = V.load_vm(self.spec.deployment_id) or {}
        return {**_state(vm), "pid": pid, "address": ADDRESS}

    def undo(self, state: dict, say: Say) -> None:
        if V.kill(vm_dir(self.spec.deployment_id)):
            say("VM stopped")
