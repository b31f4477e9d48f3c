"""`lcai logs` and the BuildWatch section of `lcai status ID`, through a fake ssh that runs the remote
command locally against a real agent fed by the fake Docker Engine."""

import json
import os
import sys
import time

import pytest

from lcai_buildwatch.agent import Agent
from lcai_testing.docker import BASE, FakeDocker, event
from lcai_core.cli import main
from lcai_core.registry import Registry


@pytest.fixture
def remote_env(tmp_path, monkeypatch, lcai_config_dir):
    docker = FakeDocker(str(tmp_path / "docker.sock")).start()
    docker.script = [event("start", BASE), event("die", BASE + 20, exitCode=1), event("start", BASE + 25)]
    agent = Agent({"docker_socket": docker.socket_path, "port": 0, "log_dir": str(tmp_path / "log"),
                   "state_dir": str(tmp_path / "state"), "tick_s": 0.05, "token_file": str(tmp_path / "t")}).start()
    cfg = tmp_path / "bw.json"
    cfg.write_text(json.dumps({"port": agent.httpd.server_address[1], "token_file": str(tmp_path / "t")}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "build-watcher").write_text(
        f"#!/bin/sh\nexec {sys.executable} -m lcai_buildwatch.agent --config {cfg} \"$@\"\n")
    (bin_dir / "cloud-init").write_text("#!/bin/sh\necho 'status: done'\necho 'detail: DataSourceAkamai'\n")
    # fake ssh: drop options, check the target, run the remote command here
    (bin_dir / "ssh").write_text("""#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -o) shift 2 ;; root@*) host=$1; shift; break ;; *) shift ;; esac; done
if [ "$host" != "root@127.0.1.9" ]; then
  echo "ssh: connect to host ${host#root@} port 22: Connection refused" >&2; exit 255
fi
exec sh -c "$*"
""")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LCAI_SSH", str(bin_dir / "ssh"))
    deadline = time.monotonic() + 5
    while agent.status()["events_seen"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    Registry().update("abcd1234", create=True, app="web", env="default", address="127.0.1.9", provider="linode",
                      provider_state={"linode_id": 1}, status="running", features=["buildwatch"])
    yield agent
    agent.shutdown()
    docker.stop()


def test_logs_shows_cloud_init_and_container_events(remote_env, capsys):
    assert main(["logs", "abcd1234"]) == 0
    out = capsys.readouterr().out
    assert "== cloud-init ==\nstatus: done" in out
    assert "== container events (BuildWatch) ==" in out
    lines = out.split("== container events (BuildWatch) ==\n")[1].splitlines()
    assert [line.split()[3:] for line in lines] == [["start"], ["die", "exit=1"], ["start"]]


def test_status_section_lists_issues(remote_env):
    from lcai_buildwatch import deployment_sections

    (title, lines), = deployment_sections(Registry().get("abcd1234"))
    assert title == "buildwatch" and lines[0].split()[0] == "nonzero_exit"
    assert "app exited with code 1 after 20s" in lines[0]
    assert deployment_sections({"deployment_id": "x", "features": []}) == []


def test_unreachable_instance_is_reported_not_fatal(remote_env):
    from lcai_buildwatch.client import issues_section

    title, lines = issues_section({"deployment_id": "zz", "address": "127.0.1.250"})
    assert lines == ["unreachable: ssh: connect to host 127.0.1.250 port 22: Connection refused"]


def test_tui_log_source_starts_with_cloud_init_then_follows_events(remote_env):
    from lcai_buildwatch.client import tui_log_lines

    rec = Registry().get("abcd1234")
    lines, cursor = tui_log_lines(rec, None)
    assert lines[0] == "status: done" and "--- container events (BuildWatch)" in lines
    assert [x.split()[3:] for x in lines[lines.index("--- container events (BuildWatch)") + 1:]] == [
        ["start"], ["die", "exit=1"], ["start"]]
    assert tui_log_lines(rec, cursor) == ([], cursor)  # following: nothing new yet
