"""Who may connect is the firewall's business, not the disk's: a redeploy that changes only `--ssh-from` or
`--app-from` updates the Cloud Firewall in place (`PUT /networking/firewalls/{id}/rules`, read back) and never
rebuilds; one that leaves the flags out keeps what the live deployment lets in; a new public port reaches the
firewall as well as the machine."""

import re

from lcai_core.registry import Registry


def _writes(sim):
    return [(r["method"], r["path"]) for r in sim.requests() if r["method"] in ("POST", "PUT", "DELETE")]


def _inbound(sim):
    (fw,) = sim.state()["firewalls"]
    return {r["ports"]: sorted((r["addresses"].get("ipv4") or []) + (r["addresses"].get("ipv6") or []))
            for r in fw["rules"]["inbound"]}


def test_flags_left_out_keep_the_live_sources_and_rebuild_nothing(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7")[0] == 0
    assert _inbound(sim)["22"] == ["203.0.113.7/32"]
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0 and "nothing changed" in err + out, err
    assert _writes(sim) == [], "an unchanged deploy.yml sends nothing"
    assert _inbound(sim)["22"] == ["203.0.113.7/32"], "SSH was not opened to everyone"


def test_a_changed_source_updates_the_firewall_in_place(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    fw_id = Registry().get(dep)["provider_state"]["firewall_id"]
    assert _inbound(sim)["22"] == ["0.0.0.0/0", "::/0"]
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7", "--app-from", "198.51.100.0/24")
    assert code == 0, err
    assert "update its firewall in place (the machine is not rebuilt" in err, err
    assert _writes(sim) == [("PUT", f"/networking/firewalls/{fw_id}/rules")], "no rebuild, one rules update"
    rules = _inbound(sim)
    assert rules["22"] == ["203.0.113.7/32"] and rules[str(re.search(r"external_port: (\d+)", (
        svc / "deploy.yml").read_text()).group(1))] == ["198.51.100.0/24"]
    rec = Registry().get(dep)
    assert rec["ssh_sources"] == ["203.0.113.7/32"] and rec["app_sources"] == ["198.51.100.0/24"]
    assert rec.get("rebuilt_at") is None
    sim.clear_requests()  # applied and recorded: the same flags again change nothing
    assert lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7", "--app-from", "198.51.100.0/24")[0] == 0
    assert _writes(sim) == []


def test_a_new_public_port_is_opened_with_the_rebuild(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    text = (svc / "deploy.yml").read_text()
    old = re.search(r"external_port: (\d+)", text).group(1)
    new = str(int(old) + 1)
    (svc / "deploy.yml").write_text(text.replace(f"external_port: {old}", f"external_port: {new}"))
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes")
    assert code == 0, err
    writes = _writes(sim)
    assert writes[0][0] == "PUT" and writes[0][1].endswith("/rules") and any(p.endswith("/rebuild") for _, p in writes)
    rules = _inbound(sim)
    assert new in rules and old not in rules, rules


def test_a_failed_rules_update_is_not_recorded(sim, svc, lcai):
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    dep = next(iter(Registry().all()))
    sim.fault(method="PUT", path="/rules$", status=400, reason="rules refused", times=1)
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7")
    assert code != 0 and "the firewall of deployment" in err and "was not changed" in err, err
    assert Registry().get(dep)["ssh_sources"] == ["0.0.0.0/0", "::/0"], "not recorded as applied"
    assert _inbound(sim)["22"] == ["0.0.0.0/0", "::/0"]


def test_replicas_get_the_new_ssh_sources_and_keep_the_app_port_to_the_nodebalancer(sim, svc, lcai, monkeypatch):
    monkeypatch.setenv("LCAI_DRAIN_SECONDS", "0.05")
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n", "    tags: [team-ml]\n    replicas: 2\n"))
    assert lcai("deploy", "-d", svc, "--yes")[0] == 0
    port = re.search(r"external_port: (\d+)", text).group(1)
    before = _inbound(sim)[port]
    sim.clear_requests()
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--ssh-from", "203.0.113.7")
    assert code == 0, err
    assert [m for m, p in _writes(sim)] == ["PUT"], _writes(sim)
    assert _inbound(sim)["22"] == ["203.0.113.7/32"] and _inbound(sim)[port] == before == ["192.168.255.0/24"]
