"""What a new user meets in the first hour with the deployment commands: one clear line for every error (exit 2
bad input, 1 runtime failure, never a traceback), retries said as they happen, nothing left behind."""

import json
import re
import time

import pytest

from lcai_core.registry import Registry


def one_error(err: str) -> str:
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_rejected_token_is_one_line_everywhere(sim, svc, lcai, monkeypatch):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    monkeypatch.setenv("LINODE_TOKEN", "wrong")
    for args in (("destroy", dep, "--yes"), ("sync",)):
        code, out, err = lcai(*args)
        assert code == 2, (args, err)
        assert "the Linode API rejected the token (401)" in one_error(err) and "wrong" not in err
    code, out, err = lcai("status")  # the registry is still shown, and it says why the API was not used
    assert code == 2 and dep in out, "a script can tell: the rows are the registry's, not live (issue 21 #16)"
    assert "warning: linode was not reached" in err and "rejected the token (401)" in err
    assert one_error(err).startswith("error: linode refused the credentials")
    code, out, err = lcai("status", dep)
    assert code == 2 and "rejected the token" in out + err
    code, out, err = lcai("status", "--json")
    assert code == 2 and json.loads(out)["sources"]["linode"]["refused"] is True
    assert Registry().get(dep) is not None  # nothing lost


def test_unreachable_local_api_fails_fast_naming_the_url(sim, svc, lcai, monkeypatch):
    monkeypatch.setenv("LCAI_LINODE_API_URL", "http://127.0.0.1:9/v4")
    monkeypatch.setenv("LCAI_RETRY_DELAY", "1")
    t0 = time.monotonic()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert time.monotonic() - t0 < 5
    line = one_error(err)
    assert code == 1 and "http://127.0.0.1:9/v4" in line and "connection refused" in line
    assert Registry().all() == {}
    # an empty registry and no API: not a silent "no deployments"
    code, out, err = lcai("status")
    assert code == 0 and "no deployments" in out and "warning: linode was not reached" in err


def test_retries_are_said_as_they_happen(sim, svc, lcai):
    sim.fault(method="GET", path="/profile$", status=503, reason="Service Unavailable", times=2)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    retries = [x for x in err.splitlines() if x.startswith("retrying: checking the token")]
    assert len(retries) == 2 and "HTTP 503" in retries[0] and "attempt 1/6" in retries[0]


def test_bad_options_refused_before_any_request(sim, svc, lcai):
    for args, words in ((("--timeout", "-5"), "--timeout"), (("--ssh-from", "banana"), "--ssh-from 'banana'"),
                        (("--ssh-from", "10.0.0.0/33"), "10.0.0.0/33"), (("--app-from", "1.2.3"), "--app-from")):
        sim.clear_requests()
        code, out, err = lcai("deploy", "-d", svc, "--yes", *args)
        assert code == 2 and words in err, (args, err)
        assert sim.requests() == []
    # a bare address is one host
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7", "--app-from", "2001:db8::1")
    assert code == 0, err
    rules = sim.state()["firewalls"][0]["rules"]["inbound"]
    assert rules[0]["addresses"] == {"ipv4": ["203.0.113.7/32"]}
    assert rules[1]["addresses"] == {"ipv6": ["2001:db8::1/128"]}
    assert "open to the whole internet" not in err


def test_plain_http_to_the_whole_internet_is_said(sim, svc, lcai):
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0 and "open to the whole internet" in err and "--app-from" in err


class Tty:
    def __init__(self, answer):
        self.answer = answer

    def isatty(self):
        return True

    def readline(self):
        if self.answer is KeyboardInterrupt:
            raise KeyboardInterrupt
        return self.answer


@pytest.mark.parametrize("answer,code,words", [("n\n", 1, "not confirmed: nothing was changed"),
                                               (KeyboardInterrupt, 130, "interrupted: nothing was created")])
def test_declining_is_not_an_interrupt(sim, svc, lcai, monkeypatch, answer, code, words):
    import builtins

    monkeypatch.setattr("sys.stdin", Tty(answer))

    def fake_input(prompt=""):
        return Tty(answer).readline().rstrip("\n")

    monkeypatch.setattr(builtins, "input", fake_input)
    got, out, err = lcai("deploy", "-d", svc)
    assert got == code and words in err, err
    assert sim.state()["instances"] == [] and Registry().all() == {}
    assert "^C" not in err and "aborted" not in err


