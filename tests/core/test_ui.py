"""lcai_core.ui: colour and a live status line on a terminal; plain lines when piped, under CI, with NO_COLOR."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lcai_core import ui

ROOT = Path(__file__).parents[2]
ESC = "\x1b["


class Tty(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for v in ("NO_COLOR", "CI", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(v, raising=False)


def test_plain_when_not_a_tty():
    out, clock = io.StringIO(), Clock()
    p = ui.Progress(stream=out, clock=clock)
    assert not p.fancy
    p.say("firewall created")
    clock.t += 12.34
    p.status("booting")
    p.status("booting")  # same text: no second line
    clock.t += 1
    p.status("waiting for health")
    p.close()
    assert out.getvalue() == "[   0.0s] firewall created\n[  12.3s] booting\n[  13.3s] waiting for health\n"
    assert ui.style_status("running", width=10, stream=out) == "running   "


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"CI": "true"}, {"TERM": "dumb"},
                                 {"NO_COLOR": "1", "FORCE_COLOR": "1"}])
def test_plain_on_a_tty_under_no_color_ci_or_dumb(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tty = Tty()
    assert not ui.fancy(tty)
    with ui.progress(stream=tty) as p:
        p.status("booting")
    ui.error("bad", hint="fix it", stream=tty)
    assert ESC not in tty.getvalue() and "error: bad\nhint: fix it\n" in tty.getvalue()
    assert ui.style_status("vanished", stream=tty) == "vanished"


def test_terminal_mode_colours_and_keeps_columns_aligned(monkeypatch):
    monkeypatch.setenv("CI", "false")  # CI=false is not CI
    tty = Tty()
    assert ui.fancy(tty)
    cells = {s: ui.style_status(s, width=20, stream=tty) for s in ("running", "running (untracked)", "✗ vanished",
                                                                  "unhealthy", "booting", "nothing-known")}
    assert cells["running"].startswith(ESC + "32m")  # green
    assert ESC + "31m" in cells["unhealthy"] and ESC + "33m" in cells["booting"]
    assert "31m" in cells["✗ vanished"] and cells["nothing-known"] == "nothing-known".ljust(20)
    strip = __import__("re").compile(r"\x1b\[[0-9;]*m")
    assert {len(strip.sub("", c)) for c in cells.values()} == {20}  # padded before colouring
    ui.error("deploy.yml:3: name: bad", hint="fix it", stream=tty)
    assert tty.getvalue() == f"{ESC}1;31merror:{ESC}0m deploy.yml:3: name: bad\n{ESC}36mhint:{ESC}0m fix it\n"


def test_terminal_mode_live_line_with_elapsed_time():
    tty, clock = Tty(), Clock()
    with ui.progress(stream=tty) as p:
        p._clock = clock
        assert p.fancy
        p.say("firewall created")
        p.status("booting")
        clock.t += 7
        p._live.refresh()
        p.say("booted")
    text = tty.getvalue()
    assert "booting" in text and "7s" in text  # the spinner line shows the seconds spent on this status
    assert "firewall created" in text and "booted" in text and "\x1b[2K" in text  # redrawn in place
    assert "\x1b[?25h" in text  # the cursor is shown again when the block ends


def _pty_run(args, env):
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the pty
        try:
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "lcai_core", *args], env)
        finally:
            os._exit(127)  # never return into pytest in the child
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), data.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_a_real_terminal_gets_colour_and_a_pipe_does_not(lcai_config_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    code, out = _pty_run(["templates", "validate", "templates/chat-agent"], env)
    assert code == 0 and f"{ESC}32mok:{ESC}0m templates/chat-agent" in out, out
    for extra in ({}, {"NO_COLOR": "1"}):
        if extra:
            code, out = _pty_run(["templates", "validate", "templates/chat-agent"], {**env, **extra})
        else:
            r = subprocess.run([sys.executable, "-m", "lcai_core", "templates", "validate", "templates/chat-agent"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            code, out = r.returncode, r.stdout
        assert code == 0 and ESC not in out and "ok: templates/chat-agent" in out


def test_help_does_not_import_rich():
    code = ("import sys; from lcai_core.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'textual')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "FORCE_COLOR": "1"})
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


def test_prog_name_in_suggested_commands():
    try:
        assert ui.cmd("plan -d svc") == "lcai plan -d svc"
        ui.set_prog("linode-cli build")
        assert ui.cmd("plan -d svc") == "linode-cli build plan -d svc"
    finally:
        ui.set_prog("lcai")


def test_fs_error_kinds(tmp_path):
    import errno

    f = tmp_path / "file"
    f.write_text("")
    e = ui.fs_error(NotADirectoryError(errno.ENOTDIR, "Not a directory", str(f / "x")), f / "x" / "y")
    assert e.exit_code == 2 and e.message == f"{f}/x/y: {f} is a file, not a directory"
    e = ui.fs_error(PermissionError(errno.EACCES, "Permission denied", "/srv/x"), "/srv/x", action="create")
    assert e.exit_code == 2 and e.message == "cannot create /srv/x: permission denied"
    e = ui.fs_error(OSError(errno.EROFS, "Read-only file system", "/mnt/x"))
    assert e.exit_code == 2 and "read-only file system" in e.message
    e = ui.fs_error(OSError(errno.ENOSPC, "No space left on device", "/data/x"))
    assert e.exit_code == 1 and e.message == "cannot write /data/x: No space left on device"
