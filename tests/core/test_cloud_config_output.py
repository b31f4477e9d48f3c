"""`lcai plan --cloud-config PATH` never replaces a symbolic link or a device with a file of rendered secrets
(issue 21 #8: as root, `--cloud-config /dev/stdout` replaced /dev/stdout for the whole machine); a pipe or a
terminal is written into; a regular file is replaced atomically, 0600."""

import os
import subprocess
import sys

import pytest

TEMPLATE = ("name: web\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n      internal_port: 80\n"
            "      external_port: 8080\nenv:\n  required:\n    - {name: API_KEY, secret: true}\n")


@pytest.fixture
def svc(tmp_path):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "deploy.yml").write_text(TEMPLATE)
    (d / ".env").write_text("API_KEY=s3cr3t-value\n")
    return d


def plan(svc, target, lcai_config_dir, **kw):
    env = {**os.environ, "LCAI_CONFIG_DIR": str(lcai_config_dir)}
    env.pop("LINODE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "lcai_core", "plan", "-d", str(svc), "--cloud-config", str(target)],
                          capture_output=True, text=True, env=env, **kw)


def test_a_symlink_is_refused_and_left_alone(svc, tmp_path, lcai_config_dir):
    real = tmp_path / "precious.txt"
    real.write_text("keep me\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    r = plan(svc, link, lcai_config_dir)
    assert r.returncode == 2 and "is a symbolic link" in r.stderr, r.stderr
    assert link.is_symlink() and real.read_text() == "keep me\n"


def test_a_pipe_is_written_into_and_stays_a_pipe(svc, tmp_path, lcai_config_dir):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    r = plan(svc, fifo, lcai_config_dir)
    got = reader.communicate(timeout=30)[0]
    assert r.returncode == 0, r.stderr
    assert got.startswith("#cloud-config") and "s3cr3t-value" in got
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    assert "plan for web" in r.stderr and "s3cr3t-value" not in r.stdout + r.stderr


def test_dev_stdout_is_the_output_and_the_summary_goes_to_stderr(svc, tmp_path, lcai_config_dir):
    r = plan(svc, "/dev/stdout", lcai_config_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("#cloud-config") and "plan for web" in r.stderr and "plan for" not in r.stdout


def test_a_regular_file_is_replaced_0600(svc, tmp_path, lcai_config_dir):
    out = tmp_path / "ud.yaml"
    out.write_text("old\n")
    out.chmod(0o644)
    r = plan(svc, out, lcai_config_dir)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("#cloud-config") and (out.stat().st_mode & 0o777) == 0o600
