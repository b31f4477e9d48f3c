"""The local provider without a VM: seed contents, qemu command line, KVM probe and fallback, ports, steps and
their undo, rows/discover/destroy with a fake qemu process, the image commands and missing-tool errors."""

from __future__ import annotations

import ast
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcai_core.errors import InputError, LcaiError
from lcai_core.providers import Spec
from lcai_testing import tools

USER_DATA = "#cloud-config\n# lcai: exact bytes matter\nruncmd:\n- [sh, -c, 'echo \"é\" $HOME\\t']\n"


def spec(**kw) -> Spec:
    base = dict(deployment_id="dep00001", app="web", env="default", label="lcai-web-default-dep00001",
                tags=("lcai", "lcai-id:dep00001"), region="local", type="g6-standard-2", image="linode/debian12",
                user_data=USER_DATA, user_data_b64="", app_ports=(8000,), external_port=8000,
                ssh_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE00000000000000000000000000000000000000000"
                          "00 me@laptop",))
    base.update(kw)
    return Spec(**base)


def provider():
    from lcai_local.provider import LocalProvider

    return LocalProvider()


def create(p, s, say=lambda m: None) -> dict:
    """Run the create steps as core does; returns the record."""
    rec = {"deployment_id": s.deployment_id, "provider": "local", "app": s.app, "env": s.env,
           "external_port": s.external_port, "status": "creating", "provider_state": {}}
    for step in p.create_steps(s):
        fields = step.run(rec["provider_state"], say)
        rec["provider_state"].update(fields)
        if "address" in fields:
            rec["address"] = fields["address"]
    return rec


def alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return st != "Z"


# ---------------------------------------------------------------- registration, lazy loading


def test_provider_and_command_registered(local_env):
    from lcai_core.plugins import get_host

    host = get_host()
    prov = host.providers["local"]
    assert prov.name == "local" and prov.list_requests == 0 and prov.phases_over_ssh is True


