"""The timeline of a real boot with the local provider, for two templates on linode/debian12: VM started →
SSH up → cloud-init done → app active → healthy (answering on the forwarded port), with the accelerator used
and cloud-init's own slowest steps, so a regression on the boot critical path shows.

  python bench/boot.py                 # builds the image first if it is not cached (LCAI_LOCAL_CACHE)
  python bench/boot.py --parallel 2    # two copies at once, each VM in its own slot: the wall time of all

Templates: ``httpd`` (native runtime, no packages) and ``httpd+redis`` (native runtime, the redis capability
and one extra package: apt installs on the critical path). It takes a VM slot as the boot tests do
(tests/boot/vmlock.py). "healthy" is polled from this machine on the forwarded port every ``LCAI_BENCH_POLL`` s
(default 0.5); "cloud-init done" and "app active" are the guest's own systemd timestamps (cloud-final.service,
lcai-app.service), placed on this machine's timeline through one reading of the guest's uptime. Every wait is bounded by
``LCAI_BOOT_TIMEOUT`` (default 1200 s).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "boot"))
from vmlock import vm_slot  # noqa: E402

TEMPLATES = {
    "httpd": """\
name: bench-httpd
capabilities:
  runtime: native
deploy:
  linode:
    image: linode/debian12
    container:
      command: python3 -m http.server 8000 --directory /srv/www
      internal_port: 8000
      external_port: 8000
      health: {type: http, path: /index.html, port: 8000, interval_seconds: 2}
setup:
  files:
    - {path: /srv/www/index.html, content: "ok\\n"}
""",
    "httpd+redis": """\
name: bench-redis
capabilities:
  runtime: native
  features: [redis]
  packages: [jq]
deploy:
  linode:
    image: linode/debian12
    container:
      command: python3 -m http.server 8000 --directory /srv/www
      internal_port: 8000
      external_port: 8000
      health: {type: http, path: /index.html, port: 8000, interval_seconds: 2}
setup:
  files:
    - {path: /srv/www/index.html, content: "ok\\n"}
