"""One local VM: its directory, NoCloud seed, qemu command line, process and forwarded ports.

A VM directory (``<LCAI_LOCAL_DIR>/vms/<deployment id>/``) holds everything the VM is: ``vm.json`` (what
``provider_state`` records), ``disk.qcow2`` (an overlay on the cached image), ``seed.iso`` (NoCloud, label
``cidata``), ``qemu.pid``, ``serial.log`` and ``qemu.log``. Removing the directory after the process is gone
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterable, Optional

from lcai_core.api import LcaiError

from .paths import key_path, local_dir, require_tools, vm_dir, vms_dir

# ---------------------------------------------------------------- sizing

#: Linode plan → (MiB, vCPUs); a local VM gets at most half the host's memory and its CPU count
TYPE_SIZES = {
    "g6-nanode-1": (1024, 1), "g6-standard-1": (2048, 1), "g6-standard-2": (4096, 2),
    "g6-standard-4": (8192, 4), "g6-dedicated-2": (4096, 2), "g6-dedicated-4": (8192, 4),
}
DEFAULT_SIZE = (2048, 2)


def host_memory_mib() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def sizing(type_: str) -> tuple[int, int]:
    """(memory MiB, vCPUs) for a Linode type: ``LCAI_LOCAL_MEMORY`` / ``LCAI_LOCAL_CPUS`` win; else the type's
    size capped at half the host memory and the host's CPU count; unknown types get 2 GiB, 2 vCPUs."""
    mem, cpus = TYPE_SIZES.get(type_, DEFAULT_SIZE)
    mem = min(mem, max(512, host_memory_mib() // 2))
    cpus = min(cpus, os.cpu_count() or 1)
    if os.environ.get("LCAI_LOCAL_MEMORY"):
        mem = int(os.environ["LCAI_LOCAL_MEMORY"])
    if os.environ.get("LCAI_LOCAL_CPUS"):
        cpus = int(os.environ["LCAI_LOCAL_CPUS"])
    return mem, cpus


# ---------------------------------------------------------------- accelerator

def _die_with_parent() -> None:
    """In the probe's child: SIGKILL it when lcai dies (a kernel hung under KVM never exits by itself)."""
    try:
        import ctypes
        import signal as _signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(_signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def probe_kvm(kernel: Optional[str], timeout: Optional[float] = None, qemu: str = "qemu-system-x86_64",
              workdir: Optional[str] = None, dev: str = "/dev/kvm") -> tuple[bool, str]:
    """Does KVM really work here? ``/dev/kvm`` may exist and still fail: under nested KVM the firmware runs
    but a Linux kernel makes no progress (or qemu reports "emulation failure"). Boots ``kernel`` under KVM
    with no root file system: it works when the kernel runs to its "Kernel panic" (then qemu exits, -no-reboot)
    within ``timeout`` s (``LCAI_LOCAL_KVM_PROBE_SECONDS``, default 10; TCG needs about 2.5 s here)."""
    if not os.path.exists(dev):
        return False, f"no {dev}"
    if not os.access(dev, os.R_OK | os.W_OK):
        return False, f"{dev} is not readable and writable by this user (add yourself to group kvm)"
    if not kernel:
        return False, ("no kernel to probe KVM with (build an image: lcai local image build debian12; or "
                       "LCAI_LOCAL_ACCEL=kvm uses KVM unprobed)")
    timeout = timeout if timeout is not None else float(os.environ.get("LCAI_LOCAL_KVM_PROBE_SECONDS", "10"))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        serial = os.path.join(tmp, "serial.log")
        argv = [qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none",
                "-no-reboot", "-monitor", "none", "-serial", f"file:{serial}",
                "-kernel", kernel, "-append", "console=ttyS0 panic=-1 root=/dev/lcai-kvm-probe"]
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            return False, str(e)
        try:
            _out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
            timed_out = True
        try:
            with open(serial, encoding="utf-8", errors="replace") as f:
                console = f.read()
        except OSError:
            console = ""
    err = err or ""
    if "emulation failure" in err or "KVM internal error" in err:
        return False, "KVM emulation failure (nested virtualisation)"
    if "Kernel panic" in console and not timed_out:
        return True, "KVM works"
    if timed_out:
        return False, f"a kernel made no progress under KVM in {timeout:g} s (nested virtualisation?)"
    return False, kvm_failure(err, proc.returncode)


def kvm_failure(stderr: str, returncode: Optional[int]) -> str:
    """One readable line for qemu's stderr when it failed under KVM. qemu aborts on an assertion when the
    host's KVM refuses a CPU register (MSR) that ``-cpu host`` sets, as nested KVM often does::

        qemu-system-x86_64: error: failed to set MSR 0x345 to 0x2000
        qemu-system-x86_64: ../../target/i386/kvm/kvm.c:2893: kvm_buf_set_msrs: Assertion `ret == …' failed.
    """
    lines = [ln.strip() for ln in stderr.strip().splitlines()
             if ln.strip() and "warning" not in ln.lower()]
    bare = [re.sub(r"^[\w./-]*qemu[\w.-]*: (error: )?", "", ln) for ln in lines]
    msr = next((m.group(1) for m in (re.search(r"failed to set MSR (0x[0-9a-fA-F]+)", ln) for ln in bare) if m), None)
    assertion = next((ln for ln in bare if "Assertion" in ln and "failed" in ln), None)
    if msr or (assertion and "msr" in assertion.lower()):
        what = f" (MSR {msr})" if msr else ""
        return (f"qemu aborted: this host's KVM refused a CPU register{what} the virtual CPU needs "
                "(usual under nested virtualisation)")
    if assertion:
        func = re.search(r": (\w+): Assertion", assertion)
        where = f" in {func.group(1)}" if func else ""
        return f"qemu aborted on an internal check{where} under KVM (nested virtualisation?)"
    if bare:
        return bare[-1]
    return f"qemu exited {returncode} under KVM"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def accelerator(kernel: Optional[str] = None) -> tuple[str, str]:
    """("kvm" | "tcg", why). ``LCAI_LOCAL_ACCEL=kvm|tcg`` forces one; otherwise KVM when ``probe_kvm`` passes.
    The probe's result is kept in ``<LCAI_LOCAL_DIR>/accel.json`` until the host reboots."""
    forced = os.environ.get("LCAI_LOCAL_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced, "LCAI_LOCAL_ACCEL"
    cache = os.path.join(local_dir(), "accel.json")
    boot = _boot_id()
    try:
        with open(cache, encoding="utf-8") as f:
            c = json.load(f)
        if c.get("boot_id") == boot and boot and c.get("accel") in ("kvm", "tcg"):
            why = c.get("why", "")
            if "Assertion" in why:  # kept by an older lcai: qemu's raw message
                why = "KVM unusable: " + kvm_failure(why.split("KVM unusable: ", 1)[-1], None)
            return c["accel"], why
    except (OSError, ValueError):
        pass
    ok, why = probe_kvm(kernel)
    result = ("kvm", why) if ok else ("tcg", f"KVM unusable: {why}")
    if kernel:  # without a kernel the probe proved nothing: ask again next time
        try:
            os.makedirs(local_dir(), mode=0o700, exist_ok=True)
            with open(cache + ".tmp", "w", encoding="utf-8") as f:
                json.dump({"boot_id": boot, "accel": result[0], "why": result[1]}, f)
            os.replace(cache + ".tmp", cache)
        except OSError:
            pass
    return result


def accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


# ---------------------------------------------------------------- ports


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (qemu may still lose a race for it: the caller retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def ssh_banner(port: int, timeout: float = 3.0) -> bool:
    """True when an SSH server (not just qemu's forwarder, which accepts and then closes) greets on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


# ---------------------------------------------------------------- the provider key


def ensure_key() -> tuple[str, str]:
    """The provider's SSH key pair (private 0600), created once: (private key path, public key line)."""
    priv = key_path()
    pub = priv + ".pub"
    if not (os.path.exists(priv) and os.path.exists(pub)):
        tools = require_tools("ssh-keygen", purpose="creating the local provider's SSH key")
        os.makedirs(local_dir(), mode=0o700, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=local_dir(), prefix=".key-")
        try:
            subprocess.run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", "lcai-local",
                            "-f", os.path.join(tmp, "id_ed25519")], check=True, capture_output=True)
            os.chmod(os.path.join(tmp, "id_ed25519"), 0o600)
            if not os.path.exists(priv):
                os.replace(os.path.join(tmp, "id_ed25519.pub"), pub)
                os.replace(os.path.join(tmp, "id_ed25519"), priv)
        finally:
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            os.rmdir(tmp)
    os.chmod(priv, 0o600)
    with open(pub, encoding="ascii") as f:
        return priv, f.read().strip()


# ---------------------------------------------------------------- seed


def meta_data(instance_id: str, hostname: str, public_keys: Iterable[str]) -> str:
    """NoCloud meta-data (YAML; JSON is YAML): instance-id, local-hostname, public-keys."""
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname,
                       "public-keys": [k.strip() for k in public_keys if k.strip()]}, indent=1) + "\n"


#: vendor data: what the seed adds beside the user's user data (which stays byte-identical). User data wins
#: where both set a key. Root logs in by key as on Linode, also on added images (Ubuntu's disables root).
VENDOR_DATA = "#cloud-config\ndisable_root: false\n"


SEED_ATTEMPTS = 3  # xorriso runs when it crashed rather than refused (write_seed)


def write_seed(path: str, user_data: str, meta: str, vendor_data: str = VENDOR_DATA) -> None:
    """A NoCloud seed: an ISO 9660 volume labelled ``cidata`` with ``user-data`` (exactly ``user_data``),
    ``meta-data`` and ``vendor-data``. Written next to ``path`` and renamed into place."""
    tools = require_tools("xorriso", purpose="writing the NoCloud seed")
    d = os.path.dirname(path)
    src = tempfile.mkdtemp(dir=d, prefix=".seed-")
    try:
        for name, text in (("user-data", user_data), ("meta-data", meta), ("vendor-data", vendor_data)):
            fd = os.open(os.path.join(src, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        tmp = path + ".tmp"
        for _ in range(SEED_ATTEMPTS):
            proc = subprocess.run([tools["xorriso"], "-as", "mkisofs", "-quiet", "-output", tmp, "-volid",
                                   "cidata", "-joliet", "-rock", src], capture_output=True, text=True)
            # xorriso that crashed (it catches the signal and says "UNIX-SIGNAL: SIGSEGV"; seen once in a test
            # run on a loaded machine) is run again; what it refuses is not
            if proc.returncode == 0 or "UNIX-SIGNAL" not in proc.stderr:
                break
        if proc.returncode != 0:
            raise LcaiError(f"writing the NoCloud seed failed: {proc.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o600)  # the user data holds the app's environment
        os.replace(tmp, path)
    finally:
        for f in os.listdir(src):
            os.unlink(os.path.join(src, f))
        os.rmdir(src)


def read_seed(path: str) -> dict[str, str]:
    """The files of a seed ISO (for tests and ``detail``), read back with xorriso."""
    tools = require_tools("xorriso", purpose="reading a NoCloud seed")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([tools["xorriso"], "-osirrox", "on", "-indev", path, "-extract", "/", tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise LcaiError(f"reading {path} failed: {proc.stderr.strip()[-300:]}")
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), encoding="utf-8", newline="") as f:
                out[name] = f.read()
        label = subprocess.run([tools["xorriso"], "-indev", path, "-pvd_info"], capture_output=True, text=True)
        for line in (label.stdout + label.stderr).splitlines():
            if line.startswith("Volume Id"):
                out[":volid"] = line.split(":", 1)[1].strip()
    return out


# ---------------------------------------------------------------- disk


def make_overlay(path: str, image: dict, size: Optional[str] = None) -> None:
    """A qcow2 overlay on the cached image (the image itself is never written)."""
    tools = require_tools("qemu-img", purpose="creating the VM's disk")
    tmp = path + ".tmp"
    argv = [tools["qemu-img"], "create", "-q", "-f", "qcow2", "-b", image["disk"], "-F", image.get("format", "raw"),
            tmp]
    if size:
        argv.append(size)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LcaiError(f"creating the VM disk failed: {proc.stderr.strip()[-300:]}")
    os.replace(tmp, path)


# ---------------------------------------------------------------- qemu


def qemu_argv(vm: dict, image: dict, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The qemu command line of a VM described by ``vm`` (its ``vm.json``)."""
    d = vm["vm_dir"]
    fwd = [f"hostfwd=tcp:127.0.0.1:{vm['ssh_port']}-:22"]
    for guest, host in sorted((vm.get("ports") or {}).items(), key=lambda kv: int(kv[0])):
        fwd.append(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}")
    argv = [qemu, "-name", f"lcai-{vm['deployment_id']}", *accel_args(vm["accel"]),
            "-smp", str(vm["cpus"]), "-m", str(vm["memory"]),
            "-nodefaults", "-display", "none", "-no-user-config",
            "-daemonize", "-pidfile", os.path.join(d, "qemu.pid"),
            "-serial", f"file:{os.path.join(d, 'serial.log')}",
            "-monitor", "none",
            "-drive", f"file={os.path.join(d, 'disk.qcow2')},if=virtio,format=qcow2,discard=unmap",
            "-drive", f"file={os.path.join(d, 'seed.iso')},if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0," + ",".join(fwd),
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci"]
    from .volumes import qemu_args

    argv += qemu_args(vm.get("volumes"))
    if image.get("kind") == "kernel":
        argv += ["-kernel", image["kernel"], "-initrd", image["initrd"], "-append", image.get("append", "")]
    return argv


def read_pid(d: str) -> Optional[int]:
    try:
        with open(os.path.join(d, "qemu.pid"), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: Optional[int], d: Optional[str] = None) -> bool:
    """Is ``pid`` a live qemu of VM dir ``d``? (a recycled pid running something else is not)"""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    if d is not None:
        return any(os.path.join(d, "qemu.pid").encode() == part for part in cmd)
    return True


def start(vm: dict, image: dict, attempts_on_port_clash: int = 1) -> int:
    """Start qemu daemonized; returns its pid. ``LcaiError`` with qemu's message if it fails."""
    tools = require_tools("qemu-system-x86_64", purpose="starting a local VM")
    d = vm["vm_dir"]
    argv = qemu_argv(vm, image, tools["qemu-system-x86_64"])
    try:  # a stale pidfile would name a dead qemu
        os.unlink(os.path.join(d, "qemu.pid"))
    except FileNotFoundError:
        pass
    with open(os.path.join(d, "qemu.log"), "w", encoding="utf-8") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        log.write(proc.stderr)
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.strip().splitlines() if "warning" not in ln.lower()]
        raise LcaiError(f"qemu failed to start: {err[-1] if err else f'exit {proc.returncode}'}",
                        hint=f"full output: {os.path.join(d, 'qemu.log')}")
    pid = read_pid(d)
    if not pid_alive(pid, d):
        raise LcaiError("qemu started but exited at once", hint=f"see {os.path.join(d, 'qemu.log')}")
    return pid  # type: ignore[return-value]


def _proc_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat): tells a recycled pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def exited(pid: int, start: Optional[str]) -> bool:
    """Has process ``pid`` (started at ``start``) finished exiting? Not merely its main thread: when qemu's main
    thread is gone its pid shows as a zombie with an empty command line while its other threads still hold the
    VM's files and forwarded ports; it is done when /proc/PID is gone, is another process, or is a zombie with
    no thread left but the main one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            threads = next((int(ln.split()[1]) for ln in f if ln.startswith("Threads:")), 1)
    except (OSError, IndexError, ValueError):
        return True
    if start is not None and fields[19] != start:
        return True
    return fields[0] in ("Z", "X") and threads <= 1


def stop_seconds() -> float:
    """How long to wait for qemu to exit after SIGTERM, and again after SIGKILL (``LCAI_LOCAL_STOP_SECONDS``)."""
    return float(os.environ.get("LCAI_LOCAL_STOP_SECONDS", "5"))


def kill(d: str, pid: Optional[int] = None, grace: Optional[float] = None) -> bool:
    """Stop the VM's qemu and wait until it has exited (all its threads: its files and ports are free then):
    TERM, then KILL after ``grace`` s (default ``LCAI_LOCAL_STOP_SECONDS``, 5), then at most as long again;
    LcaiError if it is still there. True if one was running."""
    pid = pid if pid is not None else read_pid(d)
    if not pid_alive(pid, d):
        return False
    assert pid is not None
    grace = stop_seconds() if grace is None else grace
    start = _proc_start(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + grace
        while time.monotonic() < end:
            if exited(pid, start):
                return True
            time.sleep(0.05)
    if exited(pid, start):
        return True
    raise LcaiError(f"qemu (pid {pid}) of {d} has not exited {2 * grace:g} s after SIGTERM and SIGKILL",
                    hint="it may be stuck in the kernel (disk I/O); try again later (LCAI_LOCAL_STOP_SECONDS "
                         "sets the wait)")


def serial_tail(d: str, lines: int = 15) -> list[str]:
    try:
        with open(os.path.join(d, "serial.log"), "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = [ln.rstrip("\r") for ln in text.splitlines() if ln.strip()]
    return out[-lines:]


# ---------------------------------------------------------------- vm.json


def load_vm(deployment_id: str) -> Optional[dict]:
    try:
        with open(os.path.join(vm_dir(deployment_id), "vm.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_vm(vm: dict) -> None:
    d = vm["vm_dir"]
    tmp = os.path.join(d, ".vm.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(vm, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(d, "vm.json"))


def all_vm_ids() -> list[str]:
    try:
        return sorted(n for n in os.listdir(vms_dir()) if not n.startswith("."))
    except OSError:
        return []