def test_help_does_not_import_the_provider():
    code = ("import sys; from lcai_core.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('lcai_local')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "local " in r.stdout  # listed in --help
    assert set(ast.literal_eval(r.stdout.strip().splitlines()[-1])) <= {"lcai_local"}  # the tiny hook module at most


# ---------------------------------------------------------------- seed


def test_seed_iso_holds_the_exact_user_data(local_env, tmp_path):
    from lcai_local import vm as V

    d = tmp_path / "seed"
    d.mkdir()
    meta = V.meta_data("lcai-dep00001-abc", "lcai-web", ["ssh-ed25519 AAAA k1", "  ", "ssh-rsa BBBB k2\n"])
    V.write_seed(str(d / "seed.iso"), USER_DATA, meta)
    assert stat.S_IMODE((d / "seed.iso").stat().st_mode) == 0o600
    got = V.read_seed(str(d / "seed.iso"))
    assert got[":volid"] == "cidata"
    assert got["user-data"].encode() == USER_DATA.encode()
    md = json.loads(got["meta-data"])
    assert md == {"instance-id": "lcai-dep00001-abc", "local-hostname": "lcai-web",
                  "public-keys": ["ssh-ed25519 AAAA k1", "ssh-rsa BBBB k2"]}
    assert got["vendor-data"].startswith("#cloud-config\n") and "disable_root: false" in got["vendor-data"]
    assert sorted(k for k in got if not k.startswith(":")) == ["meta-data", "user-data", "vendor-data"]
    assert os.listdir(d) == ["seed.iso"]  # no temporary files left


def _fake_xorriso(tmp_path, monkeypatch, script: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "xorriso"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "runs"


def test_seed_is_written_again_when_xorriso_crashed(local_env, tmp_path, monkeypatch):
    """xorriso that caught a signal (a crash, seen once under load) is run again; the seed is then written."""
    from lcai_local import vm as V

    runs = _fake_xorriso(tmp_path, monkeypatch, f"""echo run >> {tmp_path}/runs
if [ "$(wc -l < {tmp_path}/runs)" -lt 2 ]; then echo 'UNIX-SIGNAL:  SIGSEGV  errno= 0' >&2; exit 1; fi
while [ "$1" != -output ]; do shift; done; echo iso > "$2"
""")
    V.write_seed(str(tmp_path / "seed.iso"), USER_DATA, "{}")
    assert runs.read_text().count("run") == 2 and (tmp_path / "seed.iso").read_text() == "iso\n"


def test_seed_refused_by_xorriso_is_one_error_without_a_retry(local_env, tmp_path, monkeypatch):
    from lcai_local import vm as V

    runs = _fake_xorriso(tmp_path, monkeypatch,
                         f"echo run >> {tmp_path}/runs; echo 'xorriso : FAILURE : no space' >&2; exit 5\n")
    with pytest.raises(LcaiError, match="writing the NoCloud seed failed: xorriso : FAILURE : no space"):
        V.write_seed(str(tmp_path / "seed.iso"), USER_DATA, "{}")
    assert runs.read_text().count("run") == 1 and not (tmp_path / "seed.iso").exists()


# ---------------------------------------------------------------- qemu command line


def vm_desc(tmp_path, accel="tcg"):
    return {"deployment_id": "dep00001", "vm_dir": str(tmp_path), "ssh_port": 41022,
            "ports": {"8000": 41080, "443": 41443},
            "accel": accel, "cpus": 2, "memory": 2048}


def test_qemu_argv_tcg_direct_kernel(tmp_path):
    from lcai_local import vm as V

    img = {"kind": "kernel", "kernel": "/c/vmlinuz", "initrd": "/c/initrd.img", "append": "root=/dev/vda rw"}
    argv = V.qemu_argv(vm_desc(tmp_path), img)
    s = " ".join(argv)
    assert "-accel tcg,thread=multi -cpu max" in s and "kvm" not in s
    assert "-smp 2 -m 2048" in s
    assert "-daemonize -pidfile " + str(tmp_path / "qemu.pid") in s
    assert f"-serial file:{tmp_path / 'serial.log'}" in s
    netdev = argv[argv.index("-netdev") + 1]
    assert netdev == ("user,id=n0,hostfwd=tcp:127.0.0.1:41022-:22,hostfwd=tcp:127.0.0.1:41443-:443,"
                      "hostfwd=tcp:127.0.0.1:41080-:8000")
    assert argv[argv.index("-kernel") + 1] == "/c/vmlinuz" and argv[argv.index("-append") + 1] == "root=/dev/vda rw"
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0].startswith(f"file={tmp_path / 'disk.qcow2'},if=virtio,format=qcow2")
    assert drives[1] == f"file={tmp_path / 'seed.iso'},if=virtio,format=raw,readonly=on"


def test_qemu_argv_kvm_own_boot_loader(tmp_path):
    from lcai_local import vm as V

    argv = V.qemu_argv(vm_desc(tmp_path, "kvm"), {"kind": "disk", "disk": "/img/ubuntu.qcow2", "format": "qcow2"})
    assert "-accel kvm -cpu host" in " ".join(argv)
    assert "-kernel" not in argv and "-append" not in argv


# ---------------------------------------------------------------- KVM probe and fallback


def fake_probe_qemu(tmp_path, body: str) -> str:
    q = tmp_path / "probe-qemu"
    q.write_text(f"#!{sys.executable}\nimport sys, time\na = sys.argv\n"
                 "serial = a[a.index('-serial') + 1].split(':', 1)[1]\n" + body)
    q.chmod(0o755)
    return str(q)


def test_kvm_probe_works_when_the_kernel_reaches_its_panic(tmp_path):
    from lcai_local import vm as V

    dev = tmp_path / "kvm"
    dev.write_text("")
    q = fake_probe_qemu(tmp_path, "open(serial, 'w').write('Linux version\\nKernel panic - not syncing: VFS\\n')\n")
    assert V.probe_kvm("/k", timeout=5, qemu=q, dev=str(dev)) == (True, "KVM works")


def test_kvm_probe_fails_when_the_kernel_hangs(tmp_path):
    from lcai_local import vm as V

    dev = tmp_path / "kvm"
    dev.write_text("")
    q = fake_probe_qemu(tmp_path, "time.sleep(30)\n")
    t = time.monotonic()
    ok, why = V.probe_kvm("/k", timeout=0.5, qemu=q, dev=str(dev))
    assert not ok and "no progress under KVM" in why and time.monotonic() - t < 5


def test_kvm_probe_fails_on_emulation_failure(tmp_path):
    from lcai_local import vm as V

    dev = tmp_path / "kvm"
    dev.write_text("")
    q = fake_probe_qemu(tmp_path, "sys.stderr.write('KVM internal error. Suberror: 1\\nemulation failure\\n'); "
                                  "sys.exit(1)\n")
    assert V.probe_kvm("/k", timeout=5, qemu=q, dev=str(dev)) == (
        False, "KVM emulation failure (nested virtualisation)")


def test_kvm_probe_without_device_or_kernel(tmp_path):
    from lcai_local import vm as V

    assert V.probe_kvm("/k", dev=str(tmp_path / "nope")) == (False, f"no {tmp_path / 'nope'}")
    dev = tmp_path / "kvm"
    dev.write_text("")
    ok, why = V.probe_kvm(None, dev=str(dev))
    assert not ok and "lcai local image build debian12" in why


def test_accelerator_falls_back_to_tcg_and_remembers(local_env, monkeypatch):
    from lcai_local import vm as V

    monkeypatch.delenv("LCAI_LOCAL_ACCEL")
    calls = []

    def probe(kernel, **kw):
        calls.append(kernel)
        return False, "a kernel made no progress under KVM in 10 s (nested virtualisation?)"

    monkeypatch.setattr(V, "probe_kvm", probe)
    assert V.accelerator("/k") == (
        "tcg", "KVM unusable: a kernel made no progress under KVM in 10 s (nested virtualisation?)")
    assert V.accelerator("/k")[0] == "tcg" and calls == ["/k"]  # the second answer comes from accel.json
    monkeypatch.setenv("LCAI_LOCAL_ACCEL", "kvm")
    assert V.accelerator("/k") == ("kvm", "LCAI_LOCAL_ACCEL")


# ---------------------------------------------------------------- ports, sizing


def test_free_port_is_bindable_and_detected_in_use():
    from lcai_local import vm as V

    p = V.free_port()
    assert 1024 < p < 65536 and not V.port_in_use(p)
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))
        s.listen(1)
        assert V.port_in_use(p) and V.answers(p)
        assert not V.ssh_banner(p, timeout=0.3)  # accepts, but no SSH greeting


