"""Boot tests of the hardening (issue 12, items 1, 2, 6, 13, 15): lcai's exact user data run by real cloud-init
and systemd in a local Debian 12 VM (the ``local`` provider, through the helpers of tests/boot), checked from
outside over SSH and the forwarded app port. The native runtime needs no container image, so these boots
install only Debian packages.

Run: ``pytest -m boot tests/integration`` (one VM at a time; minutes each under TCG)."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.boot

TIMEOUT = float(os.environ.get("LCAI_BOOT_HEALTH_TIMEOUT", "900"))
SLOW = 120  # seconds the app answers 503 on /health after it starts: cloud-init must be done long before

APP = r'''
import http.server, json, os, pwd, socket, time
START = time.monotonic()
def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return type(e).__name__ + ": " + (e.strerror or "")
def metadata():
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("169.254.169.254", 80))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error: %s" % e
    finally:
        s.close()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            # slow only on the first boot (the state directory keeps the mark across reboots)
            fast = os.path.exists("/var/lib/lcai-app/was-healthy")
            code, body = (200 if fast or time.monotonic() - START > SLOW else 503), b"{}"
            if code == 200 and not fast:
                write("/var/lib/lcai-app/was-healthy")
        elif self.path == "/sandbox":
            code = 200
            body = json.dumps({"user": pwd.getpwuid(os.getuid()).pw_name, "cwd": os.getcwd(),
                               "etc": write("/etc/lcai-sandbox-probe"), "state": write("/var/lib/lcai-app/probe"),
                               "metadata": metadata()}).encode()
        else:
            code, body = 404, b""
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
'''.replace("SLOW", str(SLOW))

NATIVE = """\
name: native-hardening
capabilities:
  runtime: native
deploy:
  linode:
    image: linode/debian12
    container:
      command: /usr/bin/python3 /opt/app/app.py
      internal_port: 8000
      external_port: 8000
      health: {{type: http, path: /health, initial_delay_seconds: 0, interval_seconds: 3, max_retries: 300}}
      post_start_script: |
        #!/bin/sh
        echo ran >> /var/lib/lcai-post-start-runs
