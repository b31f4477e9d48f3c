"""FORCE_COLOR=1 colours piped output, as README and lcai_core.ui document (issue 25, item 8): the escape codes
reach the pipe on stdout and stderr; NO_COLOR still wins."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ESC = "\x1b["


def _run(args, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "FORCE_COLOR")}
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "lcai_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_force_color_keeps_colour_in_a_pipe(lcai_config_dir):
    pytest.importorskip("rich", reason="lcai colours with rich: pip install rich")
    r = _run(["templates", "validate", "templates/chat-agent"], FORCE_COLOR="1")
    assert r.returncode == 0 and f"{ESC}32mok:{ESC}0m templates/chat-agent" in r.stdout, r.stdout
    r = _run(["templates", "validate", "templates/no-such"], FORCE_COLOR="1")
    assert r.returncode == 2 and r.stderr.startswith(f"{ESC}1;31merror:{ESC}0m templates/no-such"), r.stderr
    r = _run(["templates", "validate", "templates/chat-agent"], FORCE_COLOR="1", NO_COLOR="1")
    assert r.returncode == 0 and ESC not in r.stdout and r.stdout.startswith("ok: templates/chat-agent")
