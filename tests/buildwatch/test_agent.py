"""The BuildWatch agent against a fake Docker Engine API on a unix socket; assertions over its HTTP API."""

import ast
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lcai_buildwatch import agent as agent_mod
from lcai_buildwatch.agent import Agent
from lcai_testing.docker import BASE, FakeDocker, event

AGENT_FILE = Path(agent_mod.__file__)


@pytest.fixture
def docker(tmp_path):
    fd = FakeDocker(str(tmp_path / "docker.sock")).start()
    yield fd
    fd.stop()


@pytest.fixture
def make_agent(tmp_path, docker):
    agents = []

    def make(**cfg):
        a = Agent({"docker_socket": docker.socket_path, "port": 0, "log_dir": str(tmp_path / "log"),
                   "state_dir": str(tmp_path / "state"), "tick_s": 0.05, "reconnect_max_s": 0.1,
                   "deployment_id": "abcd1234", "app_name": "web", "token_file": str(tmp_path / "token"),
                   "kmsg": str(tmp_path / "kmsg"), **cfg})
        agents.append(a.start())
        return a

    yield make
    for a in agents:
        a.shutdown()


def get(agent, path, token=None):
    host, port = agent.httpd.server_address[:2]
    req = urllib.request.Request(f"http://{host}:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read().decode()
            return r.status, (json.loads(body) if r.headers.get_content_type() == "application/json" else body)
    except urllib.error.HTTPError as e:
        return e.code, None


def until(agent, path, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(agent, path)
        if status == 200 and pred(body):
            return body
        assert time.monotonic() < deadline, (path, body)
        time.sleep(0.02)


def kinds(issues, state=None):
    return [i["kind"] for i in issues["history"] if state is None or i["state"] == state]


def test_oom_kill_then_restart(docker, make_agent):
    docker.script = [event("start", BASE, cid="a" * 64), event("oom", BASE + 50, cid="a" * 64),
                     event("die", BASE + 50.1, cid="a" * 64, exitCode=137), event("start", BASE + 55, cid="b" * 64)]
    a = make_agent()
    issues = until(a, "/issues", lambda b: "oom" in kinds(b))
    oom = next(i for i in issues["history"] if i["kind"] == "oom")
    assert oom["explanation"].startswith("app was killed by the kernel") and oom["evidence"][0]["action"] == "oom"
    assert "killed" not in kinds(issues) and "nonzero_exit" not in kinds(issues)
    status = until(a, "/status", lambda b: b["events_seen"] == 4)
    assert status["restarts"] == 1 and status["state"] == "running" and status["deployment_id"] == "abcd1234"


def test_exit_137_alone_is_not_called_oom(docker, make_agent):
    docker.script = [event("start", BASE), event("die", BASE + 30, exitCode=137)]
    issues = until(make_agent(), "/issues", lambda b: b["history"])
    assert kinds(issues) == ["killed"] and "OOM not confirmed" in issues["history"][0]["explanation"]


def test_exit_137_confirmed_by_inspect(docker, make_agent):
    cid = "c" * 64
    docker.containers[cid[:12]] = {"Id": cid, "State": {"OOMKilled": True, "ExitCode": 137}}
    docker.script = [event("start", BASE, cid=cid), event("die", BASE + 30, cid=cid, exitCode=137)]
    assert kinds(until(make_agent(), "/issues", lambda b: b["history"])) == ["oom"]


def test_exit_137_of_a_removed_container_confirmed_by_the_kernel_log(docker, make_agent, tmp_path):
    """``docker run --rm``: the container is gone before inspect (404) and Docker dropped its ``oom`` event; the
    kernel's oom-kill record names the container's memory cgroup (a boot showed exactly this)."""
    cid = "d" * 64
    (tmp_path / "kmsg").write_bytes(
        b"6,1234,5678,-;python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
        b"6,1240,5690,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=docker-" + cid.encode()
        + b".scope,mems_allowed=0,oom_memcg=/system.slice/docker-" + cid.encode() + b".scope,task_memcg=/system.slice"
        b"/docker-" + cid.encode() + b".scope,task=python3,pid=4242,uid=0\n")
    docker.script = [event("start", BASE, cid=cid), event("die", BASE + 30, cid=cid, exitCode=137)]
    issues = until(make_agent(), "/issues", lambda b: b["history"])
    assert kinds(issues) == ["oom"] and "the kernel log" in issues["history"][0]["explanation"]


def test_kernel_log_of_another_container_is_not_this_ones_oom(docker, make_agent, tmp_path):
    (tmp_path / "kmsg").write_bytes(b"6,1240,5690,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/system.slice"
                                    b"/docker-" + b"e" * 64 + b".scope,task=python3,pid=4242,uid=0\n")
    docker.script = [event("start", BASE, cid="d" * 64), event("die", BASE + 30, cid="d" * 64, exitCode=137)]
    assert kinds(until(make_agent(), "/issues", lambda b: b["history"])) == ["killed"]


def test_explicit_stop_is_not_an_issue(docker, make_agent):
    docker.script = [event("start", BASE), event("kill", BASE + 30, signal=15), event("die", BASE + 31, exitCode=143),
                     event("stop", BASE + 31)]
    a = make_agent()
    until(a, "/status", lambda b: b["events_seen"] == 4)
    assert get(a, "/issues")[1]["history"] == []


def test_nonzero_exit(docker, make_agent):
    docker.script = [event("start", BASE), event("die", BASE + 30, exitCode=1)]
    issues = until(make_agent(), "/issues", lambda b: b["history"])
    assert kinds(issues) == ["nonzero_exit"]
    assert issues["history"][0]["explanation"] == "app exited with code 1 after 30s"


def test_crash_loop_then_cleared_after_stability(docker, make_agent):
    script = []
    for i in range(5):
        script += [event("start", BASE + i * 20, cid=f"{i:x}" * 64), event("die", BASE + i * 20 + 10,
                                                                           cid=f"{i:x}" * 64, exitCode=1)]
    docker.script = script + [event("start", BASE + 200, cid="f" * 64)]
    a = make_agent(tick_s=3600)
    issues = until(a, "/issues", lambda b: [i["kind"] for i in b["open"]] == ["crash_loop"])
    assert issues["open"][0]["explanation"] == "app died 5 times in 10 minutes (crash loop)"
    assert until(a, "/status", lambda b: b["restarts"] == 5)
    # ten stable minutes later (an event carries the time), the loop is over
    docker.script.append(event("health_status: healthy", BASE + 200 + 601, cid="f" * 64))
    issues = until(a, "/issues", lambda b: not b["open"], timeout=10)
    assert "crash_loop" in kinds(issues, "resolved")


def test_slow_startup(docker, make_agent):
    docker.script = [event("start", BASE), event("health_status: healthy", BASE + 200)]
    issues = until(make_agent(), "/issues", lambda b: b["history"])
    assert kinds(issues) == ["slow_startup"]
    assert "took 200s from start to healthy" in issues["history"][0]["explanation"]


def test_failing_health_opens_and_clears(docker, make_agent):
    docker.script = [event("start", BASE), event("health_status: unhealthy", BASE + 60)]
    a = make_agent()
    until(a, "/issues", lambda b: [i["kind"] for i in b["open"]] == ["health_failing"])
    docker.script.append(event("health_status: healthy", BASE + 90))
    until(a, "/issues", lambda b: not b["open"], timeout=10)


def test_stream_drop_reconnects_without_loss_or_duplicates(docker, make_agent):
    docker.script = [event("start", BASE + i, cid=f"{i:x}" * 64) if i % 2 == 0 else
                     event("die", BASE + i, cid=f"{i - 1:x}" * 64, exitCode=0) for i in range(8)]
    docker.drop_after = 3
    a = make_agent()
    status = until(a, "/status", lambda b: b["events_seen"] == 8 and b["reconnects"] >= 1)
    events = get(a, "/events?limit=100")[1]
    assert [round(e["time"]) for e in events] == [BASE + i for i in range(8)]
    assert status["duplicates_dropped"] >= 1  # the reconnect replayed the last second, and it was dropped


def test_malformed_events_counted_and_ignored(docker, make_agent):
    docker.script = [event("start", BASE), b"{not json\n", b'{"no": "action"}\n', b"[1, 2]\n",
                     event("die", BASE + 5, exitCode=2)]
    a = make_agent()
    until(a, "/status", lambda b: b["events_seen"] == 2 and b["malformed_events"] == 3)
    assert kinds(get(a, "/issues")[1]) == ["nonzero_exit"]


def test_other_containers_are_ignored(docker, make_agent):
    docker.script = [event("die", BASE, name="sidecar", exitCode=1), event("start", BASE + 1)]
    a = make_agent()
    until(a, "/status", lambda b: b["state"] == "running")
    assert get(a, "/issues")[1]["history"] == []


def test_gpu_and_health_files(docker, make_agent, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "gpu.json").write_text(json.dumps({"ok": False, "stage": "host", "detail": "no driver"}))
    (tmp_path / "state" / "health.json").write_text(json.dumps({"state": "unhealthy", "detail": "HTTP 503"}))
    issues = until(make_agent(), "/issues", lambda b: len(b["open"]) == 2)
    assert sorted(i["kind"] for i in issues["open"]) == ["gpu_failed", "health_failing"]
    gpu_issue = next(i for i in issues["open"] if i["kind"] == "gpu_failed")
    assert "GPU verification failed (host): no driver" in gpu_issue["explanation"]


def test_history_survives_an_agent_restart(docker, make_agent, tmp_path):
    docker.script = [event("start", BASE), event("die", BASE + 30, exitCode=3)]
    a = make_agent()
    until(a, "/issues", lambda b: b["history"])
    a.shutdown()
    b = make_agent()
    time.sleep(0.3)  # the new agent re-reads the stream: nothing may be counted twice
    issues = get(b, "/issues")[1]
    assert kinds(issues) == ["nonzero_exit"]
    assert len(get(b, "/events")[1]) == 2
    lines = (tmp_path / "log" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["key"] for x in lines)


def test_metrics(docker, make_agent):
    docker.script = [event("start", BASE), event("oom", BASE + 5), event("die", BASE + 5, exitCode=137),
                     event("start", BASE + 6)]
    a = make_agent()
    until(a, "/status", lambda b: b["events_seen"] == 4)
    status, text = get(a, "/metrics")
    assert status == 200
    assert "# TYPE buildwatch_container_restarts_total counter" in text
    assert 'buildwatch_container_restarts_total{container="app",deployment="abcd1234"} 1' in text
    assert 'buildwatch_container_oom_events_total{container="app",deployment="abcd1234"} 1' in text
    assert "buildwatch_events_total 4" in text
    assert get(make_agent(enable_metrics=False), "/metrics")[0] == 404


def _non_loopback_address():
    """An address of this machine outside 127.0.0.0/8 (the agent must demand a token there), if it has one."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            addr = s.getsockname()[0]
    except OSError:
        addr = ""
    if not addr or addr.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine")
    return addr


def test_non_loopback_bind_requires_a_token(docker, make_agent, tmp_path):
    addr = _non_loopback_address()
    with pytest.raises(SystemExit, match="no token"):
        make_agent(bind=addr)
    (tmp_path / "token").write_text("s3cret-token\n")
    a = make_agent(bind=addr)
    assert get(a, "/status")[0] == 401
    assert get(a, "/status", token="wrong")[0] == 401
    assert get(a, "/status", token="s3cret-token")[0] == 200


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "127.1.2.3", "::1"])
def test_every_loopback_address_is_local_no_token(docker, make_agent, bind):
    """Only the instance itself reaches a loopback address: no token is written for it, none is demanded."""
    if bind == "::1" and not __import__("socket").has_ipv6:
        pytest.skip("no IPv6")
    docker.script = [event("start", BASE)]
    a = make_agent(bind=bind)  # the token file does not exist
    assert a.token is None
    assert until(a, "/status", lambda b: b["state"] == "running")["events_seen"] == 1


@pytest.mark.parametrize("daemon,minimum,expected", [
    ("1.41", "1.12", "v1.41"),   # Docker 20.10: at most 1.41
    ("1.43", "1.12", "v1.43"),   # Docker 24
    ("1.52", "1.44", "v1.51"),   # Docker 29: refuses clients below 1.44; ours is capped at what it knows
])
def test_api_version_negotiated_with_the_daemon(tmp_path, make_agent, daemon, minimum, expected):
    """GET /version first, then the lower of the daemon's ApiVersion and the agent's: every request afterwards
    carries that prefix and the daemon accepts it (the fake refuses versions outside its range, as dockerd)."""
    fd = FakeDocker(str(tmp_path / f"d{daemon}.sock"), api_version=daemon, min_api_version=minimum).start()
    try:
        fd.script = [event("start", BASE), event("die", BASE + 30, exitCode=3)]
        a = make_agent(docker_socket=fd.socket_path)
        status = until(a, "/status", lambda b: b["events_seen"] == 2)
        assert status["docker_api"] == expected and status["reconnects"] <= 1
        assert fd.requested[0] == "/version"
        assert fd.requested[1].startswith(f"/{expected}/events")
        assert kinds(until(a, "/issues", lambda b: b["history"])) == ["nonzero_exit"]
    finally:
        fd.stop()


def test_a_pinned_version_the_daemon_refuses_is_renegotiated(tmp_path, make_agent):
    """An agent configured with v1.41 against Docker 29 (minimum 1.44): the daemon's 400 makes it negotiate."""
    fd = FakeDocker(str(tmp_path / "d29.sock"), api_version="1.52", min_api_version="1.44").start()
    try:
        fd.script = [event("start", BASE)]
        a = make_agent(docker_socket=fd.socket_path, api_version="v1.41")  # what the agent used to pin
        status = until(a, "/status", lambda b: b["events_seen"] == 1)
        assert status["docker_api"] == "v1.51"
        assert fd.requested[0].startswith("/v1.41/events") and "/version" in fd.requested
    finally:
        fd.stop()


def test_query_cli_reads_the_local_api(docker, make_agent, tmp_path, capsys):
    docker.script = [event("start", BASE), event("die", BASE + 30, exitCode=1)]
    a = make_agent()
    until(a, "/issues", lambda b: b["history"])
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"port": a.httpd.server_address[1], "token_file": str(tmp_path / "none")}))
    assert agent_mod.main(["--config", str(cfg), "query", "issues"]) == 0
    assert json.loads(capsys.readouterr().out)["history"][0]["kind"] == "nonzero_exit"


