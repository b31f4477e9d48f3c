"""lcai_core.waiting and the instance's record (lcai_core.remote): when SSH will never answer, what the machine
says failed, and the one verdict of the instance's record and this machine's probe."""

import json

import pytest

from lcai_core.providers import SshEndpoint
from lcai_core.remote import MARK, STATE_COMMAND, Result, parse_state
from lcai_core.waiting import SshAccess, verdict

EP = SshEndpoint("203.0.113.9")
REFUSED = Result(255, "", "ssh: connect to host 203.0.113.9 port 22: Connection refused\n")
TIMEOUT = Result(255, "", "ssh: connect to host 203.0.113.9 port 22: Connection timed out\n")
RESET = Result(255, "", "kex_exchange_identification: read: Connection reset by peer\n")
DENIED = Result(255, "", "root@203.0.113.9: Permission denied (publickey).\n")
ANSWER = Result(0, f"done\n{MARK} health\n", "")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def access(**kw):
    clock = Clock()
    return SshAccess(EP, clock=clock, **{"refused_grace": 90.0, "silent_grace": 600.0, **kw}), clock


# ---------------------------------------------------------------- not up yet, or never will be


def test_a_refused_key_is_final_at_once():
    a, _ = access()
    why = a.judge(DENIED)
    assert why == "no SSH access to ssh root@203.0.113.9 (root@203.0.113.9: Permission denied (publickey).)"


def test_a_provider_that_says_nothing_serves_ssh_ends_it_at_the_first_unanswered_attempt():
    a, _ = access(absent="127.0.1.3 is a loopback address")
    assert a.judge(ANSWER) is None  # a stand-in for the machine (LCAI_SSH) answers: it is used
    why = a.judge(REFUSED)
    assert why.startswith("no SSH access to ssh root@203.0.113.9: 127.0.1.3 is a loopback address (")
    assert "Connection refused" in why


def test_refusals_are_final_after_the_grace_in_a_row_and_an_answer_or_timeout_restarts_it():
    a, clock = access()
    assert a.judge(REFUSED) is None
    clock.t += 60
    assert a.judge(REFUSED) is None
    clock.t += 5
    assert a.judge(TIMEOUT) is None  # not a refusal: the run of refusals starts again
    clock.t += 5
    assert a.judge(REFUSED) is None
    clock.t += 89
    assert a.judge(REFUSED) is None
    clock.t += 1
    why = a.judge(REFUSED)
    assert why.startswith("no SSH access to ssh root@203.0.113.9: every connection refused for 90s")


def test_silence_is_final_after_its_grace_counted_from_the_last_answer():
    a, clock = access()
    clock.t += 599
    assert a.judge(TIMEOUT) is None and a.judge(RESET) is None
    assert a.judge(ANSWER) is None  # answered at 599 s: a reboot later starts the count again
    clock.t += 599
    assert a.judge(TIMEOUT) is None
    clock.t += 1
    assert "no answer for 600s since SSH last answered" in a.judge(TIMEOUT)
    b, clock = access()
    clock.t += 600
    assert "no answer for 600s since the machine ran (ssh: connect to host 203.0.113.9 port 22: Connection " \
           "timed out)" in b.judge(TIMEOUT)


def test_the_graces_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LCAI_SSH_REFUSED_GRACE", "0")
    monkeypatch.setenv("LCAI_SSH_GRACE", "7")
    a = SshAccess(EP)
    assert (a.refused_grace, a.silent_grace) == (0.0, 7.0)
    assert "every connection refused for 0s" in a.judge(REFUSED)


# ---------------------------------------------------------------- the instance's record


def machine_output(cloud_init="running", health=None, pull=None, gpu=None, step="", units=""):
    out = f"{cloud_init}\n"
    for name, value in (("health", health), ("image-pull", pull), ("gpu", gpu)):
        out += f"{MARK} {name}\n" + (json.dumps(value) if value is not None else "") + "\n"
    out += f"{MARK} failed-step\n{step}\n{MARK} failed-units\n{units}"
    return Result(0, out, "")


PULL_FAILED = {"state": "failed", "image": "registry.example/app:1.2", "attempt": 4, "attempts": 4,
               "detail": "Error response from daemon: Get https://registry.example/v2/: dial tcp: lookup "
                         "registry.example: no such host", "time": 1}
APP_DOWN = {"state": "unhealthy", "attempt": 0, "max_retries": 60, "restarts": 0,
            "detail": "the app is not running (inactive): lcai-image-pull.service failed", "time": 2}