def test_sizing_from_type_and_env(monkeypatch):
    from lcai_local import vm as V

    monkeypatch.delenv("LCAI_LOCAL_MEMORY", raising=False)
    monkeypatch.delenv("LCAI_LOCAL_CPUS", raising=False)
    monkeypatch.setattr(V, "host_memory_mib", lambda: 64 * 1024)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert V.sizing("g6-standard-1") == (2048, 1)
    assert V.sizing("g1-gpu-rtx6000-1") == V.DEFAULT_SIZE
    monkeypatch.setattr(V, "host_memory_mib", lambda: 4096)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert V.sizing("g6-standard-4") == (2048, 2)  # capped: half the host memory, the host's CPUs
    monkeypatch.setenv("LCAI_LOCAL_MEMORY", "1536")
    monkeypatch.setenv("LCAI_LOCAL_CPUS", "1")
    assert V.sizing("g6-standard-4") == (1536, 1)


# ---------------------------------------------------------------- preflight


def test_preflight_refuses_gpu_and_missing_image(local_env, fake_qemu):
    p = provider()
    with pytest.raises(InputError, match="needs a GPU, and a local VM has none"):
        p.preflight(spec(gpu=True))
    with pytest.raises(InputError) as e:
        p.preflight(spec())
    assert "no local image for linode/debian12" in e.value.message
    assert e.value.hint == "lcai local image build debian12"
    with pytest.raises(InputError) as e:
        p.preflight(spec(image="linode/ubuntu24.04"))
    assert e.value.hint.startswith("lcai local image add ubuntu24.04 FILE")


def test_preflight_summary_and_price(local_env, fake_qemu, tiny_image):
    pre = provider().preflight(spec())
    assert pre.price.hourly == 0 and pre.price.note == "local VM"
    assert "image debian12" in pre.summary and "TCG" in pre.summary
    assert "port 8000 forwarded to 127.0.0.1" in pre.summary
    assert any(n.startswith("accelerator tcg") for n in pre.notes)


