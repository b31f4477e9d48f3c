"""Failures are not swallowed (issue 12, items 5 and 6), shown by running the rendered scripts for real:

- runcmd, exactly as cloud-init turns it into one /bin/sh script: a failing step stops it with a non-zero
  exit (so cloud-init's final stage fails and ``cloud-init status`` says error), names the step on stderr
  (cloud-init-output.log, which ``lcai logs`` shows) and in /var/lib/lcai/failed-step;
- setup.script and post_start_script: a failing middle command fails the script (so systemd never runs the
  ExecStartPost that writes the done marker) and is named;
- the image pull: each attempt bounded, retried with backoff, reported in image-pull.json, skipped when the
  image is already there.
"""

import json
import os
import re
import subprocess

import pytest

from lcai_testing import render_text, shellify, written

TPL = """\
name: steps
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
{post}setup:
  script: |
{setup}"""


def render(setup="    echo one\n", post=""):
    return render_text(TPL.format(setup=setup, post=post))


def fake_bin(tmp_path, name, body):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return d


def run_runcmd(tmp_path, r, failing: str):
    """runcmd as cloud-init runs it, with systemctl/mkdir faked: the command ``failing`` exits 3."""
    log = tmp_path / "calls"
    bindir = fake_bin(tmp_path, "systemctl",
                      f'echo "systemctl $*" >> {log}\ncase "$*" in *"{failing}"*) exit 3 ;; esac\n')
    script = shellify(r.doc["runcmd"]).replace("/var/lib/lcai", str(tmp_path / "state"))
    path = tmp_path / "runcmd"
    path.write_text(script)
    path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    p = subprocess.run(["/bin/sh", str(path)], capture_output=True, text=True, env=env, timeout=30)
    return p, (log.read_text().splitlines() if log.exists() else [])


def test_runcmd_stops_at_a_failing_step_and_names_it(tmp_path):
    r = render()
    p, calls = run_runcmd(tmp_path, r, "daemon-reload")
    assert p.returncode == 3
    assert "lcai: step failed (exit 3): systemctl daemon-reload" in p.stderr
    assert (tmp_path / "state" / "failed-step").read_text() == "systemctl daemon-reload (exit 3)\n"
    assert calls == ["systemctl daemon-reload"]  # nothing after it ran


def test_runcmd_succeeds_when_every_step_does(tmp_path):
    p, calls = run_runcmd(tmp_path, render(), "no-such-command")
    assert p.returncode == 0, p.stderr
    assert calls[-1].startswith("systemctl start --no-block") and "lcai: step: systemctl enable" in p.stdout
    assert not (tmp_path / "state" / "failed-step").exists()


def test_a_failing_setup_script_fails_cloud_init_on_boot_1(tmp_path):
    """Without a reboot, cloud-init waits for the setup unit (bounded by its timeout): its failure fails runcmd,
    named, and the app is not started; the unit is after multi-user.target, so only cloud-init waits."""
    r = render()
    p, calls = run_runcmd(tmp_path, r, "start lcai-setup.service")
    assert p.returncode == 3 and "lcai: step failed (exit 3): systemctl start lcai-setup.service" in p.stderr
    assert calls[-1] == "systemctl start lcai-setup.service"
    assert any("cloud-init waits for it" in line for line in r.boot_plan)


def test_with_a_reboot_due_setup_runs_after_it():
    from lcai_testing import require_plugins

    require_plugins("gpu-nvidia")
    r = render_text(TPL.format(setup="    echo one\n", post="").replace(
        "  runtime: docker\n", "  runtime: docker\n  features: [gpu-nvidia]\n"))
    assert not any(c[1:] == ["systemctl", "start", "lcai-setup.service"] for c in r.doc["runcmd"][1:])
    assert "power_state" in r.doc


def test_every_runcmd_step_is_checked():
    r = render()
    steps = r.doc["runcmd"][1:]
    assert r.doc["runcmd"][0].startswith("lcai_step() {")
    assert all(isinstance(c, list) and c[0] == "lcai_step" for c in steps)


