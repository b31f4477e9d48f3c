"""Real boots with the local provider (marked ``boot``; select with ``pytest -m boot tests/local``).

The image is built once and cached (``LCAI_LOCAL_CACHE``, default here ``/var/cache/lcai``); a second run
reuses it. Each boot holds one of this machine's VM slots (``$LCAI_VM_SLOTS``, default 1: tests/boot/vmlock.py), as
the other boot tests do. Every wait is bounded: ``LCAI_BOOT_TIMEOUT`` (seconds, default 1200).

What a user would check, from outside the VM: ``lcai deploy --target local --wait`` reports healthy; over
SSH, cloud-init is ``done`` with no errors and ran exactly the user data ``lcai plan`` writes; the app answers
on the forwarded port; ``lcai deploy`` again rebuilds the same VM (same ports) with the new user data;
``lcai destroy`` leaves no process, file or listening port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "boot"))
from vmlock import vm_slot  # noqa: E402

pytestmark = pytest.mark.boot

BOOT_TIMEOUT = float(os.environ.get("LCAI_BOOT_TIMEOUT", "1200"))

TEMPLATE = """\
name: local-httpd
version: 1.0.0
description: A static page served by Debian's python3 (the local provider's boot test).
capabilities:
  runtime: native
deploy:
  target: local
  linode:
    image: linode/debian12
    container:
      command: python3 -m http.server 8000 --directory /srv/www
      internal_port: 8000
      external_port: 8000
      health:
        type: http
        path: /index.html
        port: 8000
        interval_seconds: 2
setup:
  files:
    - path: /srv/www/index.html
      content: "lcai-local PAGE\\n"
"""


def log(msg: str) -> None:
    print(f"[local-boot {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def lcai(*args: str, timeout: float = BOOT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run the real ``lcai`` (a subprocess: the same code path a user's shell takes)."""
    r = subprocess.run([sys.executable, "-m", "lcai_core", *args], capture_output=True, text=True, timeout=timeout,
                       env=os.environ.copy())
    log(f"lcai {' '.join(args)} -> {r.returncode}\n{r.stderr.strip()}")
    return r


