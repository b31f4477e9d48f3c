"""Booting rendered user data in a local VM for the boot tests, through the provider contract only
(``lcai_core.providers``: preflight → create_steps → wait → ssh/app_endpoint → destroy) of the ``local``
provider (plugins/lcai-local), with the test-only ``test-registry`` capability in the plugin host.

Each boot holds one of this machine's VM slots (``$LCAI_VM_SLOTS``, default 1: tests/boot/vmlock.py), which
other VM-booting code here takes too. Checks run over SSH; anything secret a
check needs goes to the VM on stdin, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from vmlock import vm_slot

BOOT_TIMEOUT = float(os.environ.get("LCAI_BOOT_TIMEOUT", "1500"))
POLL = float(os.environ.get("LCAI_BOOT_POLL_SECONDS", "3"))
IMAGE = "linode/debian12"
REPO = Path(__file__).resolve().parents[2]


def log(msg: str) -> None:
    print(f"[boot {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def vm_lock():
    """One of this machine's VM slots (tests/boot/vmlock.py)."""
    return vm_slot()


def need(condition: bool, msg: str) -> None:
    """Skip locally, fail under CI=true."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def local_provider(host):
    prov = host.providers.get("local")
    need(prov is not None, "the local provider (plugins/lcai-local) is not installed")
    return prov


def ensure_image() -> None:
    """``lcai local image build debian12`` (cached after the first run)."""
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "lcai_core", "local", "image", "build", "debian12"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"lcai local image build debian12 failed:\n{r.stderr[-2000:]}"
    log(f"image debian12 ready ({time.monotonic() - t:.0f}s)")


@dataclass
class Booted:
    provider: object
    record: dict
    rendered: object
    dotenv: dict
    timeline: dict = field(default_factory=dict)
    spec: object = None
    host: object = None
    seed: bytes = b""

    def redeploy(self, template_text: str) -> float:
        """A redeploy as ``lcai deploy`` makes it: ``template_text`` rendered for the same deployment (same
        secrets), then the provider's rebuild (a fresh root disk; the volumes kept) and its wait; returns the
        seconds until the machine ran again."""
        import attrs

        from lcai_testing import render_text

        t = time.monotonic()
        dep = self.record["deployment_id"]
        self.rendered = render_text(template_text, self.dotenv, host=self.host, deployment_id=dep,
                                    secret_seed=self.seed)
        self.spec = attrs.evolve(self.spec, user_data=self.rendered.text, user_data_b64=self.rendered.user_data_b64,
                                 volumes=volumes_of(template_text))
        self.record["provider_state"].update(self.provider.rebuild(self.record, self.spec, log) or {})
        self.record.update(self.provider.wait(self.record, lambda phase: log(f"redeploy: {phase}"),
                                              time.monotonic() + BOOT_TIMEOUT) or {})
        took = time.monotonic() - t
        log(f"redeployed (rebuilt): machine running after {took:.0f}s")
        return took

    @property
    def ssh_endpoint(self):
        return self.provider.ssh(self.record)

    def sh(self, script: str, stdin: str = "", timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``script`` with ``sh -c`` on the VM as root; ``stdin`` is its standard input."""
        argv = self.ssh_endpoint.argv("sh -c " + shlex.quote(script))
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"on the VM: {script[:200]!r} exited {r.returncode}:\n{r.stdout[-1500:]}\n"
                                 f"{r.stderr[-1500:]}")
        return r

    def python(self, code: str, stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
        """Run python3 code on the VM; ``stdin`` is its standard input (for secrets)."""
        import base64

        b64 = base64.b64encode(code.encode()).decode()
        return self.sh(f"python3 -c \"$(echo {b64} | base64 -d)\"", stdin=stdin, timeout=timeout, check=False)

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id", timeout=30).stdout.strip()

    def reboot(self) -> float:
        """``systemctl reboot`` on the VM (QEMU restarts the guest in the same process, with the same forwarded
        ports), then wait until SSH answers with a new boot id; returns the seconds it took."""
        before, t = self.boot_id(), time.monotonic()
        self.sh("systemctl reboot", check=False, timeout=60)

        def back():
            r = self.sh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
            now = r.stdout.strip()
            return r.returncode == 0 and bool(now) and now != before, now or r.stderr.strip()[-200:]
        wait_for("the VM to come back after a reboot (SSH with a new boot id)", back, BOOT_TIMEOUT)
        took = time.monotonic() - t
        log(f"rebooted: SSH answers again after {took:.0f}s")
        return took

    def app_url(self, path: str) -> Optional[str]:
        ep = self.provider.app_endpoint(self.record)
        return ep.url(path) if ep else None


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def volumes_of(template_text: str) -> tuple:
    """The template's volumes as a provider gets them, labelled as the rendering labels them (the template's
    name is the app there)."""
    import yaml

    from lcai_core.conventions import volume_label
    from lcai_core.providers import VolumeSpec

    doc = yaml.safe_load(template_text)
    return tuple(VolumeSpec(v["name"], volume_label(doc["name"], "default", v["name"]), v.get("size_gb", 20),
                            v["mount"]) for v in doc["deploy"]["linode"].get("volumes") or [])


@contextlib.contextmanager
def boot(host, template_text: str, dotenv: dict, app: str):
    """Render ``template_text`` (with ``dotenv``) exactly as plan/deploy do, boot it with the local provider,
    wait until the machine runs, yield a ``Booted``; destroy the VM afterwards, whatever happened."""
    from lcai_core.project import new_deployment_id
    from lcai_core.providers import Spec
    from lcai_testing import render_text

    prov = local_provider(host)
    dep = new_deployment_id()
    seed = secrets.token_bytes(32)
    rendered = render_text(template_text, dotenv, host=host, deployment_id=dep, secret_seed=seed)
    import yaml

    c = yaml.safe_load(template_text)["deploy"]["linode"]["container"]
    volumes = volumes_of(template_text)
    ext = c.get("external_port")
    spec = Spec(deployment_id=dep, app=app, env="default", label=f"lcai-{app}-default-{dep}",
                tags=("lcai", f"lcai-id:{dep}", f"lcai-app:{app}", "lcai-env:default"), region="local",
                type=os.environ.get("LCAI_BOOT_TYPE", "g6-standard-2"), image=IMAGE, user_data=rendered.text,
                user_data_b64=rendered.user_data_b64, app_ports=(ext,) if ext else (), external_port=ext,
                features=tuple(f if isinstance(f, str) else f["name"]
                               for f in yaml.safe_load(template_text)["capabilities"].get("features") or []),
                volumes=volumes)
    with vm_lock():
        if volumes:  # a volume an interrupted earlier run left holds its data: each run starts empty
            prov.delete_volumes({"deployment_id": dep, "volumes": [{"name": v.name, "label": v.label}
                                                                   for v in volumes]}, log)
        t0 = time.monotonic()
        record = {"deployment_id": dep, "app": app, "env": "default", "provider": prov.name, "label": spec.label,
                  "status": "creating", "address": None, "external_port": ext, "internal_port": c.get("internal_port"),
                  "image": IMAGE, "provider_state": {}}
        pre = prov.preflight(spec)
        log(f"{app} ({dep}): {pre.summary}")
        done = []
        try:
            for step in prov.create_steps(spec):
                fields = step.run(record["provider_state"], log) or {}
                done.append(step)
                record["provider_state"].update(fields)
                for k in ("address", "status"):
                    if k in fields:
                        record[k] = fields[k]
            deadline = time.monotonic() + BOOT_TIMEOUT
            record.update(prov.wait(record, lambda phase: log(f"{app}: {phase}"), deadline) or {})
            booted = Booted(prov, record, rendered, dotenv, {"machine_running": time.monotonic() - t0}, spec, host,
                            seed)
            log(f"{app}: machine running after {booted.timeline['machine_running']:.0f}s")
            yield booted
        finally:
            try:
                prov.destroy(record, log)
                if volumes:  # destroy keeps them; a test run leaves none behind for the next
                    prov.delete_volumes(record, log)
            except Exception as e:  # report, and undo step by step as core would
                log(f"destroy failed: {type(e).__name__}: {e}; undoing steps")
                for step in reversed(done):
                    step.undo(record["provider_state"], log)


def wait_for(what: str, probe, timeout: float, interval: float = POLL):
    """Call ``probe()`` → (ok, detail) until ok; returns the detail. AssertionError naming ``what`` and the
    last detail on timeout."""
    deadline = time.monotonic() + timeout
    detail = None
    while True:
        try:
            ok, detail = probe()
            if ok:
                return detail
        except (OSError, subprocess.TimeoutExpired) as e:
            detail = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {detail!r}")
        time.sleep(interval)


# ---------------------------------------------------------------- checks run on the VM

CLOUD_INIT_RESULT = r"""
import json, subprocess
out = {"status": subprocess.run(["cloud-init", "status", "--long"], capture_output=True, text=True).stdout}
try:
    out["result"] = json.load(open("/run/cloud-init/result.json"))
except OSError as e:
    out["result"] = None
try:
    out["done_at"] = __import__("os").stat("/var/lib/cloud/instance/boot-finished").st_mtime
except OSError:
    out["done_at"] = None
print(json.dumps(out))
"""

#: values (one per line on stdin) that must appear nowhere: process arguments, unit files, the journal,
#: world-readable files. Prints JSON {where: [value index, ...]}: the values never travel back.
LEAK_SCAN = r"""
import json, os, stat, subprocess, sys
values = [v for v in sys.stdin.read().split("\n") if v]
found = {}
def hit(where, text):
    for i, v in enumerate(values):
        if v in text:
            found.setdefault(where, set()).add(i)
me = str(os.getpid())
for pid in os.listdir("/proc"):
    if pid.isdigit() and pid != me:
        try:
            hit("ps /proc/%s/cmdline" % pid, open("/proc/%s/cmdline" % pid, "rb").read().decode("utf-8", "replace"))
        except OSError:
            pass
for root in ("/etc/systemd", "/run/systemd/system", "/run/systemd/transient", "/lib/systemd/system",
             "/usr/lib/systemd/system"):
    for d, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            try:
                hit("unit file " + p, open(p, "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
j = subprocess.run(["journalctl", "-b", "--no-pager", "-o", "cat"], capture_output=True).stdout
hit("journalctl", j.decode("utf-8", "replace"))
def reachable(p):
    # every directory above p lets others in
    d = os.path.dirname(p)
    while d not in ("/", ""):
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(d)
    return True
for root in ("/etc", "/var", "/run", "/tmp", "/root", "/home", "/opt", "/srv", "/usr/local"):
    for d, dirs, files in os.walk(root):
        if d.startswith(("/var/lib/docker/overlay2", "/var/cache/apt", "/var/lib/apt/lists", "/run/user")):
            dirs[:] = []
            continue
        for f in files:
            p = os.path.join(d, f)
            try:
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH and st.st_size < 8 << 20 and reachable(p):
                    hit("world-readable " + p, open(p, "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
print(json.dumps({k: sorted(v) for k, v in found.items()}))
"""

#: a stand-in metadata service: 169.254.169.254:80 and 169.254.1.2:80 served from a network namespace
#: routed through a veth pair, so the VM reaches it as on Linode (not via a local address: a container's
#: packets to a host-local address never pass the FORWARD chain where Docker's DOCKER-USER lives).
METADATA_SERVER = r"""
set -eu
ip netns add lcaimeta
ip link add lcaimeta0 type veth peer name lcaimeta1
ip link set lcaimeta1 netns lcaimeta
ip addr add 169.254.1.1/30 dev lcaimeta0
ip link set lcaimeta0 up
ip netns exec lcaimeta ip addr add 169.254.1.2/30 dev lcaimeta1
ip netns exec lcaimeta ip addr add 169.254.169.254/32 dev lcaimeta1
ip netns exec lcaimeta ip link set lcaimeta1 up
ip netns exec lcaimeta ip link set lo up
ip netns exec lcaimeta ip route add default via 169.254.1.1
ip route add 169.254.169.254/32 via 169.254.1.2
mkdir -p /srv/lcaimeta && echo metadata-ok > /srv/lcaimeta/index.html
systemd-run --unit lcai-test-metadata --no-block \
  ip netns exec lcaimeta python3 -m http.server 80 --directory /srv/lcaimeta
for _ in $(seq 50); do curl -fsS --max-time 2 http://169.254.1.2/ >/dev/null 2>&1 && exit 0; sleep 0.2; done
echo "the stand-in metadata server did not start" >&2; exit 1
"""
