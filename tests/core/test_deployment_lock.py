"""One deploy or destroy per deployment at a time (issue 25, item 9): ``registry.deployment_lock`` refuses at
once, naming the holder, and a lock whose process is gone is no refusal."""

import json
import os
import subprocess
import sys

import pytest

from lcai_core.registry import Busy, deployment_lock

# takes the OS lock the way a process would, records itself as the holder, hands the open lock file to an
# orphan (a child that outlives it, as a daemon could) and exits: the lock stays held, its holder is gone
ORPHANED = """
import fcntl, json, os, subprocess, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, "abcd1234.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
with open(os.path.join(d, "abcd1234.holder"), "w") as f:
    json.dump({"pid": os.getpid(), "action": "deploy", "since": "2026-01-01T00:00:00Z"}, f)
child = subprocess.Popen(["sleep", "30"], pass_fds=(fd,), start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
os._exit(0)
"""


def test_a_second_holder_is_refused_naming_the_first(lcai_config_dir):
    with deployment_lock("abcd1234", "deploy"):
        with deployment_lock("abcd1234", "deploy"):  # re-entrant in one thread
            pass
        holder = json.loads((lcai_config_dir / "locks" / "abcd1234.holder").read_text())
        assert holder["pid"] == os.getpid() and holder["action"] == "deploy"
        r = subprocess.run([sys.executable, "-c", "from lcai_core.registry import deployment_lock as l\n"
                            "with l('abcd1234', 'destroy'): pass"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "LCAI_CONFIG_DIR": str(lcai_config_dir)})
        assert r.returncode != 0 and "Busy: deployment abcd1234 is busy: `lcai deploy` (pid " in r.stderr
        with deployment_lock("other123", "destroy"):  # another deployment is not held up
            pass
    assert not (lcai_config_dir / "locks" / "abcd1234.holder").exists()
    with deployment_lock("abcd1234", "destroy"):  # released
        pass


def test_busy_is_a_one_line_runtime_refusal(lcai_config_dir):
    import threading

    inside, done = threading.Event(), threading.Event()

    def hold():
        with deployment_lock("abcd1234", "deploy"):
            inside.set()
            done.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(Busy) as e:
            with deployment_lock("abcd1234", "destroy"):
                pass
        assert e.value.exit_code == 1 and "\n" not in e.value.message
        assert e.value.message.startswith(f"deployment abcd1234 is busy: `lcai deploy` (pid {os.getpid()}, since ")
        assert e.value.message.endswith("is working on it; destroy refused")
    finally:
        done.set()
        t.join(30)


def test_a_lock_whose_process_is_gone_is_free(lcai_config_dir, tmp_path):
    d = lcai_config_dir / "locks"
    d.mkdir(parents=True)
    r = subprocess.run([sys.executable, "-c", ORPHANED, str(d)], capture_output=True, text=True, timeout=60)
    orphan = int(r.stdout)
    try:
        with deployment_lock("abcd1234", "destroy"):
            assert json.loads((d / "abcd1234.holder").read_text())["pid"] == os.getpid()
    finally:
        os.kill(orphan, 9)