def run_script(tmp_path, text):
    p = tmp_path / "script"
    p.write_text(text)
    p.chmod(0o700)
    return subprocess.run([str(p)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shebang", ["", "#!/bin/bash\n", "#!/usr/bin/env bash\n", "#!/bin/sh\n"])
def test_setup_script_stops_at_a_failing_middle_command(tmp_path, shebang):
    marker = tmp_path / "after"
    r = render(setup="".join(f"    {line}\n" for line in (shebang + f"echo one\nfalse\ntouch {marker}").splitlines()))
    p = run_script(tmp_path, written(r)["/usr/local/lib/lcai/setup"]["content"])
    assert p.returncode == 1 and not marker.exists()
    assert "lcai: step setup.script failed (exit 1)" in p.stderr
    if "bash" in shebang or not shebang:  # bash names the line, counted in the template's own script
        assert f"at line {3 if shebang else 2}: false" in p.stderr


def test_a_failing_pipeline_fails_the_script(tmp_path):
    marker = tmp_path / "after"
    r = render(setup=f"    false | cat\n    touch {marker}\n")
    p = run_script(tmp_path, written(r)["/usr/local/lib/lcai/setup"]["content"])
    assert p.returncode == 1 and not marker.exists()


def test_post_start_script_is_strict_and_marker_only_after_success(tmp_path):
    r = render(post="      post_start_script: |\n        false\n        echo never\n")
    p = run_script(tmp_path, written(r)["/usr/local/lib/lcai/post-start"]["content"])
    assert p.returncode == 1 and "never" not in p.stdout and "post_start_script failed" in p.stderr
    unit = written(r)["/etc/systemd/system/lcai-post-start.service"]["content"]
    # systemd runs ExecStartPost= only after ExecStart= succeeded: the marker means "it worked"
    assert re.search(r"ExecStart=/usr/local/lib/lcai/post-start\nExecStartPost=/usr/bin/touch "
                     r"/var/lib/lcai/post-start.done\n", unit)


def test_a_python_setup_script_is_left_as_written():
    text = "#!/usr/bin/env python3\nprint('hi')\n"
    r = render(setup="".join(f"    {line}\n" for line in text.splitlines()))
    assert written(r)["/usr/local/lib/lcai/setup"]["content"] == text


# ---------------------------------------------------------------- the image pull

def pull_script(tmp_path, docker_body):
    r = render()
    text = written(r)["/usr/local/lib/lcai/image-pull"]["content"].replace("/var/lib/lcai", str(tmp_path / "state"))
    bindir = fake_bin(tmp_path, "docker", docker_body)
    path = tmp_path / "image-pull"
    path.write_text(text)
    path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LCAI_PULL_RETRY_DELAY": "0"}
    return subprocess.run([str(path)], capture_output=True, text=True, timeout=60, env=env)


def pulled(tmp_path):
    return json.loads((tmp_path / "state" / "image-pull.json").read_text())


def test_pull_is_retried_until_it_succeeds(tmp_path):
    count = tmp_path / "count"
    p = pull_script(tmp_path, f"""case "$1" in
  image) exit 1 ;;
  pull) n=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count}
        [ $n -ge 3 ] && {{ echo "$3"; exit 0; }}; echo "net/http: TLS handshake timeout" >&2; exit 1 ;;
esac
""")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("failed (attempt") == 2 and "TLS handshake timeout" in p.stderr
    s = pulled(tmp_path)
    assert s["state"] == "pulled" and s["attempt"] == 3 and s["image"] == "nginx:1.27"


def test_pull_gives_up_after_the_last_attempt_and_says_why(tmp_path):
    p = pull_script(tmp_path, 'case "$1" in image) exit 1 ;; pull) echo "manifest unknown" >&2; exit 1 ;; esac\n')
    assert p.returncode == 1
    assert "lcai: step image-pull failed: could not pull nginx:1.27 after 4 attempts: manifest unknown" in p.stderr
    s = pulled(tmp_path)
    assert s["state"] == "failed" and s["attempt"] == 4 and "manifest unknown" in s["detail"]


def test_present_image_is_not_pulled_again(tmp_path):
    p = pull_script(tmp_path, 'case "$1" in image) exit 0 ;; pull) exit 99 ;; esac\n')
    assert p.returncode == 0 and pulled(tmp_path)["state"] == "present"


def test_each_attempt_is_bounded(tmp_path):
    r = render()
    text = written(r)["/usr/local/lib/lcai/image-pull"]["content"]
    assert 'timeout "$per_attempt" docker pull' in text and "per_attempt=1800" in text
    unit = written(r)["/etc/systemd/system/lcai-image-pull.service"]["content"]
    bound = int(re.search(r"TimeoutStartSec=(\d+)", unit).group(1))
    assert 4 * 1800 < bound < 4 * 1800 + 600  # every attempt and the backoff fit, and no more
