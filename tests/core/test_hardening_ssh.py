"""SSH with keys (issue 12, item 14): when the instance gets SSH keys (``DeployContext.ssh_keys``), password
logins are off (cloud-init's ``ssh_pwauth: false``) and root logs in by key only, through a drop-in that wins
over the image's own settings; without keys nothing changes (the root password is then the only way in).

The drop-in is checked with OpenSSH's own ``sshd -T`` (the effective configuration) on Debian's default
sshd_config followed by what a Linode image adds (``PermitRootLogin yes``, ``PasswordAuthentication yes``)."""

import os
import subprocess
from pathlib import Path

import attrs

from lcai_core.plugins import get_host
from lcai_core.project import context_for, render
from lcai_core.template import load_template_text
from lcai_testing import tools, validate_many, written

TPL = """\
name: keys
deploy:
  linode:
    image: {image}
    container:
      image: nginx:1.27
      internal_port: 80
"""


def render_with(ssh_keys: bool, image="linode/ubuntu24.04"):
    host = get_host()
    tpl = load_template_text(TPL.format(image=image), "template.yml", host.catalog)
    resolved = host.catalog.resolve(tpl)
    ctx = attrs.evolve(context_for(tpl, resolved, "t3stdepl", b"seed"), ssh_keys=ssh_keys)
    return render(tpl, resolved, ctx, {})[1]


def test_keys_turn_password_logins_off():
    r = render_with(True)
    assert r.doc["ssh_pwauth"] is False
    dropin = written(r)["/etc/ssh/sshd_config.d/00-lcai.conf"]
    assert "PermitRootLogin prohibit-password" in dropin["content"] and dropin["permissions"] == "0644"
    assert r.doc["runcmd"][-1] == ["lcai_step", "systemctl", "try-reload-or-restart", "ssh.service"]


def test_without_keys_nothing_changes():
    r = render_with(False)
    assert "ssh_pwauth" not in r.doc and "/etc/ssh/sshd_config.d/00-lcai.conf" not in written(r)
    assert "ssh.service" not in str(r.doc["runcmd"])


def test_default_context_has_no_keys():
    from lcai_core.capabilities import DeployContext

    assert DeployContext("d", "a").ssh_keys is False


def test_keys_rendering_passes_the_validators():
    from lcai_testing import require_validators

    require_validators()
    assert validate_many([render_with(True, img).text for img in
                          ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")]) == [[], [], []]


def sshd():
    """OpenSSH's sshd (``$LCAI_TEST_SSHD`` or the installed one) and its default sshd_config; skips without them
    or without root (fails under CI=true)."""
    if os.geteuid() != 0:
        tools.skip_or_fail("needs root to run sshd -T")
    exe, _ = tools.need("sshd", "ssh-keygen", why="needs OpenSSH's", at={"sshd": os.environ.get("LCAI_TEST_SSHD")})
    default = Path(exe).resolve().parents[1] / "share" / "openssh" / "sshd_config"
    if not default.is_file():
        tools.skip_or_fail(f"needs OpenSSH's default sshd_config at {default} (apt-get install openssh-server)")
    return exe, default


def effective(exe, default, tmp_path, dropin):
    d = tmp_path / "sshd_config.d"
    d.mkdir()
    if dropin is not None:
        (d / "00-lcai.conf").write_text(dropin)
    cfg = tmp_path / "sshd_config"
    text = default.read_text()
    assert "Include /etc/ssh/sshd_config.d/*.conf" in text
    # the image's own settings come after the Include, as on Linode's images
    image_settings = "PermitRootLogin yes\nPasswordAuthentication yes\n"
    cfg.write_text(text.replace("/etc/ssh/sshd_config.d/", f"{d}/") + image_settings)
    key = tmp_path / "hostkey"
    subprocess.run([tools.which("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    Path("/run/sshd").mkdir(exist_ok=True)
    p = subprocess.run([exe, "-T", "-f", str(cfg), "-h", str(key)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)


def test_sshd_applies_the_drop_in_over_the_image_settings(tmp_path):
    exe, default = sshd()
    dropin = written(render_with(True))["/etc/ssh/sshd_config.d/00-lcai.conf"]["content"]
    for sub in ("without", "with"):
        (tmp_path / sub).mkdir()
    without = effective(exe, default, tmp_path / "without", None)
    assert without["permitrootlogin"] == "yes" and without["passwordauthentication"] == "yes"
    got = effective(exe, default, tmp_path / "with", dropin)
    assert got["permitrootlogin"] == "without-password"  # sshd's name for prohibit-password
    assert got["passwordauthentication"] == "no" and got["kbdinteractiveauthentication"] == "no"
