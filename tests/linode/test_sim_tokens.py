"""Scoped, expiring Personal Access Tokens (issue 23 item 6): the simulator serves /profile/tokens as the spec
(OpenAPI 4.189.0) says and checks every request a minted token makes (expired, revoked or out of scope: 401);
lcai_linode.tokens mints and revokes them through the provider's HTTP layer without ever showing the secret."""

import json
import os
import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lcai_core.api import InputError, LcaiError
from lcai_linode.api import make_client
from lcai_linode.provider import LinodeProvider
from lcai_linode.tokens import mint_token, revoke_token
from lcai_testing.linode import sim_tokens
from lcai_testing.linode.simulator import Simulator

SPEC = Path(os.environ.get("LCAI_LINODE_SPEC", "/work/shared/reference/linode-openapi-4.189.0.json"))
INSTANCE = {"label": "tok-web-1", "region": "us-ord", "type": "g6-nanode-1", "image": "linode/ubuntu24.04",
            "root_pass": "Aa1!aaaaaaaa"}


def call(sim, method, path, body=None, token="sim-token"):
    """(status, parsed body, raw text) of one API request with this token."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(sim.url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read().decode()
            return r.status, json.loads(raw or "null"), raw
    except urllib.error.HTTPError as e:
        raw = e.read().decode()
        return e.code, json.loads(raw or "null"), raw


def sim_now(sim) -> datetime:
    return datetime.fromisoformat(sim._call("GET", "/_sim/clock")["now"]).replace(tzinfo=timezone.utc)


def an_instance(sim) -> int:
    status, inst, raw = call(sim, "POST", "/linode/instances", INSTANCE)
    assert status == 200, raw
    return inst["id"]


def test_a_linodes_token_reads_and_deletes_an_instance_and_nothing_else(sim):
    lid = an_instance(sim)
    tid, secret = mint_token(LinodeProvider(), "lcai-stop-web", "linodes:read_write",
                             sim_now(sim) + timedelta(hours=1))
    assert isinstance(tid, int) and len(secret) >= 32
    (listed,) = sim.state()["tokens"]
    assert listed["id"] == tid and listed["scopes"] == "linodes:read_write" and listed["label"] == "lcai-stop-web"
    assert listed["expiry"] == (sim_now(sim) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")

    status, got, raw = call(sim, "GET", f"/linode/instances/{lid}", token=secret)
    assert status == 200 and got["id"] == lid, raw
    denied = "Your OAuth token is not authorized to use this endpoint."
    for method, path, body in [("POST", "/volumes", {"label": "data", "region": "us-ord"}),
                               ("GET", "/volumes", None),
                               ("POST", "/networking/firewalls", {"label": "fw-x", "rules": {}}),
                               ("DELETE", "/networking/firewalls/1", None),
                               ("POST", "/profile/tokens", {"label": "more", "scopes": "linodes:read_write"})]:
        status, err, raw = call(sim, method, path, body, token=secret)
        assert status == 401 and err == {"errors": [{"reason": denied}]}, (method, path, raw)
    # the refused writes did nothing; the instance's own DELETE goes through
    assert sim.state()["volumes"] == [] and sim.state()["firewalls"] == [] and len(sim.state()["tokens"]) == 1
    status, got, raw = call(sim, "DELETE", f"/linode/instances/{lid}", token=secret)
    assert status == 200 and got == {}, raw
    assert sim.state()["instances"] == []
    # the same token through linode_api4 (the provider's HTTP layer)
    assert make_client(token=secret, url=sim.url).get("/linode/instances")["results"] == 0


def test_a_revoked_token_answers_401_at_once(sim):
    provider = LinodeProvider()
    tid, secret = mint_token(provider, "lcai-stop-rev", "linodes:read_only", None)
    assert call(sim, "GET", "/linode/instances", token=secret)[0] == 200
    assert revoke_token(provider, tid) is True
    status, err, raw = call(sim, "GET", "/linode/instances", token=secret)
    assert status == 401 and err["errors"][0]["reason"] == "Invalid Token", raw
    assert call(sim, "GET", f"/profile/tokens/{tid}")[0] == 404
    assert sim.state()["tokens"] == []
    # the simulator's own token works exactly as before; a wrong one still is 401
    assert call(sim, "GET", "/linode/instances")[0] == 200
    assert call(sim, "GET", "/linode/instances", token="not-a-token")[0] == 401
    assert call(sim, "GET", "/linode/instances", token=None)[0] == 401


def test_an_expired_token_answers_401_once_the_clock_passes_its_expiry(sim):
    lid = an_instance(sim)
    tid, secret = mint_token(LinodeProvider(), "lcai-stop-exp", ["linodes:read_write"],
                             (sim_now(sim) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert call(sim, "GET", f"/linode/instances/{lid}", token=secret)[0] == 200
    sim._call("POST", "/_sim/clock", {"advance_s": 3500})
    assert call(sim, "GET", f"/linode/instances/{lid}", token=secret)[0] == 200  # not yet
    sim._call("POST", "/_sim/clock", {"advance_s": 101})
    status, err, raw = call(sim, "DELETE", f"/linode/instances/{lid}", token=secret)
    assert status == 401 and err["errors"][0]["reason"] == "Invalid Token", raw
    assert len(sim.state()["instances"]) == 1
    assert sim.state()["tokens"][0]["expired"] is True
    assert call(sim, "GET", "/profile/tokens")[1]["results"] == 0  # the list shows the active tokens
    sim._call("POST", "/_sim/reset")
    assert sim._call("GET", "/_sim/clock")["offset_s"] == 0


def test_an_injected_clock_decides_expiry():
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    with Simulator(provision_s=0, boot_s=0, serve_health=False, wall_clock=lambda: now[0]) as s:
        status, tok, raw = call(s, "POST", "/profile/tokens", {"label": "t", "scopes": "linodes:read_only",
                                                              "expiry": "2030-01-01T00:10:00"})
        assert status == 200 and tok["created"] == "2030-01-01T00:00:00", raw
        assert call(s, "GET", "/linode/instances", token=tok["token"])[0] == 200
        now[0] += timedelta(minutes=10)
        assert call(s, "GET", "/linode/instances", token=tok["token"])[0] == 401


def test_minting_beyond_the_minters_scopes_or_into_the_past_is_400(sim):
    status, minter, raw = call(sim, "POST", "/profile/tokens",
                               {"label": "minter", "scopes": "account:read_write linodes:read_only"})
    assert status == 200, raw
    status, err, raw = call(sim, "POST", "/profile/tokens", {"label": "wider", "scopes": "linodes:read_write"},
                            token=minter["token"])
    assert status == 400 and err["errors"][0]["field"] == "scopes", raw
    assert "linodes:read_write" in err["errors"][0]["reason"]
    with pytest.raises(LcaiError) as e:
        mint_token(make_client(token=minter["token"], url=sim.url), "wider", "volumes:read_only", None)
    assert "refused by the Linode API (400)" in str(e.value) and "volumes:read_only" in str(e.value)
    # within its scopes it can; '*' gives the minter's own scopes
    status, narrow, raw = call(sim, "POST", "/profile/tokens", {"label": "narrow", "scopes": "linodes:read_only"},
                               token=minter["token"])
    assert status == 200 and narrow["scopes"] == "linodes:read_only", raw
    status, same, raw = call(sim, "POST", "/profile/tokens", {"label": "same", "scopes": "*"}, token=minter["token"])
    assert status == 200 and same["scopes"] == "account:read_write linodes:read_only", raw
    assert call(sim, "DELETE", f"/linode/instances/{an_instance(sim)}", token=same["token"])[0] == 401
    # no expiry in the past, no scope the API does not have
    past = (sim_now(sim) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    status, err, raw = call(sim, "POST", "/profile/tokens", {"label": "old", "scopes": "*", "expiry": past})
    assert status == 400 and err["errors"][0]["field"] == "expiry", raw
    status, err, raw = call(sim, "POST", "/profile/tokens", {"label": "odd", "scopes": "linodes:admin"})
    assert status == 400 and err["errors"][0]["field"] == "scopes", raw
    assert {t["label"] for t in sim.state()["tokens"]} == {"minter", "narrow", "same"}
    with pytest.raises(InputError):  # refused before any request
        mint_token(LinodeProvider(), "bad", "linodes:everything", None)


def test_the_secret_is_shown_only_in_the_create_reply(sim, capsys):
    status, tok, raw = call(sim, "POST", "/profile/tokens", {"label": "once", "scopes": "linodes:read_only"})
    assert status == 200 and len(tok["token"]) > 16 and tok["token"] in raw
    secret = tok["token"]
    later = [call(sim, "GET", "/profile/tokens")[2], call(sim, "GET", f"/profile/tokens/{tok['id']}")[2],
             json.dumps(sim.state()), json.dumps(sim.requests())]
    assert json.loads(later[0])["data"][0]["token"] == secret[:16]
    assert json.loads(later[1])["token"] == secret[:16]
    assert not any(secret in text for text in later)
    # and lcai's side says it nowhere: not in a retry line, not in an error
    sim.fault(method="POST", path="/profile/tokens$", status=503, times=1)
    tid, secret2 = mint_token(LinodeProvider(), "lcai-stop-log", "linodes:read_only", None)
    err = capsys.readouterr().err
    assert "retrying: minting API token lcai-stop-log" in err and secret2 not in err
    sim.fault(method="POST", path="/profile/tokens$", action="body", status=200, times=6,
              body={"token": "f" * 64, "label": "x"})
    with pytest.raises(LcaiError) as e:
        mint_token(LinodeProvider(), "lcai-stop-body", "linodes:read_only", None)
    assert "without the token's id and secret" in str(e.value)
    assert "f" * 16 not in str(e.value) + (e.value.hint or "") + capsys.readouterr().err


def test_a_lost_reply_leaves_exactly_one_token(sim, capsys):
    sim.fault(method="POST", path="/profile/tokens$", status=500, when="after", times=1)
    tid, secret = mint_token(LinodeProvider(), "lcai-stop-lost", "linodes:read_only", None)
    tokens = [t for t in sim.state()["tokens"] if t["label"] == "lcai-stop-lost"]
    assert [t["id"] for t in tokens] == [tid], tokens  # the one the lost reply minted is revoked
    assert call(sim, "GET", "/linode/instances", token=secret)[0] == 200
    assert secret not in capsys.readouterr().err


def test_revoking_an_unknown_token_is_quiet(sim, capsys):
    assert revoke_token(LinodeProvider(), 12345) is False
    assert revoke_token(make_client(url=sim.url), 12345) is False
    assert capsys.readouterr().err == ""
    assert [(r["method"], r["path"]) for r in sim.requests()] == [("DELETE", "/profile/tokens/12345")] * 2


def test_required_scopes_are_the_specs():
    """Each operation the simulator serves needs the scopes its ``security`` in the OpenAPI document names."""
    if not SPEC.exists():
        pytest.skip(f"the Linode OpenAPI document is not at {SPEC} (LCAI_LINODE_SPEC)")
    spec = json.loads(SPEC.read_text())
    ops = []
    for p, item in spec["paths"].items():
        path = p.replace("/{apiVersion}", "")
        for m, op in item.items():
            if m in ("get", "post", "put", "delete"):
                oauth = next((s["oauth"] for s in op.get("security") or [] if "oauth" in s), [])
                ops.append((m.upper(), path, tuple(sorted(oauth)) or None))

    def spec_scopes(method, path):
        for m, p, scopes in ops:
            pattern = re.sub(r"\{[^}]+\}", r"[^/]+", p.replace("{imageId}", "[^/]+/[^/]+"))
            if m == method and re.fullmatch(pattern, path):
                return scopes
        raise AssertionError(f"{method} {path} is not in the spec")

    served = [("GET", "/profile"), ("GET", "/regions"), ("GET", "/regions/x"), ("GET", "/linode/types"),
              ("GET", "/linode/types/x"), ("GET", "/images"), ("GET", "/images/linode/x"),
              ("GET", "/linode/instances"), ("POST", "/linode/instances"), ("GET", "/linode/instances/1"),
              ("PUT", "/linode/instances/1"), ("DELETE", "/linode/instances/1"),
              ("POST", "/linode/instances/1/rebuild"), ("POST", "/linode/instances/1/boot"),
              ("POST", "/linode/instances/1/reboot"), ("POST", "/linode/instances/1/shutdown"),
              ("GET", "/linode/instances/1/ips"), ("POST", "/linode/instances/1/ips"),
              ("GET", "/linode/instances/1/firewalls"), ("GET", "/linode/instances/1/nodebalancers"),
              ("GET", "/linode/instances/1/volumes"),
              ("GET", "/networking/firewalls"), ("POST", "/networking/firewalls"),
              ("GET", "/networking/firewalls/1"), ("PUT", "/networking/firewalls/1"),
              ("DELETE", "/networking/firewalls/1"), ("GET", "/networking/firewalls/1/rules"),
              ("PUT", "/networking/firewalls/1/rules"), ("GET", "/networking/firewalls/1/devices"),
              ("POST", "/networking/firewalls/1/devices"), ("GET", "/networking/firewalls/1/devices/2"),
              ("DELETE", "/networking/firewalls/1/devices/2"), ("GET", "/account/events"),
              ("GET", "/nodebalancers"), ("POST", "/nodebalancers"), ("GET", "/nodebalancers/types"),
              ("GET", "/nodebalancers/1"), ("PUT", "/nodebalancers/1"), ("DELETE", "/nodebalancers/1"),
              ("GET", "/nodebalancers/1/configs"), ("POST", "/nodebalancers/1/configs/2/nodes"),
              ("DELETE", "/nodebalancers/1/configs/2/nodes/3"),
              ("GET", "/volumes"), ("POST", "/volumes"), ("GET", "/volumes/types"), ("GET", "/volumes/1"),
              ("PUT", "/volumes/1"), ("DELETE", "/volumes/1"), ("POST", "/volumes/1/attach"),
              ("POST", "/volumes/1/detach"), ("POST", "/volumes/1/resize"),
              ("GET", "/profile/tokens"), ("POST", "/profile/tokens"), ("GET", "/profile/tokens/1"),
              ("PUT", "/profile/tokens/1"), ("DELETE", "/profile/tokens/1")]
    wrong = {}
    for method, path in served:
        ours = sim_tokens.required(method, path)
        ours = tuple(sorted(ours)) if ours else None
        if ours != spec_scopes(method, path):
            wrong[(method, path)] = (ours, spec_scopes(method, path))
    assert wrong == {}
    # and the simulator holds each request to them: a token of another product gets 401, one with exactly the
    # spec's scopes gets past the check (to a 404 for the made-up ids, a 400 for the empty bodies, ...)
    with Simulator(provision_s=0, boot_s=0, serve_health=False) as s:
        other = call(s, "POST", "/profile/tokens", {"label": "other", "scopes": "lke:read_only"})[1]["token"]
        for method, path in served:
            needed = spec_scopes(method, path)
            body = {} if method in ("POST", "PUT") else None
            status, _, raw = call(s, method, path, body, token=other)
            assert (status == 401) == (needed is not None), (method, path, raw)
            if needed:
                exact = call(s, "POST", "/profile/tokens", {"label": "exact", "scopes": " ".join(needed)})[1]
                status, _, raw = call(s, method, path, body, token=exact["token"])
                assert status not in (401, 501), (method, path, needed, raw)
