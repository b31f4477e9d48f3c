"""`deploy --wait` and `status` read the instance's own record over SSH and stop at its first failure; without
SSH access they say so in one line within seconds (against the simulator, whose instances run no SSH server)."""

import json
import re
import threading
import time

from lcai_core.registry import Registry

PULL_FAILED = {"state": "failed", "image": "nginx:1.27", "attempt": 4, "attempts": 4,
               "detail": "Error response from daemon: Get https://registry-1.docker.io/v2/: dial tcp: lookup "
                         "registry-1.docker.io on 127.0.0.53:53: no such host"}


def deployed_id(d):
    return json.loads((d / ".linode" / "state.json").read_text())["deployment_id"]


def write_record(fake_ssh, name: str, data: dict) -> None:
    p = fake_ssh.root / "var-lib-lcai" / name
    p.write_text(json.dumps(data) + "\n")


def test_a_failed_image_pull_ends_the_wait_at_once_naming_the_image_and_the_cause(sim, svc, lcai, fake_ssh):
    # the app never answers from here (the pull failed: nothing runs), the instance records why
    sim._call("POST", "/_sim/app-rules", [{"match": "nginx:1.27", "state": "unhealthy"}])
    fake_ssh.cloud_init("done")
    write_record(fake_ssh, "image-pull.json", {"state": "pulling", "image": "nginx:1.27", "attempt": 1,
                                              "attempts": 4, "detail": "attempt 1 of 4"})
    failed_at = []

    def give_up():  # after the wait has read the pull in progress
        limit = time.monotonic() + 30
        while not fake_ssh.calls and time.monotonic() < limit:
            time.sleep(0.05)
        time.sleep(0.5)
        write_record(fake_ssh, "image-pull.json", PULL_FAILED)
        fake_ssh.health("unhealthy", "the app is not running (inactive): lcai-image-pull.service failed "
                                     "(see journalctl -u lcai-image-pull.service)", attempt=0)
        failed_at.append(time.monotonic())
    t = threading.Thread(target=give_up)
    t.start()
    try:
        code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "60")
        ended = time.monotonic()
    finally:
        t.join()
    assert code == 1, err
    assert ended - failed_at[0] < 5, f"the wait went on {ended - failed_at[0]:.1f}s after the failure record"
    assert "image pull: pulling nginx:1.27 (attempt 1 of 4)" in err
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert line == (f"error: deployment {deployed_id(svc)} failed on the instance: image pull failed: nginx:1.27 "
                    "after 4 attempts: Error response from daemon: Get https://registry-1.docker.io/v2/: dial tcp: "
                    "lookup registry-1.docker.io on 127.0.0.53:53: no such host")
    assert "lcai logs" in err and "tracked" in err
    rec = Registry().get(deployed_id(svc))
    assert rec["health_status"] == "unhealthy" and rec["health_detail"].startswith("image pull failed: nginx:1.27")
    assert len(sim.state()["instances"]) == 1  # tracked, not undone


def test_status_the_instances_failure_wins_over_a_healthy_answer_from_here(sim, svc, lcai, fake_ssh):
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")[0] == 0  # healthy from here
    dep = deployed_id(svc)
    write_record(fake_ssh, "image-pull.json", PULL_FAILED)  # e.g. a redeploy's pull (the old app still answers)
    code, out, err = lcai("status", dep)
    assert code == 0, err
    health = next(x for x in out.splitlines() if x.startswith("health "))
    assert health.startswith("health         failing: image pull failed: nginx:1.27 after 4 attempts: ")
    assert "no such host (from this machine: http://" in health and "-> HTTP 200)" in health
    assert health.endswith("(the instance's own check, over SSH)")
    assert Registry().get(dep)["health_status"] == "unhealthy"
    code, out, err = lcai("status", dep, "--json")
    live = json.loads(out)["health_live"]
    assert live["ok"] is False and live["source"] == "instance"


def test_chat_agent_without_ssh_says_no_ssh_access_in_seconds(sim, lcai, tmp_path, monkeypatch):
    """The simulator's instances (127.0.1.N) run no SSH server: the real ssh client is refused (or, where a
    local sshd listens on every address, refused our key) and the provider says nothing will answer there."""
    for v in ("LCAI_SSH", "LCAI_SSH_GRACE", "LCAI_SSH_REFUSED_GRACE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("LCAI_POLL_INTERVAL", "5")  # the default: no help from a fast poll
    d = tmp_path / "chat-agent"
    assert lcai("init", "chat-agent", "--directory", d)[0] == 0
    example = (d / ".env.example").read_text()
    (d / ".env").write_text("".join(f"{m}=value-{i}\n" for i, m in enumerate(
        re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", example))))
    t0 = time.monotonic()
    code, out, err = lcai("deploy", "-d", d, "--yes", "--wait", "--region", "us-ord", "--timeout", "120")
    took = time.monotonic() - t0
    assert code == 0, err
    assert took < 30, f"took {took:.0f}s"
    lines = [x for x in err.splitlines() if "no SSH access" in x]
    assert len(lines) == 1, err
    assert "health not checked: no SSH access to ssh root@127.0.1." in lines[0]
    dep = deployed_id(d)
    assert Registry().get(dep)["health_status"] == "unknown"
    code, out, err = lcai("status", dep)
    assert "unknown: cannot read the instance's health: no SSH access to ssh root@127.0.1." in out


def test_a_public_port_template_says_once_that_the_record_is_not_read_and_checks_from_here(sim, svc, lcai,
                                                                                           monkeypatch):
    for v in ("LCAI_SSH", "LCAI_SSH_GRACE", "LCAI_SSH_REFUSED_GRACE"):
        monkeypatch.delenv(v, raising=False)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "30")
    assert code == 0, err
    lines = [x for x in err.splitlines() if "instance record not read" in x]
    assert len(lines) == 1 and "healthy: http://127.0.1." in err
    assert all("no SSH access" in x and "health from this machine only" in x for x in lines)


def test_the_spinner_is_gone_when_the_wait_ends_and_never_shows_a_finished_phase(sim, svc, lcai, fake_ssh,
                                                                                  monkeypatch):
    from lcai_core import lifecycle as L
    from lcai_core import ui
    from lcai_core.plugins import get_host

    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("type: http", "type: exec, command: 'true'"))
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    rec = Registry().get(deployed_id(svc))
    fake_ssh.script(("running", "waiting"), ("running", "waiting"), ("done", "waiting"), ("done", "waiting"),
                    ("done", "healthy"))

    class Tty:
        def __init__(self):
            self.chunks = []

        def write(self, s):
            self.chunks.append(s)

        def flush(self):
            pass

        def isatty(self):
            return True
    for v in ("NO_COLOR", "CI", "TERM"):
        monkeypatch.delenv(v, raising=False)
    p = ui.Progress(stream=Tty())
    assert p.fancy
    shown = []
    status = p.status
    monkeypatch.setattr(p, "status", lambda msg: (shown.append((msg, list(said))), status(msg)))
    said = []
    say = p.say
    monkeypatch.setattr(p, "say", lambda msg: (said.append(msg), say(msg)))
    prov = get_host().providers["linode"]
    assert L.wait_ready(prov, Registry(), rec, p, time.monotonic() + 30) == "healthy"
    assert p._live is None  # cleared before the summary is printed
    assert "cloud-init done" in said and shown
    after_done = [m for m, before in shown if "cloud-init done" in before]
    assert after_done and not any("cloud-init running" in m for m in after_done), shown