def test_the_command_reads_every_record_lcai_logs_shows():
    for path in ("/var/lib/lcai/health.json", "/var/lib/lcai/image-pull.json", "/var/lib/lcai/gpu.json",
                 "/var/lib/lcai/failed-step"):
        assert path in STATE_COMMAND


def test_a_failed_pull_is_named_with_its_image_and_cause_before_the_health_it_caused():
    st = parse_state(machine_output("done", health=APP_DOWN, pull=PULL_FAILED,
                                    units="lcai-image-pull.service\nlcai-health.service\n"))
    assert st.answered and st.cloud_init == "done"
    f = st.failure()
    assert f.kind == "image-pull"
    assert f.text == ("image pull failed: registry.example/app:1.2 after 4 attempts: Error response from daemon: "
                      "Get https://registry.example/v2/: dial tcp: lookup registry.example: no such host")


@pytest.mark.parametrize("kw, kind, text", [
    ({"gpu": {"ok": False, "stage": "host", "detail": "NVIDIA-SMI has failed"}}, "gpu",
     "GPU check failed (host): NVIDIA-SMI has failed"),
    ({"cloud_init": "error", "step": "systemctl enable --now docker.service (exit 1)"}, "boot-step",
     "boot step failed: systemctl enable --now docker.service (exit 1)"),
    ({"cloud_init": "error"}, "cloud-init", "cloud-init reported an error"),
    ({"cloud_init": "done", "health": APP_DOWN}, "health",
     "unhealthy on the instance: the app is not running (inactive): lcai-image-pull.service failed"),
    ({"cloud_init": "done", "units": "lcai-metadata-guard.service\n"}, "unit",
     "lcai-metadata-guard.service failed (journalctl -u lcai-metadata-guard.service)"),
])
def test_each_recorded_failure_is_named(kw, kind, text):
    f = parse_state(machine_output(**kw)).failure()
    assert (f.kind, f.text) == (kind, text)


def test_nothing_failed_while_pulling_and_waiting_and_an_unanswered_read_knows_nothing():
    st = parse_state(machine_output("running", health={"state": "waiting", "attempt": 2, "max_retries": 3},
                                    pull={"state": "pulling", "image": "x", "attempt": 1, "attempts": 4}))
    assert st.failure() is None and st.image_pull["state"] == "pulling" and st.health["attempt"] == 2
    st = parse_state(REFUSED)
    assert not st.answered and st.failure() is None and st.cloud_init is None


def test_the_earlier_output_shape_still_parses():
    st = parse_state(Result(0, f"done\n{MARK}\n" + json.dumps({"state": "healthy"}) + "\n", ""))
    assert st.cloud_init == "done" and st.health == {"state": "healthy"} and st.failure() is None


# ---------------------------------------------------------------- one verdict


def test_the_instances_failure_wins_over_healthy_from_here():
    st = parse_state(machine_output("done", health=APP_DOWN, pull=PULL_FAILED))
    v = verdict(st, (True, "http://127.0.0.1:8080/ -> HTTP 200"), has_check=True)
    assert v.state == "unhealthy" and v.source == "instance" and v.failure.kind == "image-pull"


def test_healthy_from_here_once_cloud_init_is_over_there():
    ok = (True, "http://127.0.0.1:8080/ -> HTTP 200")
    assert verdict(None, ok, True).state == "healthy"  # no record read (no SSH): this machine decides
    booting = parse_state(machine_output("running"))
    v = verdict(booting, ok, True)
    assert v.state == "waiting" and "cloud-init still running" in v.detail
    v = verdict(parse_state(machine_output("done")), ok, True)
    assert (v.state, v.source) == ("healthy", "this machine")


def test_healthy_on_the_instance_but_not_from_here_keeps_waiting_and_says_both():
    st = parse_state(machine_output("done", health={"state": "healthy", "attempt": 3, "max_retries": 60}))
    v = verdict(st, (False, "tcp 127.0.0.1:8080: Connection refused"), True)
    assert v.state == "waiting" and v.detail == ("healthy on the instance, but from this machine: "
                                                 "tcp 127.0.0.1:8080: Connection refused")
    assert verdict(st, None, True).state == "healthy"  # no probe from here: the instance's check decides


def test_without_a_check_the_machine_is_running_once_cloud_init_is_done():
    assert verdict(parse_state(machine_output("running")), None, False).state == "waiting"
    assert verdict(parse_state(machine_output("done")), None, False).state == "running"
    assert verdict(parse_state(machine_output("done", pull=PULL_FAILED)), None, False).state == "unhealthy"