setup:
  script: |
{setup}  files:
    - path: /opt/app/app.py
      permissions: "0644"
      content: |
{app}"""


def template(setup: str) -> str:
    indent = lambda text, n: "".join(" " * n + line + "\n" for line in text.strip("\n").splitlines())  # noqa: E731
    return NATIVE.format(setup=indent(setup, 4), app=indent(APP, 8))


@pytest.fixture(scope="module", autouse=True)
def image_ready():
    import vmboot
    from lcai_core.plugins import Host

    vmboot.need(Host().providers.get("local") is not None, "the local provider (plugins/lcai-local) is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LCAI_LOCAL_CACHE", os.environ.get("LCAI_LOCAL_CACHE") or "/var/cache/lcai")
        vmboot.ensure_image()
        yield


def cloud_init_finished(vm) -> dict:
    import vmboot

    def probe():
        r = vm.python(vmboot.CLOUD_INIT_RESULT)
        if r.returncode != 0:
            return False, r.stderr[-300:]
        out = json.loads(r.stdout)
        # result.json is written a moment before `cloud-init status` stops saying running (a boot showed it)
        return out["result"] is not None and "status: running" not in out["status"], out
    return vmboot.wait_for("cloud-init to finish", probe, TIMEOUT)


def health(vm) -> dict:
    r = vm.sh("cat /var/lib/lcai/health.json", check=False)
    return json.loads(r.stdout) if r.stdout.strip() else {}


def test_native_app_sandboxed_guarded_and_not_holding_cloud_init():
    from lcai_core.plugins import get_host

    import vmboot

    with vmboot.boot(get_host(), template("echo ran >> /var/lib/lcai-setup-runs"), {}, "native-hardening") as vm:
        # 1. cloud-init is done (no errors) while the app's health check is still failing: nothing waited for it
        out = cloud_init_finished(vm)
        assert "status: done" in out["status"] and out["result"]["v1"]["errors"] == [], out
        h = health(vm)
        assert h.get("state") == "waiting", f"cloud-init finished only once health was {h}"
        r = vm.sh("systemctl show -p ActiveState --value lcai-health.service")
        assert r.stdout.strip() == "activating"
        vmboot.log(f"cloud-init done while health was {h}")

        # the app becomes healthy, from outside and on the instance
        def healthy():
            status, _ = vmboot.http_get(vm.app_url("/health"))
            return status == 200 and health(vm).get("state") == "healthy", (status, health(vm))
        vmboot.wait_for("the app to become healthy", healthy, TIMEOUT)
        assert vm.sh("cat /var/lib/lcai-setup-runs").stdout.split() == ["ran"]
        post_start_ran_once(vm)

        # 15. the app runs as lcai-app in the sandbox: read-only system, its own state directory writable
        status, body = vmboot.http_get(vm.app_url("/sandbox"))
        sandbox = json.loads(body)
        vmboot.log(f"sandbox: {sandbox}")
        assert sandbox["user"] == "lcai-app" and sandbox["cwd"] == "/var/lib/lcai-app"
        assert sandbox["etc"].startswith("OSError") and "Read-only" in sandbox["etc"]
        assert sandbox["state"] == "written"

        # 13. the metadata service: root on the host reaches it, the app and any other user do not
        vm.sh(vmboot.METADATA_SERVER, timeout=120)
        assert vm.sh("curl -sS --max-time 5 http://169.254.169.254/").stdout.strip() == "metadata-ok"
        other = vm.sh("runuser -u nobody -- curl -sS --max-time 5 http://169.254.169.254/", check=False)
        assert other.returncode == 7 and "metadata-ok" not in other.stdout, other  # 7: connection refused
        status, body = vmboot.http_get(vm.app_url("/sandbox"))
        assert json.loads(body)["metadata"] == "refused"
        v6 = vm.sh("ip6tables -t raw -S PREROUTING; ip6tables -S OUTPUT").stdout
        assert "fd00:a9fe:a9fe::1" in v6

        # reboot: the app comes back healthy; the setup and post-start scripts do not run again
        boot = vm.boot_id()
        vm.reboot()
        vmboot.wait_for("the app to be healthy again after the reboot", healthy, TIMEOUT)
        assert vm.boot_id() != boot
        assert vm.sh("cat /var/lib/lcai-setup-runs").stdout.split() == ["ran"], "setup.script ran again"
        post_start_ran_once(vm, after_reboot=True)

        # 2. a crash loop ends the health wait as unhealthy, with the reason, on the real systemd
        vm.sh("mkdir -p /run/systemd/system/lcai-app.service.d && printf '[Service]\\nExecStart=\\n"
              "ExecStart=/bin/sh -c \"sleep 1; exit 3\"\\n' > /run/systemd/system/lcai-app.service.d/crash.conf && "
              "systemctl daemon-reload && systemctl restart lcai-app.service && "
              "systemctl restart --no-block lcai-health.service")
        t = time.monotonic()

        def unhealthy():
            h = health(vm)
            return h.get("state") == "unhealthy", h
        h = vmboot.wait_for("the crash loop to be reported", unhealthy, 300)
        vmboot.log(f"crash loop reported after {time.monotonic() - t:.0f}s: {h}")
        assert h["detail"].startswith("crash loop: the app restarted") and "last exit status 3" in h["detail"], h
        assert vm.sh("systemctl is-failed lcai-health.service", check=False).stdout.strip() == "failed"


def post_start_ran_once(vm, after_reboot: bool = False) -> None:
    """The post-start unit finished (first boot) or was skipped by its once-per-instance marker (a reboot:
    systemd evaluated ConditionPathExists=!… and it failed); either way the script ran exactly once."""
    import vmboot

    def finished():
        if after_reboot:
            r = vm.sh("systemctl show -p ConditionResult --value lcai-post-start.service", check=False)
            return r.stdout.strip() == "no", f"ConditionResult={r.stdout.strip()}"
        r = vm.sh("systemctl is-active lcai-post-start.service", check=False)
        return r.stdout.strip() in ("active", "failed"), r.stdout.strip()
    vmboot.wait_for("the post-start unit to finish or be skipped", finished, 300)
    runs = vm.sh("cat /var/lib/lcai-post-start-runs", check=False).stdout.split()
    assert runs == ["ran"], f"post_start_script ran {len(runs)} times"


def test_failing_setup_script_fails_cloud_init_and_is_named():
    from lcai_core.plugins import get_host

    import vmboot

    with vmboot.boot(get_host(), template("echo before\nfalse\necho after > /var/lib/never"), {},
                     "setup-fails") as vm:
        out = cloud_init_finished(vm)
        assert "status: error" in out["status"], out["status"]
        assert out["result"]["v1"]["errors"], out["result"]  # the final stage's scripts-user module failed
        assert vm.sh("cat /var/lib/lcai/failed-step").stdout.strip() == \
            "systemctl start lcai-setup.service (exit 1)"
        log = vm.sh("cat /var/log/cloud-init-output.log").stdout
        assert "lcai: step failed (exit 1): systemctl start lcai-setup.service" in log
        journal = vm.sh("journalctl -b -u lcai-setup.service --no-pager -o cat").stdout
        assert "lcai: step setup.script failed (exit 1) at line 2: false" in journal, journal[-2000:]
        assert vm.sh("test -e /var/lib/lcai/setup.done || test -e /var/lib/never", check=False).returncode == 1
        # the app was not started after the failed step
        assert vm.sh("systemctl is-active lcai-app.service", check=False).stdout.strip() != "active"