@pytest.fixture
def boot_env(tmp_path, monkeypatch):
    from lcai_core.plugins import reset_host

    monkeypatch.setenv("LCAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("LCAI_LOCAL_CACHE", os.environ.get("LCAI_LOCAL_CACHE", "/var/cache/lcai"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.ssh keys of the user's: the provider's key only
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("NO_COLOR", "1")
    reset_host()
    yield tmp_path
    reset_host()


BOOT_TOOLS = ("mmdebstrap", "qemu-system-x86_64", "qemu-img", "xorriso", "ssh", "ssh-keygen")


def ensure_image() -> float:
    from lcai_testing import tools

    tools.need(*BOOT_TOOLS, why="boot tests need")
    t = time.monotonic()
    r = lcai("local", "image", "build", "debian12", timeout=3600)
    assert r.returncode == 0, f"lcai local image build debian12 failed:\n{r.stderr[-3000:]}"
    took = time.monotonic() - t
    log(f"image debian12: {took:.1f}s ({'cached' if 'is cached' in r.stderr else 'built'})")
    return took


def on_vm(ssh, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(ssh.argv(command), capture_output=True, text=True, timeout=timeout)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def qemu_pids_of(vm_dir: str) -> list[int]:
    """qemu processes whose command line names this VM directory (there must be none after destroy)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmd and vm_dir in cmd:
            out.append(int(pid))
    return out


def test_deploy_rebuild_destroy_through_the_cli(boot_env):
    from lcai_core.lifecycle import read_state
    from lcai_core.plugins import get_host, reset_host
    from lcai_core.registry import Registry
    from lcai_local import vm as V

    build_s = ensure_image()
    tpl = boot_env / "tpl"
    tpl.mkdir()
    (tpl / "template.yml").write_text(TEMPLATE.replace("PAGE", "v1"))
    svc = boot_env / "svc"
    r = lcai("init", str(tpl), "--directory", str(svc))
    assert r.returncode == 0, r.stderr
    r = lcai("plan", "-d", str(svc), "--cloud-config", str(boot_env / "user-data.yaml"))
    assert r.returncode == 0, r.stderr
    planned = (boot_env / "user-data.yaml").read_text()

    with vm_slot():
        t0 = time.monotonic()
        r = lcai("deploy", "-d", str(svc), "--target", "local", "--wait", "--yes", "--timeout", str(BOOT_TIMEOUT))
        boot_s = time.monotonic() - t0
        assert r.returncode == 0, f"deploy failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
        state = read_state(svc)
        dep = state["deployment_id"]
        reset_host()
        prov = get_host().providers["local"]
        record = Registry().get(dep)
        try:
            assert record["provider"] == "local" and record["address"] == "127.0.0.1"
            ps = record["provider_state"]
            log(f"deployed {dep} in {boot_s:.0f}s under {ps['accel']} ({ps.get('accel_reason')}): healthy")
            assert "healthy" in r.stderr + r.stdout

            ssh = prov.ssh(record)
            st = on_vm(ssh, "cloud-init status --wait --long; cat /run/cloud-init/result.json")
            assert "status: done" in st.stdout, st.stdout + st.stderr
            result = json.loads(st.stdout[st.stdout.index("{"):])
            assert result["v1"]["errors"] == [] and "NoCloud" in result["v1"]["datasource"]
            ud = on_vm(ssh, "cat /var/lib/cloud/instance/user-data.txt")
            assert ud.stdout == planned  # byte for byte what `lcai plan` wrote, what Linode would get
            ep = prov.app_endpoint(record)
            assert ep.host == "127.0.0.1" and ep.port == ps["app_port"]
            assert get(ep.url("/index.html")) == (200, "lcai-local v1\n")
            status = lcai("status", "-d", str(svc), "--json")
            assert status.returncode == 0 and json.loads(status.stdout)["live_status"] == "running"

            # redeploy = rebuild: same VM directory and ports, the new user data, cloud-init runs again
            (svc / "deploy.yml").write_text((svc / "deploy.yml").read_text().replace("lcai-local v1", "lcai-local v2"))
            t1 = time.monotonic()
            r = lcai("deploy", "-d", str(svc), "--target", "local", "--wait", "--yes", "--timeout", str(BOOT_TIMEOUT))
            rebuild_s = time.monotonic() - t1
            assert r.returncode == 0, f"redeploy failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
            assert read_state(svc)["deployment_id"] == dep
            record = Registry().get(dep)
            ps2 = record["provider_state"]
            assert (ps2["vm_dir"], ps2["ssh_port"], ps2["app_port"]) == (ps["vm_dir"], ps["ssh_port"], ps["app_port"])
            assert ps2["instance_id"] != ps["instance_id"]
            assert get(ep.url("/index.html")) == (200, "lcai-local v2\n")
            st = on_vm(prov.ssh(record), "cloud-init status --long; cloud-init query v1.instance_id")
            assert "status: done" in st.stdout and ps2["instance_id"] in st.stdout, st.stdout + st.stderr
            log(f"rebuilt {dep} in {rebuild_s:.0f}s")
        finally:
            r = lcai("destroy", "-d", str(svc), "--yes")
        assert r.returncode == 0, r.stderr
        assert not Path(ps["vm_dir"]).exists() and qemu_pids_of(ps["vm_dir"]) == []
        assert not V.answers(ps["ssh_port"]) and not V.answers(ps["app_port"])
        assert Registry().get(dep) is None
    print(f"\nlocal boot ({ps['accel']}): image {build_s:.1f}s, deploy --wait to healthy {boot_s:.0f}s, "
          f"rebuild to healthy {rebuild_s:.0f}s", file=sys.stderr)