def test_purge_removes_what_is_left_of_a_vanished_deployment(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    sim.sim.state.instances.clear()  # deleted in the Cloud Manager; its firewall stays on the account
    assert len(sim.state()["firewalls"]) == 1
    fw = sim.state()["firewalls"][0]["id"]
    code, out, err = lcai("destroy", "--purge")  # off a terminal, without --yes: says what it would delete
    assert code == 2 and f"purge deletes {next(iter(Registry().all()))}: delete firewall {fw}" in err, err
    assert len(sim.state()["firewalls"]) == 1 and Registry().all()
    code, out, err = lcai("destroy", "--purge", "--yes")
    assert code == 0 and "purged 1" in out and "firewall" in err
    assert sim.state()["firewalls"] == [] and Registry().all() == {}


def test_purge_never_deletes_an_instance_a_direct_lookup_finds(sim, svc, lcai):
    """Someone removed the `lcai` tags in the Cloud Manager: the tag-filtered list misses the instance and
    `status` calls it vanished, but it runs. Purge looks it up by id and keeps it, and everything with it."""
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    inst = sim.sim.state.instances[next(iter(sim.sim.state.instances))]
    inst["tags"] = []
    assert "vanished" in lcai("status")[1]
    sim.clear_requests()
    code, out, err = lcai("destroy", "--purge", "--yes")
    assert code == 0 and "purged 0" in out, out + err
    assert f"{dep} is not gone: instance {inst['id']} (" in err and "without its tag" in err, err
    assert not [r for r in sim.requests() if r["method"] == "DELETE"], "nothing was deleted"
    assert len(sim.state()["instances"]) == 1 and len(sim.state()["firewalls"]) == 1 and Registry().get(dep)


def test_purge_keeps_a_deployment_whose_lookup_fails(sim, svc, lcai):
    """A failing direct lookup (a 500 for GET /linode/instances/{id}) is not proof of absence."""
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    lid = Registry().get(dep)["provider_state"]["linode_id"]
    sim.sim.state.instances.clear()
    sim.fault(method="GET", path=f"/linode/instances/{lid}$", status=500, times=50)
    code, out, err = lcai("destroy", "--purge", "--yes")
    assert code == 1 and "purged 0" in out and f"{dep} (not checked" in err, err
    assert Registry().get(dep) and len(sim.state()["firewalls"]) == 1


def test_rough_edges(sim, svc, lcai, tmp_path):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    linode_id = Registry().get(dep)["provider_state"]["linode_id"]
    # a Linode id where a deployment id belongs
    code, out, err = lcai("destroy", str(linode_id), "--yes")
    assert code == 2 and f"is the linode id of deployment {dep}" in one_error(err) and dep in err
    # unknown region/type: the valid choices
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("region_default: us-ord", "region_default: us-nowhere"))
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--new")
    assert code == 2 and "region us-nowhere does not exist" in err and "us-ord" in err.split("hint:")[1]
    # status columns stay aligned with a long status
    code, out, err = lcai("status")
    header, *rows = out.splitlines()
    assert all(row.index(dep) == 0 for row in rows)
    col = header.index("STATUS")
    assert all(re.match(r"\S", row[col:]) for row in rows)


def test_logs_hint_when_deploy_saved_a_password(sim, svc, lcai, fake_ssh):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0  # no ~/.ssh/*.pub: a root password was saved
    fake_ssh.deny()
    code, out, err = lcai("logs", "-d", svc)
    assert code == 1 and "Permission denied" in one_error(err)
    assert "saved a root password" in err and ".linode/root-password" in err


@pytest.mark.parametrize("body,words", [
    ("<html>502 Bad Gateway</html>", "not JSON"),
    ({"data": [], "page": 1, "pages": 99999, "results": 0}, "pages=99999"),
    ({"data": [], "page": 1, "pages": "3", "results": 0}, "pages='3'"),
])
def test_a_broken_list_reply_shows_the_registry_with_a_warning(sim, svc, lcai, body, words):
    """A 200 that is not JSON, or an absurd `pages`, is a warning and the registry's rows, in a few requests."""
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    sim.fault(method="GET", path="/linode/instances$", status=200, action="body", body=body, times=5)
    sim.clear_requests()
    code, out, err = lcai("status", "--all")
    assert code == 0 and dep in out and "was not reached" in err and words in err, err
    assert len(sim.requests()) <= 5


def test_a_full_disk_is_one_line_and_creates_nothing(sim, svc, lcai, monkeypatch):
    """The registry cannot be written (disk full) when deploy records its intent: one line, exit 1, nothing
    created in the cloud — never "internal error … report it"."""
    import errno

    from lcai_core import files

    real = files.write_private

    def full(path, text):
        if str(path).endswith("registry.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(files, "write_private", full)
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "No space left on device writing" in errors[0], err
    assert "registry.json" in errors[0] and "internal error" not in err
    assert sim.state()["instances"] == [] and sim.state()["firewalls"] == []


def test_status_shows_the_default_hostname(sim, svc, lcai):
    """The instance's default reverse-DNS name (a-b-c-d.ip.linodeusercontent.com) is recorded and shown."""
    assert lcai("deploy", "-d", svc, "--yes", "--wait", "--timeout", "20")[0] == 0
    dep = next(iter(Registry().all()))
    addr = Registry().get(dep)["address"]
    host = addr.replace(".", "-") + ".ip.linodeusercontent.com"
    assert Registry().get(dep)["provider_state"]["hostname"] == host
    code, out, err = lcai("status", dep)
    assert re.search(rf"^hostname\s+{re.escape(host)}$", out, re.M), out


def test_without_a_key_connect_sh_can_use_the_saved_password(sim, svc, lcai):
    """No ~/.ssh/*.pub: deploy saves a root password; connect.sh lets ssh ask for it (no BatchMode), and the
    summary says where it is and what needs a key (issue 21 #14)."""
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    assert (svc / ".linode" / "root-password").is_file()
    script = (svc / "connect.sh").read_text()
    assert "BatchMode" not in script and "asks for root's password" in script
    assert "root's password is in" in out and "need a key" in out