def test_agent_is_stdlib_only_and_python_3_10():
    src = AGENT_FILE.read_text()
    tree = ast.parse(src, feature_version=(3, 10))
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    mods.discard("__future__")
    assert mods and mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names)
    import py_compile

    py_compile.compile(str(AGENT_FILE), doraise=True)


def test_the_shipped_agent_runs_and_reports(docker, tmp_path):
    """The agent exactly as the user data ships it (docstrings stripped, spaces compacted) runs as the service
    does, sees an OOM kill of a removed container through the kernel log, and answers `build-watcher query`."""
    import socket
    import subprocess

    from lcai_buildwatch.capability import shipped_agent_source

    script = tmp_path / "build-watcher"
    script.write_text(shipped_agent_source())
    cid = "f" * 64
    (tmp_path / "kmsg").write_bytes(b"6,1,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/system.slice/docker-"
                                    + cid.encode() + b".scope,task=python3,pid=7,uid=0\n")
    docker.script = [event("start", BASE, cid=cid), event("die", BASE + 30, cid=cid, exitCode=137),
                     event("start", BASE + 40), event("die", BASE + 50, exitCode=3)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"docker_socket": docker.socket_path, "port": port, "log_dir": str(tmp_path / "log"),
                               "state_dir": str(tmp_path / "state"), "tick_s": 0.05, "reconnect_max_s": 0.1,
                               "token_file": str(tmp_path / "none"), "kmsg": str(tmp_path / "kmsg")}))
    proc = subprocess.Popen([sys.executable, str(script), "--config", str(cfg), "run"], stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline, found = time.monotonic() + 15, []
        while time.monotonic() < deadline and found != ["oom", "nonzero_exit"]:
            q = subprocess.run([sys.executable, str(script), "--config", str(cfg), "query", "issues"],
                               capture_output=True, text=True)
            if q.returncode == 0:
                found = [i["kind"] for i in json.loads(q.stdout)["history"]]
            time.sleep(0.1)
        assert found == ["oom", "nonzero_exit"], (found, q.stderr)
    finally:
        proc.terminate()
        proc.wait(10)


def test_compact_keeps_the_program():
    from lcai_buildwatch.capability import compact

    src = ('x = f"{{a}} {b!r:>{w}} {\'q\'}" + \'s\' if 1 in (2, 3) else "t"\n'
           'def f(a, *b, c=1, **d):\n    return not -a or b and (lambda: 0)\n'
           'y = [i for i in range(3) if i is not None]\nz = 1 if x else 2\nw = x in\'abc\'\n')
    out = compact(src)
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(src))
    assert len(out) < len(src) and "x=" in out and "(a,*b,c=1,**d)" in out
