"""Fixtures for the local provider's tests: isolated LCAI_LOCAL_DIR / LCAI_LOCAL_CACHE, a tiny registered image,
and a fake ``qemu-system-x86_64`` on PATH that daemonizes like qemu (pidfile, serial file) and answers SSH's
banner on the forwarded SSH port, so the provider contract runs end to end without a VM."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lcai_testing import tools

FAKE_QEMU = textwrap.dedent('''\
    #!{python}
    """A stand-in for qemu-system-x86_64: parses the options lcai-local passes, then (-daemonize) forks a
    child that keeps the pidfile path in its argv (as qemu does), writes the pidfile, logs to the serial
    file and greets on the forwarded SSH port. FAKE_QEMU_MODE: ok | fail | exit (child dies at once) |
    nossh (no banner) | clash (host forwarding error)."""
    import os, socket, sys, threading, time
    args = sys.argv[1:]
    mode = os.environ.get("FAKE_QEMU_MODE", "ok")
    if mode == "fail":
        print("qemu-system-x86_64: -drive file=x: Could not open 'x': No such file or directory", file=sys.stderr)
        sys.exit(1)
    if mode == "clash":
        print("qemu-system-x86_64: -netdev user,id=n0: could not set up host forwarding rule 'tcp:...'",
              file=sys.stderr)
        sys.exit(1)
    opt = {{}}
    for i, a in enumerate(args):
        if a.startswith("-") and i + 1 < len(args):
            opt.setdefault(a, []).append(args[i + 1])
    pidfile = opt["-pidfile"][0]
    serial = opt["-serial"][0].split(":", 1)[1]
    ssh_port = None
    for part in opt["-netdev"][0].split(","):
        if part.startswith("hostfwd=") and part.endswith("-:22"):
            ssh_port = int(part.split(":")[2].split("-")[0])
    with open(os.path.join(os.path.dirname(pidfile), "fake-argv"), "w") as f:
        f.write("\\n".join(sys.argv))
    if os.fork():
        for _ in range(200):
            if os.path.exists(pidfile):
                sys.exit(0)
            time.sleep(0.01)
        sys.exit(1)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)  # as qemu -daemonize does: the caller's pipes close
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # re-exec so /proc/PID/cmdline carries -pidfile PATH, as a real qemu's does
    os.execv(sys.executable, [sys.executable, __file__, "--child", "-pidfile", pidfile, "-serial", "file:" + serial,
                              "--ssh", str(ssh_port or 0), "--mode", mode])
''')

FAKE_CHILD = textwrap.dedent('''\
    import os, socket, sys, time
    a = sys.argv
    pidfile = a[a.index("-pidfile") + 1]
    serial = a[a.index("-serial") + 1].split(":", 1)[1]
    ssh_port = int(a[a.index("--ssh") + 1])
    mode = a[a.index("--mode") + 1]
    with open(serial, "a") as f:
        f.write("[    0.000000] Linux version 6.1.0-fake\\nfake boot line 2\\n")
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()) + "\\n")
    os.replace(pidfile + ".tmp", pidfile)
    if mode == "exit":
        with open(serial, "a") as f:
            f.write("Kernel panic - not syncing: fake\\n")
        time.sleep(0.3)
        sys.exit(1)
    srv = None
    if ssh_port and mode != "nossh":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", ssh_port))
        srv.listen(5)
        srv.settimeout(0.2)
    end = time.time() + 120  # a bound, should a test leave one behind
    while time.time() < end:
        if srv is None:
            time.sleep(0.2)
            continue
        try:
            c, _ = srv.accept()
        except OSError:
            continue
        c.sendall(b"SSH-2.0-fake\\r\\n")
        c.close()
''')


#: tools the provider runs besides qemu (faked here); lcai_testing.tools names their Debian packages
TOOLS = ("qemu-img", "xorriso", "ssh-keygen")


def need_tools() -> None:
    """Skip (fail under CI=true) when a tool the provider runs is missing, naming the apt package."""
    tools.need(*TOOLS, why="the local provider needs")


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """Isolated dirs, the provider host reset, and the KVM probe decided (TCG) so no test probes the host."""
    from lcai_core.plugins import reset_host

    need_tools()

    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("LCAI_LOCAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LCAI_LOCAL_ACCEL", "tcg")
    monkeypatch.setenv("LCAI_LOCAL_POLL_SECONDS", "0.1")
    reset_host()
    yield tmp_path
    reset_host()


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch):
    """A fake qemu-system-x86_64 first on PATH; yields the bin dir. Every fake VM is killed afterwards."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    q = bindir / "qemu-system-x86_64"
    child = bindir / "fake_qemu_child.py"
    child.write_text(FAKE_CHILD)
    q.write_text(FAKE_QEMU.format(python=sys.executable).replace(
        "os.execv(sys.executable, [sys.executable, __file__,",
        f"os.execv(sys.executable, [sys.executable, {str(child)!r},"))
    q.chmod(q.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    yield bindir
    # no fake VM outlives its test: kill, by pid, every fake this test started (its pidfiles)
    import signal

    for pidfile in (tmp_path / "local").glob("vms/*/qemu.pid"):
        try:
            pid = int(pidfile.read_text())
            if str(child) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture
def tiny_image(local_env):
    """A registered 'debian12' image: a 16 MiB raw file plus kernel/initrd placeholders (never booted)."""
    import json

    d = Path(os.environ["LCAI_LOCAL_CACHE"]) / "debian12"
    d.mkdir(parents=True)
    subprocess.run([tools.which("qemu-img"), "create", "-q", "-f", "raw", str(d / "disk.img"), "16M"], check=True)
    (d / "vmlinuz").write_bytes(b"kernel")
    (d / "initrd.img").write_bytes(b"initrd")
    (d / "image.json").write_text(json.dumps({
        "name": "debian12", "linode_image": "linode/debian12", "kind": "kernel", "disk": "disk.img",
        "format": "raw", "kernel": "vmlinuz", "initrd": "initrd.img", "append": "root=/dev/vda rw console=ttyS0"}))
    return d


def pytest_collection_modifyitems(config, items):
    """Boot tests take minutes: they run only when selected (``pytest -m boot tests/local``)."""
    if "boot" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="boots a VM: select with -m boot")
    for item in items:
        if item.get_closest_marker("boot"):
            item.add_marker(skip)
