"""`lcai status`'s table fits the terminal: at 80 and 120 columns ID, APP, STATUS, HEALTH (`healthy 2/2` whole) and
$/H show, the columns read last (TYPE, REGION, PROVIDER, ENV) give way first, a long app name ends in "…"
instead of wrapping; piped without COLUMNS every column shows, as before."""

import os
import re
import struct
import sys
from pathlib import Path

import pytest

from lcai_core import ui
from lcai_core.cli import main
from lcai_core.registry import Registry

ROOT = Path(__file__).parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

RECORDS = {
    "a1b2c3d4": {"app": "llm-api", "env": "prod", "region": "us-ord", "type": "g2-gpu-rtx4000a1-s",
                 "status": "running", "health_status": "healthy", "price_hourly": 0.52},
    "e5f6g7h8": {"app": "embeddings-python", "env": "staging", "region": "de-fra-2", "type": "g6-standard-2",
                 "status": "running", "replicas": 2, "replicas_healthy": 2, "price_hourly": 0.087,
                 "provider_state": {"nodebalancer_id": 7, "replicas": [{"k": 1}, {"k": 2}]}},
    "z9y8x7w6": {"app": "old-job", "env": "prod", "region": "us-mia", "type": "g6-standard-2",
                 "status": "provisioning", "health_status": "unhealthy", "price_hourly": 0.036},
}


@pytest.fixture
def records(lcai_config_dir, monkeypatch):
    """Registry records of a provider that is not installed: `status` lists them from the registry."""
    monkeypatch.delenv("COLUMNS", raising=False)
    recs = {dep: {"deployment_id": dep, "provider": "elsewhere", "created_at": "2025-12-29T07:20:00Z", **r}
            for dep, r in RECORDS.items()}
    Registry().transform(lambda deps: deps.update(recs))
    return recs


def status_table(capsys, columns=None, monkeypatch=None):
    if columns is not None:
        monkeypatch.setenv("COLUMNS", str(columns))
    code = main(["status", "--all"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out.splitlines()


def row_of(lines, dep):
    return next(x for x in lines if x.startswith(dep))


@pytest.mark.parametrize("columns", [80, 120])
def test_status_table_fits_80_and_120_columns(records, capsys, monkeypatch, columns):
    lines = status_table(capsys, columns, monkeypatch)
    assert max(len(x) for x in lines) <= columns, "\n".join(lines)
    header = lines[0]
    assert {"ID", "APP", "STATUS", "HEALTH", "$/H"} <= set(header.split())
    row = row_of(lines, "e5f6g7h8")
    assert "embeddings-python" in row and "running" in row and "0.087" in row
    assert row.index("healthy 2/2") == header.index("HEALTH")  # whole, and in its column
    assert row_of(lines, "z9y8x7w6").index("provisioning") == header.index("STATUS")
    assert row_of(lines, "a1b2c3d4").endswith("0.520")
    if columns == 120:  # room for every column
        assert header.split() == ["ID", "APP", "ENV", "PROVIDER", "REGION", "TYPE", "STATUS", "HEALTH", "AGE", "$/H"]
    else:  # the columns read last give way first, the usual order stays
        assert "TYPE" not in header and header.split()[:2] == ["ID", "APP"]
        assert header.split()[-4:] == ["STATUS", "HEALTH", "AGE", "$/H"]


def test_a_narrow_terminal_shortens_the_app_name_with_an_ellipsis(records, capsys, monkeypatch):
    lines = status_table(capsys, 50, monkeypatch)
    assert max(len(x) for x in lines) <= 50, "\n".join(lines)
    assert lines[0].split() == ["ID", "APP", "STATUS", "HEALTH"]
    row = row_of(lines, "e5f6g7h8")
    assert re.search(r"  embeddings-\S*…  ", row) and "healthy 2/2" in row
    assert len(lines) == 1 + len(RECORDS)  # nothing wrapped onto a line of its own


def test_piped_without_columns_shows_every_column_whole(records, capsys):
    lines = status_table(capsys)
    assert lines[0].split() == ["ID", "APP", "ENV", "PROVIDER", "REGION", "TYPE", "STATUS", "HEALTH", "AGE", "$/H"]
    assert "g2-gpu-rtx4000a1-s" in row_of(lines, "a1b2c3d4")


def test_fit_widths_the_last_column_gives_way_first():
    natural = {"id": 8, "app": 17, "status": 7, "type": 13, "region": 6}
    prio = ["id", "status", "app", "region", "type"]
    gaps = 2 * 4
    assert ui.fit_widths(natural, prio, None) == natural
    assert ui.fit_widths(natural, prio, 51 + gaps) == natural
    # TYPE shrinks to its minimum first, then hides; REGION keeps its width until then
    assert ui.fit_widths(natural, prio, 51 + gaps - 3, minimum={"type": 8}) == dict(natural, type=10)
    assert ui.fit_widths(natural, prio, 44 + gaps, minimum={"type": 8}) == {"id": 8, "status": 7, "app": 17,
                                                                            "region": 6}
    # a kept column shrinks to its minimum but never hides, even when the line stays too wide
    tiny = ui.fit_widths(natural, prio, 10, minimum={"app": 10}, keep=("id", "status", "app"))
    assert tiny == {"id": 8, "status": 7, "app": 10}
    assert ui.ellipsize("embeddings-python", 10) == "embedding…" and ui.ellipsize("web", 10) == "web"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_a_real_80_column_terminal_gets_a_table_that_fits(records):
    """No COLUMNS: the width comes from the terminal itself."""
    import fcntl
    import pty
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout is the pty, 80 x 24
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "lcai_core", "status", "--all"], env)
        finally:
            os._exit(127)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0, data
    lines = [ANSI.sub("", x) for x in data.decode().replace("\r\n", "\n").splitlines()]
    table = [x for x in lines if x.startswith(("ID ", *RECORDS))]
    assert len(table) == 1 + len(RECORDS) and max(len(x) for x in table) <= 80, "\n".join(lines)
    assert {"STATUS", "HEALTH", "$/H"} <= set(table[0].split()) and "healthy 2/2" in row_of(table, "e5f6g7h8")
