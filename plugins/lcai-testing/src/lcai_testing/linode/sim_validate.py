"""Request validation of the Linode API simulator, rule by rule from the OpenAPI document (4.189.0).

Every function returns a list of ``{"field": ..., "reason": ...}`` errors (empty when the input is valid), so a
handler can collect all problems of one request into the API's error envelope ``{"errors": [...]}`` (HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from typing import Any

Errors = list  # of {"field": str, "reason": str}

# spec (Firewall.label, Linode.label): begin with a letter, then letters/digits/-_. with no --, __ or ..
LABEL_RE = re.compile(r"^[a-zA-Z]((?!--|__|\.\.)[a-zA-Z0-9-_.])+$")
# spec NodeBalancer.label: [a-zA-Z0-9-_]{3,32}; NodeBalancerNode.label: [a-zA-Z0-9-_.]{3,32}
NB_LABEL_RE = re.compile(r"^[a-zA-Z0-9-_]{3,32}$")
NB_NODE_LABEL_RE = re.compile(r"^[a-zA-Z0-9-_.]{3,32}$")
# spec NodeBalancerConfig.check_path
CHECK_PATH_RE = re.compile(r"^[a-zA-Z0-9/\-%?&=.]*$")

# spec (SSH key "Accepted formats"): ssh-dss, ssh-rsa, ecdsa-sha2-nistp*, ssh-ed25519,
# sk-ecdsa-sha2-nistp256 (Akamai-specific). Not sk-ssh-ed25519@openssh.com.
SSH_KEY_TYPES = ("ssh-dss", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "ssh-ed25519", "sk-ecdsa-sha2-nistp256@openssh.com")

FIREWALL_MAX_RULES = 25       # spec Firewall.rules: "up to 25 rules across its inbound and outbound rulesets"
RULE_MAX_ADDRESSES = 255      # spec rule.addresses: "up to 255 total addresses or networks"
RULE_MAX_PORT_PIECES = 15     # spec rule.ports: "up to 15 pieces ... a port range is treated as two pieces"
PORT_PIECE_RE = re.compile(r"^([1-9][0-9]{0,4})(?:-([1-9][0-9]{0,4}))?$")


def error(field: str | None, reason: str) -> dict:
    return {"reason": reason, **({"field": field} if field else {})}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_label(v: Any, field: str = "label", lo: int = 3, hi: int = 64) -> Errors:
    if not isinstance(v, str) or not lo <= len(v) <= hi:
        return [error(field, f"Length must be {lo}-{hi} characters")]
    if not LABEL_RE.match(v) or not v[-1].isalnum():
        return [error(field, "Label must begin with a letter and end with a letter or number, and contain only "
                             "letters, numbers, hyphens, underscores or periods, with no --, __ or .. in a row")]
    return []


def check_tags(v: Any, field: str = "tags") -> Errors:
    """Tags: a list of strings of 3-50 characters (spec: Tag.label minLength 3, maxLength 50)."""
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        return [error(field, "Must be a list of strings")]
    return [error(field, f"Length must be 3-50 characters: {t!r}") for t in v if not 3 <= len(t) <= 50]


def check_ssh_key(key: Any, field: str = "authorized_keys") -> Errors:
    """An OpenSSH public key line: ``TYPE BASE64 [comment]``, TYPE one the API accepts, BASE64 a valid key blob
    whose first length-prefixed string repeats TYPE (what ``ssh-keygen -l`` checks)."""
    if not isinstance(key, str) or not key.strip():
        return [error(field, "SSH key must be a non-empty string")]
    parts = key.strip().split(None, 2)
    if parts[0] not in SSH_KEY_TYPES:
        return [error(field, f"SSH key type {parts[0][:40]!r} is not accepted; use one of "
                             "ssh-dss, ssh-rsa, ecdsa-sha2-nistp, ssh-ed25519, sk-ecdsa-sha2-nistp256")]
    if len(parts) < 2:
        return [error(field, "SSH key has no key data")]
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (n,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + n].decode("ascii")
    except (binascii.Error, ValueError, struct.error, UnicodeDecodeError):
        return [error(field, "SSH key data is not valid base64")]
    if inner != parts[0] or len(blob) < 4 + n + 4:
        return [error(field, "SSH key data does not match its key type")]
    return []


def check_authorized_keys(v: Any, field: str = "authorized_keys") -> Errors:
    if v is None:
        return []
    if not isinstance(v, list):
        return [error(field, "Must be a list of SSH public keys")]
    out: Errors = []
    for k in v:
        out += check_ssh_key(k, field)
    return out


def check_network(value: Any, version: int, field: str) -> Errors:
    """An address in IP/mask format (spec: "Addresses must be in IP/mask format"; IPv6 without a zone id)."""
    if not isinstance(value, str) or "/" not in value:
        return [error(field, f"{value!r} is not an IPv{version} address in IP/mask format")]
    ip, _, mask = value.partition("/")
    if "%" in ip:
        return [error(field, f"{value!r}: zone ids are not allowed")]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return [error(field, f"{value!r} is not a valid IPv{version} address")]
    top = 32 if version == 4 else 128
    if addr.version != version:
        return [error(field, f"{value!r} is not an IPv{version} address")]
    if not re.fullmatch(r"0|[1-9][0-9]{0,2}", mask) or int(mask) > top:
        return [error(field, f"{value!r}: the mask must be 0-{top}")]
    return []


def check_ports(ports: Any, field: str) -> Errors:
    """spec rule.ports: one port, a range (end > start), or a comma-separated list (one space allowed after a
    comma); 1-65535, no leading zeros; at most 15 pieces (a range counts 2)."""
    if not isinstance(ports, str) or not ports:
        return [error(field, "Must be a string of ports, such as \"22\", \"80-443\" or \"22, 80, 443\"")]
    pieces = re.split(r", ?", ports)
    count = 0
    for p in pieces:
        g = PORT_PIECE_RE.match(p)
        if not g:
            return [error(field, f"Invalid port or range {p!r} (ports 1-65535, no leading zeros, 'low-high')")]
        lo, hi = int(g.group(1)), int(g.group(2)) if g.group(2) else None
        for n in (lo, hi):
            if n is not None and not 1 <= n <= 65535:
                return [error(field, f"Port {n} is out of range 1-65535")]
        if hi is not None and hi <= lo:
            return [error(field, f"Invalid range {p!r}: the end must be greater than the start")]
        count += 2 if hi is not None else 1
    if count > RULE_MAX_PORT_PIECES:
        return [error(field, f"Too many ports: {count} pieces, at most {RULE_MAX_PORT_PIECES} "
                             "(a range counts as two)")]
    return []


RULE_KEYS = {"action", "protocol", "addresses", "ports", "label", "description"}


def check_rule(rule: Any, where: str) -> Errors:
    if not isinstance(rule, dict):
        return [error(where, "A rule must be an object")]
    out: Errors = []
    for k in sorted(set(rule) - RULE_KEYS):
        out.append(error(f"{where}.{k}", "Unknown field"))
    if rule.get("action") not in ("ACCEPT", "DROP"):
        out.append(error(f"{where}.action", "Must be one of ACCEPT, DROP"))
    proto = rule.get("protocol")
    if proto not in ("TCP", "UDP", "ICMP", "IPENCAP"):
        out.append(error(f"{where}.protocol", "Must be one of TCP, UDP, ICMP, IPENCAP"))
    addrs = rule.get("addresses")
    if not isinstance(addrs, dict) or not (set(addrs) & {"ipv4", "ipv6"}):
        out.append(error(f"{where}.addresses", "Must contain ipv4, ipv6, or both"))
    else:
        for k in sorted(set(addrs) - {"ipv4", "ipv6"}):
            out.append(error(f"{where}.addresses.{k}", "Unknown field"))
        total = 0
        for fam, version in (("ipv4", 4), ("ipv6", 6)):
            if fam not in addrs:
                continue
            lst = addrs[fam]
            if not isinstance(lst, list) or not lst:
                out.append(error(f"{where}.addresses.{fam}", "Must not be an empty list"))
                continue
            total += len(lst)
            for i, a in enumerate(lst):
                out += check_network(a, version, f"{where}.addresses.{fam}[{i}]")
        if total > RULE_MAX_ADDRESSES:
            out.append(error(f"{where}.addresses", f"Too many addresses: {total}, at most {RULE_MAX_ADDRESSES} "
                                                   "per rule across ipv4 and ipv6"))
    ports = rule.get("ports")
    if ports is not None:
        if proto in ("ICMP", "IPENCAP"):
            out.append(error(f"{where}.ports", "Ports are only allowed for the TCP and UDP protocols"))
        else:
            out += check_ports(ports, f"{where}.ports")
    if "label" in rule and rule["label"] is not None and (not isinstance(rule["label"], str)
                                                          or not 3 <= len(rule["label"]) <= 32):
        out.append(error(f"{where}.label", "Length must be 3-32 characters"))
    if "description" in rule and rule["description"] is not None and (
            not isinstance(rule["description"], str) or not 1 <= len(rule["description"]) <= 100):
        out.append(error(f"{where}.description", "Length must be 1-100 characters"))
    return out


def check_rules(rules: Any, field: str = "rules") -> Errors:
    if not isinstance(rules, dict):
        return [error(field, "rules is required")]
    out: Errors = []
    for k in sorted(set(rules) - {"inbound", "outbound", "inbound_policy", "outbound_policy"}):
        out.append(error(f"{field}.{k}", "Unknown field"))
    for pol in ("inbound_policy", "outbound_policy"):
        if rules.get(pol) not in ("ACCEPT", "DROP"):
            out.append(error(f"{field}.{pol}", f"{pol} is required: ACCEPT or DROP"))
    n = 0
    for direction in ("inbound", "outbound"):
        lst = rules.get(direction)
        if lst is None:
            continue
        if not isinstance(lst, list):
            out.append(error(f"{field}.{direction}", "Must be a list of rules"))
            continue
        n += len(lst)
        for i, rule in enumerate(lst):
            out += check_rule(rule, f"{field}.{direction}[{i}]")
    if n > FIREWALL_MAX_RULES:
        out.append(error(field, f"Too many rules: {n}, at most {FIREWALL_MAX_RULES} across inbound and outbound"))
    return out


def check_firewall_label(label: Any, field: str = "label") -> Errors:
    return check_label(label, field, 3, 32)


# ------------------------------------------------------------------ firewall evaluation (who may connect)

def _port_in(ports: str | None, port: int) -> bool:
    if not ports:
        return True
    for p in re.split(r", ?", ports):
        lo, _, hi = p.partition("-")
        if int(lo) <= port <= int(hi or lo):
            return True
    return False


def firewall_allows(rules: dict, src: str, port: int, protocol: str = "TCP") -> bool:
    """Whether inbound traffic from ``src`` to ``port`` passes these rules (first matching rule wins, else the
    inbound policy: the order the spec describes)."""
    addr = ipaddress.ip_address(src)
    fam = "ipv4" if addr.version == 4 else "ipv6"
    for rule in rules.get("inbound") or []:
        if rule.get("protocol") != protocol or not _port_in(rule.get("ports"), port):
            continue
        nets = (rule.get("addresses") or {}).get(fam) or []
        if any(addr in ipaddress.ip_network(n, strict=False) for n in nets):
            return rule.get("action") == "ACCEPT"
    return rules.get("inbound_policy") == "ACCEPT"
