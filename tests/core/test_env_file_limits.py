""".env is read from a regular file of at most 1 MiB: a symlink to /dev/zero, a FIFO or a huge file is one
line and exit 2, at once (issue 21, small crashes: out of memory, a hang)."""

import os
import subprocess
import sys
import time

import pytest

TEMPLATE = ("name: web\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n      internal_port: 80\n"
            "      external_port: 8080\n")


def plan(d, cfg):
    env = {**os.environ, "LCAI_CONFIG_DIR": str(cfg)}
    env.pop("LINODE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "lcai_core", "plan", "-d", str(d)], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge"])
def test_refused_fast(tmp_path, lcai_config_dir, kind):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "deploy.yml").write_text(TEMPLATE)
    env = d / ".env"
    if kind == "dev-zero":
        env.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(env)
    else:
        env.write_text("A=" + "x" * (1 << 20) + "\n")
    t0 = time.monotonic()
    r = plan(d, lcai_config_dir)
    assert time.monotonic() - t0 < 30
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and ".env" in errors[0], r.stderr
    assert ("not a regular file" if kind != "huge" else "1048576 bytes") in errors[0]