def test_preflight_needs_qemu(local_env, tiny_image, monkeypatch, tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("lcai_local.paths.which", lambda tool: None)
    with pytest.raises(InputError) as e:
        provider().preflight(spec())
    assert "qemu-system-x86_64" in e.value.message
    assert e.value.hint.startswith("apt-get install --no-install-recommends") and "qemu-system-x86" in e.value.hint


# ---------------------------------------------------------------- the whole contract with a fake qemu


def test_create_wait_rows_ssh_destroy(local_env, fake_qemu, tiny_image):
    from lcai_local import vm as V

    p = provider()
    s = spec()
    said = []
    rec = create(p, s, said.append)
    ps = rec["provider_state"]
    d = Path(ps["vm_dir"])
    assert rec["address"] == "127.0.0.1" and ps["accel"] == "tcg" and ps["accel_reason"] == "LCAI_LOCAL_ACCEL"
    assert alive(ps["pid"]) and set(ps["ports"]) == {"8000"} and ps["app_port"] == ps["ports"]["8000"]
    assert sorted(os.listdir(d)) == ["disk.qcow2", "fake-argv", "qemu.log", "qemu.pid", "seed.iso", "serial.log",
                                     "vm.json"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    key = Path(os.environ["LCAI_LOCAL_DIR"]) / "id_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    seed = V.read_seed(str(d / "seed.iso"))
    assert seed["user-data"] == USER_DATA
    md = json.loads(seed["meta-data"])
    assert md["instance-id"] == ps["instance_id"] and md["instance-id"].startswith("lcai-dep00001-")
    assert md["public-keys"] == [s.ssh_keys[0], (key.parent / "id_ed25519.pub").read_text().strip()]
    info = json.loads(subprocess.run([tools.which("qemu-img"), "info", "--output=json", str(d / "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["backing-filename"] == str(tiny_image / "disk.img")

    phases = []
    fields = p.wait(rec, phases.append, time.monotonic() + 20)
    assert fields == {"status": "running", "address": "127.0.0.1"}
    assert phases[0].startswith("VM started (TCG") and phases[-1] == f"SSH answers on 127.0.0.1:{ps['ssh_port']}"

    ep = p.ssh(rec)
    assert (ep.host, ep.port, ep.user, ep.identity_file) == ("127.0.0.1", ps["ssh_port"], "root", str(key))
    assert ep.options == ("UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=no", "LogLevel=ERROR")
    app = p.app_endpoint(rec)
    assert (app.host, app.port) == ("127.0.0.1", ps["app_port"])
    detail = dict(p.detail(rec))
    assert detail["accelerator"].startswith("tcg") and "running" in detail["qemu pid"]
    assert detail["serial console log"] == str(d / "serial.log")
    assert f"127.0.0.1:{ps['app_port']} -> 8000" in detail["forwarded ports"]

    listing = p.rows({"dep00001": rec})
    assert listing.reached and [r["live_status"] for r in listing.rows] == ["running"]

    p.destroy(rec, said.append)
    assert not alive(ps["pid"]) and not d.exists()
    assert not V.answers(ps["ssh_port"]) and not V.answers(ps["app_port"])  # nothing listens any more
    assert [r["live_status"] for r in p.rows({"dep00001": rec}).rows] == ["vanished"]
    p.destroy(rec)  # idempotent


def test_rows_stopped_untracked_and_discover(local_env, fake_qemu, tiny_image):
    import signal

    p = provider()
    a = create(p, spec())
    b = create(p, spec(deployment_id="dep00002", label="lcai-web-default-dep00002"))
    os.kill(a["provider_state"]["pid"], signal.SIGKILL)
    for _ in range(100):
        if not alive(a["provider_state"]["pid"]):
            break
        time.sleep(0.05)
    listing = p.rows({"dep00001": a, "dep00003": {"deployment_id": "dep00003", "provider_state": {}}})
    by = {r["deployment_id"]: r for r in listing.rows}
    assert by["dep00001"]["live_status"] == "stopped"
    assert by["dep00003"]["live_status"] == "creating?"  # recorded, never created
    assert by["dep00002"]["untracked"] is True and by["dep00002"]["live_status"] == "running"
    assert by["dep00002"]["provider_state"]["pid"] == b["provider_state"]["pid"]
    found = {r["deployment_id"]: r for r in p.discover()}
    assert set(found) == {"dep00001", "dep00002"}
    assert found["dep00002"]["status"] == "running" and found["dep00001"]["status"] == "stopped"
    assert found["dep00002"]["provider"] == "local" and found["dep00002"]["address"] == "127.0.0.1"
    assert found["dep00002"]["label"] == "lcai-web-default-dep00002" and found["dep00002"]["external_port"] == 8000
    for rec in found.values():
        p.destroy(rec)
    assert p.discover() == [] and not alive(b["provider_state"]["pid"])


def test_steps_find_and_undo_after_an_interruption(local_env, fake_qemu, tiny_image):
    p = provider()
    s = spec()
    disk, vm_step = p.create_steps(s)
    assert disk.find({}) is None and vm_step.find({}) is None
    state = disk.run({}, lambda m: None)
    again = disk.run(state, lambda m: None)  # reconciling: the same disk, not a second one
    assert again["instance_id"] == state["instance_id"] and again["ssh_port"] == state["ssh_port"]
    state.update(vm_step.run(state, lambda m: None))
    pid = state["pid"]
    assert vm_step.run(state, lambda m: None)["pid"] == pid  # never a second qemu
    # core lost the step results (Ctrl-C): find() recovers them from the VM directory
    assert vm_step.find({})["pid"] == pid and disk.find({})["vm_dir"] == state["vm_dir"]
    said = []
    vm_step.undo(state, said.append)
    assert not alive(pid) and vm_step.find({}) is None
    disk.undo(state, said.append)
    assert disk.find({}) is None and not Path(state["vm_dir"]).exists()
    assert said == ["VM stopped", f"VM directory removed: {state['vm_dir']}"]


def test_wait_reports_a_dead_qemu_with_its_console(local_env, fake_qemu, tiny_image, monkeypatch):
    monkeypatch.setenv("FAKE_QEMU_MODE", "exit")
    p = provider()
    disk, vm_step = p.create_steps(spec())
    rec = {"deployment_id": "dep00001", "provider_state": disk.run({}, lambda m: None)}
    try:
        rec["provider_state"].update(vm_step.run(rec["provider_state"], lambda m: None))
    except LcaiError as e:  # the fake may already be gone when start() checks
        assert "exited at once" in e.message
        return
    with pytest.raises(LcaiError) as e:
        p.wait(rec, lambda m: None, time.monotonic() + 20)
    assert "exited before SSH answered" in e.value.message and "Kernel panic - not syncing: fake" in e.value.hint
    p.destroy(rec)


def test_wait_times_out_when_ssh_never_answers(local_env, fake_qemu, tiny_image, monkeypatch):
    monkeypatch.setenv("FAKE_QEMU_MODE", "nossh")
    p = provider()
    rec = create(p, spec())
    t = time.monotonic()
    with pytest.raises(LcaiError, match="SSH did not answer on 127.0.0.1:") as e:
        p.wait(rec, lambda m: None, time.monotonic() + 1.0)
    assert time.monotonic() - t < 10 and "Linux version 6.1.0-fake" in e.value.hint
    p.destroy(rec)


def test_qemu_start_failure_is_one_line(local_env, fake_qemu, tiny_image, monkeypatch):
    monkeypatch.setenv("FAKE_QEMU_MODE", "fail")
    p = provider()
    disk, vm_step = p.create_steps(spec())
    state = disk.run({}, lambda m: None)
    with pytest.raises(LcaiError) as e:
        vm_step.run(state, lambda m: None)
    assert e.value.message == ("qemu failed to start: qemu-system-x86_64: -drive file=x: Could not open 'x': "
                               "No such file or directory")
    assert e.value.hint.endswith("qemu.log")
    disk.undo(state, lambda m: None)


def test_port_clash_is_retried_with_new_ports(local_env, fake_qemu, tiny_image, monkeypatch):
    from lcai_local import vm as V

    real_start = V.start
    calls = []

    def start(vm, image):
        calls.append(vm["ssh_port"])
        if len(calls) == 1:
            monkeypatch.setenv("FAKE_QEMU_MODE", "clash")
        else:
            monkeypatch.setenv("FAKE_QEMU_MODE", "ok")
        return real_start(vm, image)

    monkeypatch.setattr(V, "start", start)
    p = provider()
    rec = create(p, spec())
    assert len(calls) == 2 and rec["provider_state"]["ssh_port"] == calls[1]
    assert json.loads((Path(rec["provider_state"]["vm_dir"]) / "vm.json").read_text())["ssh_port"] == calls[1]
    p.destroy(rec)


def test_rebuild_keeps_dir_and_ports_with_new_seed(local_env, fake_qemu, tiny_image):
    from lcai_local import vm as V

    p = provider()
    rec = create(p, spec())
    old = dict(rec["provider_state"])
    new_ud = USER_DATA + "# v2\n"
    said = []
    fields = p.rebuild(rec, spec(user_data=new_ud), said.append)
    assert fields["vm_dir"] == old["vm_dir"] and fields["ssh_port"] == old["ssh_port"]
    assert fields["ports"] == old["ports"] and fields["app_port"] == old["app_port"]
    assert fields["instance_id"] != old["instance_id"] and fields["pid"] != old["pid"]
    assert not alive(old["pid"]) and alive(fields["pid"])
    seed = V.read_seed(os.path.join(fields["vm_dir"], "seed.iso"))
    assert seed["user-data"] == new_ud and json.loads(seed["meta-data"])["instance-id"] == fields["instance_id"]
    assert said[0] == "VM stopped"
    rec["provider_state"].update(fields)
    p.destroy(rec)
    with pytest.raises(LcaiError, match="VM directory .* is gone"):
        p.rebuild(rec, spec())


# ---------------------------------------------------------------- image commands


def run_cli(*args) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "lcai_core", *args], capture_output=True, text=True, timeout=120,
                       env=os.environ.copy())
    return r.returncode, r.stdout, r.stderr


def test_image_add_and_list(local_env, tmp_path):
    f = tmp_path / "ubuntu.qcow2"
    subprocess.run([tools.which("qemu-img"), "create", "-q", "-f", "qcow2", str(f), "64M"], check=True)
    rc, out, err = run_cli("local", "image", "list")
    assert rc == 0 and "no local images in" in err and "lcai local image build debian12" in err
    rc, out, err = run_cli("local", "image", "add", "linode/ubuntu24.04", str(f))
    assert rc == 0, err
    assert out.strip() == f"linode/ubuntu24.04 -> {f} (qcow2)"
    rc, out, err = run_cli("local", "image", "list")
    assert rc == 0 and "ubuntu24.04" in out and "boot loader" in out and str(f) in out
    rc, out, err = run_cli("local", "image", "list", "--json")
    assert json.loads(out)[0]["disk"] == str(f)


def test_image_errors_are_one_line_exit_2(local_env, tmp_path):
    rc, out, err = run_cli("local", "image", "add", "ubuntu24.04", str(tmp_path / "missing.qcow2"))
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err and "no such file" in err
    (tmp_path / "disk.img").write_bytes(b"")
    rc, out, err = run_cli("local", "image", "add", "Bad Name!", str(tmp_path / "disk.img"))
    assert rc == 2 and "expected a Linode image id like linode/debian12" in err
    rc, out, err = run_cli("local", "image", "build", "ubuntu24.04")
    assert rc == 2 and "lcai local image add ubuntu24.04 FILE" in err


def test_image_build_names_the_missing_tools(local_env, tmp_path, monkeypatch):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    code = ("import lcai_local.paths as p; p.which = lambda t: None; from lcai_core.cli import main; "
            "raise SystemExit(main(['local', 'image', 'build', 'debian12']))")
    r = subprocess.run([sys.executable, "-c", code],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == ("error: building a local image needs mmdebstrap, mkfs.ext4, qemu-system-x86_64, qemu-img, "
                        "xorriso, not found on PATH")
    assert lines[1] == ("hint: apt-get install --no-install-recommends e2fsprogs mmdebstrap qemu-system-x86 "
                        "qemu-utils xorriso")


def test_image_build_reuses_the_cache(local_env, tiny_image):
    from lcai_local import images

    said = []
    meta = images.build("linode/debian12", said.append)
    assert meta["disk"] == str(tiny_image / "disk.img")
    assert len(said) == 1 and "image debian12 is cached" in said[0]


def test_a_vm_lcai_lost_track_of_is_adopted_by_sync_and_destroyed(local_env, fake_qemu, tiny_image):
    """lcai crashed after qemu started, before the registry knew: `status` lists the VM as untracked,
    `sync` adopts it, `destroy` leaves no process and no directory."""
    p = provider()
    rec = create(p, spec(deployment_id="lost0001", label="lcai-web-default-lost0001"))
    pid, d = rec["provider_state"]["pid"], Path(rec["provider_state"]["vm_dir"])
    rc, out, err = run_cli("status", "--json")
    assert rc == 0, err
    rows = {r["deployment_id"]: r for r in json.loads(out)["deployments"]}
    assert rows["lost0001"]["untracked"] is True and rows["lost0001"]["live_status"] == "running"
    rc, out, err = run_cli("sync")
    assert rc == 0, err
    rc, out, err = run_cli("status", "lost0001", "--json")
    assert rc == 0, err
    row = json.loads(out)
    assert row["provider"] == "local" and row["live_status"] == "running" and row["address"] == "127.0.0.1"
    rc, out, err = run_cli("destroy", "lost0001", "--yes")
    assert rc == 0, err
    assert not alive(pid) and not d.exists()
    rc, out, err = run_cli("status", "--json")
    assert "lost0001" not in out


def test_kvm_probe_dies_with_lcai(tmp_path):
    """A kernel hung under KVM never exits: if lcai is killed mid-probe, the probe's qemu goes with it."""
    import signal

    dev = tmp_path / "kvm"
    dev.write_text("")
    pidfile = tmp_path / "probe.pid"
    q = fake_probe_qemu(tmp_path, f"import os; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)\n")
    code = f"from lcai_local import vm; vm.probe_kvm('/k', timeout=60, qemu={q!r}, dev={str(dev)!r})"
    lcai = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text():
                break
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert alive(child)
    finally:
        lcai.send_signal(signal.SIGKILL)
        lcai.wait()
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)


def test_an_added_image_boots_its_own_loader_on_a_larger_disk(local_env, fake_qemu, tmp_path):
    from lcai_local import images

    f = tmp_path / "cloud.qcow2"
    subprocess.run([tools.which("qemu-img"), "create", "-q", "-f", "qcow2", str(f), "64M"], check=True)
    images.add("ubuntu24.04", str(f))
    p = provider()
    rec = create(p, spec(image="linode/ubuntu24.04"))
    d = Path(rec["provider_state"]["vm_dir"])
    info = json.loads(subprocess.run([tools.which("qemu-img"), "info", "--output=json", str(d / "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(f) and info["virtual-size"] == 10 * 2**30
    argv = (d / "fake-argv").read_text().splitlines()
    assert "-kernel" not in argv and rec["provider_state"]["image_kind"] == "disk"
    p.destroy(rec)


# ---------------------------------------------------------------- KVM failure in one line (issue 25, item 8)

MSR_ABORT = ("qemu-system-x86_64: error: failed to set MSR 0x345 to 0x2000\n"
             "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:2893: kvm_buf_set_msrs: Assertion "
             "`ret == cpu->kvm_msr_buf->nmsrs' failed.\n")


def test_kvm_probe_turns_qemus_assertion_into_one_readable_line(tmp_path):
    """Nested KVM refusing an MSR makes qemu abort on an assertion: the probe says what happened and why, in
    words, not qemu's source location."""
    from lcai_local import vm as V

    dev = tmp_path / "kvm"
    dev.write_text("")
    q = fake_probe_qemu(tmp_path, f"sys.stderr.write({MSR_ABORT!r}); sys.exit(134)\n")
    ok, why = V.probe_kvm("/k", timeout=5, qemu=q, dev=str(dev))
    assert not ok
    assert why == ("qemu aborted: this host's KVM refused a CPU register (MSR 0x345) the virtual CPU needs "
                   "(usual under nested virtualisation)")
    other = "qemu-system-x86_64: ../accel/kvm/kvm-all.c:1702: kvm_set_phys_mem: Assertion `x' failed.\n"
    assert V.kvm_failure(other, 134) == "qemu aborted on an internal check in kvm_set_phys_mem under KVM " \
                                        "(nested virtualisation?)"
    assert V.kvm_failure("qemu-system-x86_64: failed to initialize kvm: Permission denied\n", 1) == \
        "failed to initialize kvm: Permission denied"


def test_tcg_note_is_one_line_with_what_why_and_how_slow(tmp_path, monkeypatch):
    """The preflight note: the accelerator, why KVM is not used (readable, also from an accel.json an older lcai
    wrote with qemu's raw message), that the CPU is emulated and how slow that is."""
    import json as _json

    from lcai_local import vm as V

    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("LCAI_LOCAL_ACCEL", raising=False)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "accel.json").write_text(_json.dumps(
        {"boot_id": V._boot_id(), "accel": "tcg", "why": "KVM unusable: " + MSR_ABORT.strip().splitlines()[-1]}))
    accel, why = V.accelerator("/k")
    assert accel == "tcg" and "Assertion" not in why and "refused a CPU register" in why
    from lcai_local.provider import accel_note

    note = accel_note(accel, why)
    assert note == ("accelerator tcg: KVM unusable: qemu aborted: this host's KVM refused a CPU register the "
                    "virtual CPU needs (usual under nested virtualisation); so the CPU is emulated (TCG): booting "
                    "and installing take minutes, not seconds (a native-runtime template took 120-146 s to healthy "
                    "here)")
    assert accel_note("kvm", "KVM works") == "accelerator kvm: KVM works"


# ---------------------------------------------------------------- stopping waits for the whole qemu (item 8)

LINGERING_QEMU = '''\
import ctypes, os, signal, sys, threading, time
pidfile = sys.argv[sys.argv.index("-pidfile") + 1]
linger = float(sys.argv[sys.argv.index("--linger") + 1])
term = threading.Event()
def cleanup():  # like qemu's other threads: still running (files, ports held) after the main thread is gone
    term.wait()
    time.sleep(linger)
    open(pidfile + ".exited", "w").write("x")
    os._exit(0)
threading.Thread(target=cleanup).start()
def on_term(*_):
    term.set()
    ctypes.CDLL(None).pthread_exit(None)  # the main thread ends first: the pid is a zombie, its cmdline empty
signal.signal(signal.SIGTERM, on_term if linger >= 0 else signal.SIG_IGN)
open(pidfile, "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
'''


def lingering_qemu(tmp_path, linger: float):
    d = tmp_path / "vm"
    d.mkdir()
    script = tmp_path / "lingering_qemu.py"
    script.write_text(LINGERING_QEMU)
    p = subprocess.Popen([sys.executable, str(script), "-pidfile", str(d / "qemu.pid"), "--linger", str(linger)])
    for _ in range(200):
        if (d / "qemu.pid").exists() and (d / "qemu.pid").read_text():
            break
        time.sleep(0.02)
    return p, d


def test_kill_waits_until_every_qemu_thread_has_exited(tmp_path):
    """qemu's main thread can exit before the rest of it (a zombie pid with an empty command line that still holds
    the disk and ports): stopping a VM returns only once the whole process is gone."""
    from lcai_local import vm as V

    p, d = lingering_qemu(tmp_path, linger=0.8)
    try:
        t = time.monotonic()
        assert V.kill(str(d), p.pid, grace=5) is True
        assert (d / "qemu.pid.exited").exists(), "kill returned while qemu was still exiting"
        assert 0.7 < time.monotonic() - t < 4
        assert V.exited(p.pid, None)
    finally:
        p.kill()
        p.wait()


def test_kill_is_bounded_and_configurable(tmp_path, monkeypatch):
    """A qemu that ignores SIGTERM gets SIGKILL after LCAI_LOCAL_STOP_SECONDS."""
    from lcai_local import vm as V

    monkeypatch.setenv("LCAI_LOCAL_STOP_SECONDS", "0.3")
    p, d = lingering_qemu(tmp_path, linger=-1)  # ignores SIGTERM
    try:
        t = time.monotonic()
        assert V.kill(str(d), p.pid) is True
        assert p.wait(timeout=5) == -9 and time.monotonic() - t < 3
    finally:
        p.kill()
        p.wait()