""",
}

POLL = float(os.environ.get("LCAI_BENCH_POLL", "0.5"))
TIMEOUT = float(os.environ.get("LCAI_BOOT_TIMEOUT", "1200"))
GUEST_TIMES = ("cloud-init status --wait >/dev/null 2>&1; cut -d' ' -f1 /proc/uptime; "
               "systemctl show -P ActiveEnterTimestampMonotonic cloud-final.service lcai-app.service; "
               "cloud-init status | sed -n 's/^status: //p'")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def one(name: str, text: str) -> dict:
    from lcai_core.project import new_deployment_id
    from lcai_core.providers import Spec
    from lcai_testing import render_text
    from lcai_local.provider import LocalProvider

    prov = LocalProvider()
    dep = new_deployment_id()
    rendered = render_text(text, {}, deployment_id=dep, secret_seed=secrets.token_bytes(32))
    spec = Spec(deployment_id=dep, app=name.replace("+", "-"), env="bench", label=f"lcai-bench-{dep}", tags=(),
                region="local", type="g6-standard-2", image="linode/debian12", user_data=rendered.text,
                user_data_b64=rendered.user_data_b64, app_ports=(8000,), external_port=8000)
    prov.preflight(spec)
    record = {"deployment_id": dep, "provider": "local", "external_port": 8000, "provider_state": {}}
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        for step in prov.create_steps(spec):
            record["provider_state"].update(step.run(record["provider_state"], lambda m: None))
        marks["VM started"] = time.monotonic() - t0
        record.update(prov.wait(record, lambda m: None, t0 + TIMEOUT))
        marks["SSH up"] = time.monotonic() - t0
        ssh = prov.ssh(record)
        url = prov.app_endpoint(record).url("/index.html")
        while not answers(url):  # from this machine, on the forwarded port: cheap, no SSH into the guest
            if time.monotonic() - t0 > TIMEOUT:
                raise SystemExit(f"{name}: not healthy after {TIMEOUT:.0f}s; reached {list(marks)}")
            time.sleep(POLL)
        marks["healthy"] = time.monotonic() - t0
        # the guest's own timestamps (systemd's monotonic clock since the guest booted), placed on this
        # machine's timeline through one reading of the guest's uptime
        before = time.monotonic()
        out = subprocess.run(ssh.argv(GUEST_TIMES), capture_output=True, text=True, timeout=TIMEOUT).stdout.split()
        after = time.monotonic()
        uptime, final_us, app_us = float(out[0]), int(out[1]), int(out[2])
        if out[3:4] != ["done"]:
            raise SystemExit(f"{name}: cloud-init status {out[3:4]} (expected done)")
        guest_boot = (before + after) / 2 - uptime - t0
        if final_us:
            marks["cloud-init done"] = guest_boot + final_us / 1e6
        if app_us:
            marks["app active"] = guest_boot + app_us / 1e6
        blame = subprocess.run(ssh.argv("cloud-init analyze blame 2>/dev/null | sed -n '2,5p'"),
                               capture_output=True, text=True, timeout=120).stdout
        apt_update = "grep -c \"Running command \\['apt-get'.*'update'\\]\" /var/log/cloud-init.log"
        updates = subprocess.run(ssh.argv(apt_update),
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        return {"marks": marks, "accel": record["provider_state"]["accel"],
                "why": record["provider_state"].get("accel_reason", ""), "blame": blame, "apt_updates": updates}
    finally:
        prov.destroy(record)


def parallel(n: int) -> None:
    """``--parallel N``: N copies of this bench at once, each in its own VM slot (``LCAI_VM_SLOTS=N``); prints
    the wall time of all their boots, to compare with one copy (``LCAI_LOCAL_CPUS`` sets each VM's vCPUs)."""
    env = {**os.environ, "LCAI_VM_SLOTS": str(n)}
    t = time.monotonic()
    procs = [subprocess.Popen([sys.executable, __file__], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.monotonic() - t
    for i, (p, out) in enumerate(zip(procs, outs)):
        print(f"--- copy {i + 1} (exit {p.returncode})\n{out}")
    boots = n * len(TEMPLATES)
    print(f"{boots} boots, {n} at a time, {os.environ.get('LCAI_LOCAL_CPUS', 'default')} vCPU(s) each: "
          f"{wall:.0f}s wall, {wall / boots:.0f}s per boot")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--parallel":
        return parallel(int(sys.argv[2]))
    t0 = time.monotonic()
    os.environ.setdefault("LCAI_LOCAL_DIR", tempfile.mkdtemp(prefix="lcai-bench-local-"))
    from lcai_local import images

    t = time.monotonic()
    images.build("debian12", lambda m: print(m, file=sys.stderr))
    print(f"image debian12 ready in {time.monotonic() - t:.1f}s (cache: {images.cache_dir()})")
    with vm_slot():
        for name, text in TEMPLATES.items():
            r = one(name, text)
            print(f"\n{name}: accelerator {r['accel']} ({r['why']})")
            order = ["VM started", "SSH up", "cloud-init done", "app active", "healthy"]
            prev = 0.0
            for k in sorted(r["marks"], key=lambda k: r["marks"][k]):
                v = r["marks"][k]
                print(f"  {k:<16} {v:7.1f}s  (+{v - prev:5.1f}s)")
                prev = v
            missing = [k for k in order if k not in r["marks"]]
            if missing:
                print(f"  not reached: {', '.join(missing)}")
            print(f"  apt-get update runs in cloud-init: {r['apt_updates']}")
            print("  cloud-init's slowest steps:")
            for line in r["blame"].splitlines():
                print("    " + line.strip())
    boots = len(TEMPLATES)
    print(f"\n{boots} boots one after the other, {os.environ.get('LCAI_LOCAL_CPUS', 'default')} vCPU(s) each: "
          f"{time.monotonic() - t0:.0f}s wall, {(time.monotonic() - t0) / boots:.0f}s per boot")


if __name__ == "__main__":
    main()
