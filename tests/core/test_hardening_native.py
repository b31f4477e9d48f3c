"""The native runtime's sandbox (issue 12, item 15): the app runs as the dedicated system user ``lcai-app`` with
systemd hardening, unless the template opts out with ``container.sandbox: false``.

Checked with systemd's own tools, offline: ``systemd-analyze security --offline=yes`` scores the app unit's
exposure (the unsandboxed root unit scores "UNSAFE"), ``systemd-sysusers --root`` creates the user from the
exact line the user data runs at boot. Running the app under the sandbox needs a booted systemd (the boot tests
of the local-VM provider)."""

import re
import subprocess

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, tools, units_in

TPL = """\
name: nat
capabilities:
  runtime: native
  features: [{features}]
deploy:
  linode:
    image: linode/debian12
    container:
      command: /usr/bin/python3 -m http.server {port}
      internal_port: {port}
{extra}"""


def app_unit(port=8000, extra="", features=""):
    r = render_text(TPL.format(port=port, extra=extra, features=features))
    return r, units_in(r.doc)["lcai-app.service"]


def exposure(tmp_path, unit: str) -> float:
    (analyze,) = tools.need("systemd-analyze", ci_fails=False)
    p = tmp_path / "lcai-app.service"
    p.write_text(unit)
    out = subprocess.run([analyze, "security", "--offline=yes", str(p)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    m = re.search(r"Overall exposure level for lcai-app.service: ([0-9.]+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    return float(m.group(1))


def test_app_runs_as_its_own_user_in_a_sandbox(tmp_path):
    r, unit = app_unit()
    for line in ("User=lcai-app", "StateDirectory=lcai-app", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=\n"):
        assert line in unit, line
    assert exposure(tmp_path, unit) <= 2.5  # systemd's verdict: "OK"
    assert any("lcai-app" in line and "sandbox" in line for line in r.boot_plan)


def test_opting_out_runs_as_root_without_a_sandbox(tmp_path):
    r, unit = app_unit(extra="      sandbox: false\n")
    assert "User=" not in unit and "ProtectSystem" not in unit
    assert "bootcmd" not in r.doc
    assert exposure(tmp_path, unit) >= 9  # what every native app got before: "UNSAFE"
    assert any("as root without a sandbox" in line for line in r.boot_plan)


def test_user_is_created_at_boot_by_systemd_sysusers(tmp_path):
    r, _ = app_unit()
    cmd = r.doc["bootcmd"][0]
    assert cmd[:2] == ["systemd-sysusers", "--inline"]
    (sysusers,) = tools.need("systemd-sysusers", ci_fails=False)
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    for _ in range(2):  # bootcmd runs on every boot: idempotent
        subprocess.run([sysusers, f"--root={tmp_path}", *cmd[1:]], check=True, capture_output=True)
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    assert len(passwd) == 1 and re.match(r"^lcai-app:x:\d+:\d+:lcai app:/var/lib/lcai-app:/usr/sbin/nologin$",
                                         passwd[0])


def test_low_port_gets_only_the_bind_capability():
    _, unit = app_unit(port=80)
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit and "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in unit


def test_writable_paths():
    _, unit = app_unit(extra="      writable_paths: [/srv/data, /var/cache/app]\n")
    assert "ReadWritePaths=/srv/data /var/cache/app" in unit


@pytest.mark.parametrize("extra,message", [
    ("      writable_paths: [relative]\n", "must be an absolute path"),
    ("      writable_paths: [/var/lib/lcai]\n", "reserved"),
])
def test_bad_writable_paths_are_located_errors(extra, message):
    where = r"template.yml:\d+: deploy.linode.container.writable_paths\[0\]: .*"
    with pytest.raises(ValidationError, match=where + message):
        app_unit(extra=extra)


def test_sandbox_fields_are_native_only():
    docker = TPL.replace("runtime: native", "runtime: docker").replace(
        "      command: /usr/bin/python3 -m http.server {port}\n", "      image: nginx:1.27\n")
    with pytest.raises(ValidationError, match="container.sandbox: applies to the native runtime only"):
        render_text(docker.format(port=80, features="", extra="      sandbox: false\n"))


def test_gpu_app_keeps_the_devices():
    from lcai_testing import require_plugins

    require_plugins("gpu-nvidia")
    r = render_text(TPL.replace("linode/debian12", "linode/ubuntu24.04").format(
        port=8000, extra="", features="gpu-nvidia"))
    unit = units_in(r.doc)["lcai-app.service"]
    assert "User=lcai-app" in unit and "PrivateDevices" not in unit


def test_native_units_pass_systemd_analyze_verify():
    from lcai_testing import require_validators, validate_many

    require_validators()
    texts = [render_text(TPL.format(port=p, extra=e, features="")).text
             for p, e in ((8000, ""), (80, "      writable_paths: [/srv/data]\n"), (8000, "      sandbox: false\n"))]
    assert validate_many(texts) == [[], [], []]
