"""A Linode API v4 simulator: real HTTP on 127.0.0.1, the endpoints lcai uses, validated like the spec
(OpenAPI 4.189.0) and answering in Linode's shapes and error envelope, with a lifecycle and fault injection.

It also stands in for the booted machines: each instance gets a loopback IPv4 (127.0.1.N) and, with
``private_ip``, a private IPv4 in 192.168.128.0/17. Once an instance is running (plus ``app_ready_s``) its app
answers on 127.0.1.N: exactly the template's health path with the template's success code (read from the user
data lcai rendered, see sim_health.py), 404 on other paths, or a TCP accept for a tcp check. NodeBalancers
(sim_nodebalancers.py) check their nodes against the same app through the private address, from
192.168.255.0/24, through the instance's Cloud Firewall, and serve HTTP on their own address (127.0.2.N) through
the nodes that are UP.

  lcai-linode-sim --port 8111            # then LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4 LINODE_TOKEN=sim-token

(it prints those two ``export`` lines, for its port and token, after its first line).

Personal Access Tokens (sim_tokens.py): ``POST /profile/tokens`` mints a scoped, expiring token that is checked
on every request it makes (expired, revoked or out of its scopes: 401); the simulator's own token has every scope.

Operations of the Linode API the simulator does not implement answer 501 in the API's error envelope; methods
the API has no use for (PATCH, …) answer 405; a missing object answers 404.

Test-only control endpoints live under ``/_sim/`` (no token):
  ``POST /_sim/faults`` (a fault or a list), ``DELETE /_sim/faults``, ``POST /_sim/reset``,
  ``GET /_sim/state`` (instances with user_data, private IPs and app state, firewalls, nodebalancers, volumes,
  tokens (never a secret), ``run_token``), ``GET /_sim/requests``,
  ``GET|POST /_sim/clock`` ``{"advance_s": 3600}`` (moves the wall clock token expiry is read from: no sleeping),
  ``GET|POST /_sim/settings`` ``{"client_ip": "203.0.113.7", "provision_s": 2, "boot_s": 2, "app_ready_s": 1,
  "nb_check_scale": 0.01}`` (``nb_check_scale``: NodeBalancer checks take check_interval x scale seconds),
  (``client_ip``: the user's internet address; when set, each instance's Cloud Firewall decides whether its
  app answers on 127.0.1.N — an http check then sees no answer; a tcp connect still succeeds),
  ``GET|POST /_sim/instances/{id}/app`` ``{"state": "healthy"|"unhealthy"|"crashed", "restart_after_s": 2,
  "health": {"type": "http", "port": 8080, "path": "/health", "codes": [200]}}``,
  ``POST /_sim/app-rules`` ``[{"match": "<text in the decoded user data>", "state": "unhealthy"}]`` (the state an
  app booted from matching user data starts in: a new version that never becomes healthy), ``DELETE`` clears.
A fault: ``{"method": "POST", "path": "/linode/instances$", "times": 1, "status": 429, "retry_after": 0,
"reason": "...", "field": "...", "when": "before" | "after", "action": "status" | "reset" | "hang" | "body",
"hang_s": 2, "body": {...} or "raw text"}`` (``body``: that reply with ``status``, e.g. 200 with malformed JSON or
``pages: 99999``).
``when: "after"`` performs the request and then fails the response (a lost reply: the classic duplicate maker).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import zlib
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

from . import sim_nodebalancers as nbs
from . import sim_tokens as toks
from . import sim_volumes as vols
from .sim_health import App, HealthSettings, Server, decode_user_data, health_settings, settings_from_hint
from .sim_validate import (check_authorized_keys, check_firewall_label, check_label, check_rules,
                           check_tags, error, firewall_allows, is_int)

USER_DATA_MAX = 65535  # spec: "Unencoded data must not exceed 65535 bytes"
PRIVATE_NET = ipaddress.ip_network("192.168.128.0/17")  # spec (VPC subnet): Linode private IPv4 addresses

REGIONS = [
    {"id": "us-ord", "label": "Chicago, IL", "country": "us",
     "capabilities": ["Linodes", "Block Storage", "Cloud Firewall", "Metadata", "GPU Linodes", "Placement Group",
                      "NodeBalancers"]},
    {"id": "us-mia", "label": "Miami, FL", "country": "us",
     "capabilities": ["Linodes", "Block Storage", "Cloud Firewall", "Metadata", "NodeBalancers"]},
    {"id": "de-fra-2", "label": "Frankfurt 2, DE", "country": "de",
     "capabilities": ["Linodes", "Cloud Firewall", "Metadata", "GPU Linodes", "NodeBalancers"]},
    {"id": "br-gru", "label": "Sao Paulo, BR", "country": "br",
     "capabilities": ["Linodes", "Cloud Firewall", "Metadata", "NodeBalancers"]},
    {"id": "ap-southeast", "label": "Sydney, AU", "country": "au", "capabilities": ["Linodes", "Cloud Firewall"]},
]
for _r in REGIONS:
    _r.update({"status": "ok", "site_type": "core", "resolvers": {"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}})


def _type(tid, label, cls, vcpus, mem, disk, hourly, monthly, gpus=0, region_prices=()):
    return {"id": tid, "label": label, "class": cls, "vcpus": vcpus, "memory": mem, "disk": disk, "gpus": gpus,
            "transfer": 4000, "network_out": 4000, "price": {"hourly": hourly, "monthly": monthly},
            "region_prices": [{"id": r, "hourly": h, "monthly": m} for r, h, m in region_prices],
            "addons": {"backups": {"price": {"hourly": 0.003, "monthly": 2.0}, "region_prices": []}},
            "successor": None, "accelerated_devices": 0}


TYPES = [
    _type("g6-nanode-1", "Nanode 1GB", "nanode", 1, 1024, 25600, 0.0075, 5.0, region_prices=[("br-gru", 0.009, 6.0)]),
    _type("g6-standard-2", "Linode 4GB", "standard", 2, 4096, 81920, 0.036, 24.0,
          region_prices=[("br-gru", 0.042, 28.8)]),
    _type("g6-standard-4", "Linode 8GB", "standard", 4, 8192, 163840, 0.072, 48.0),
    _type("g6-standard-6", "Linode 16GB", "standard", 6, 16384, 327680, 0.144, 96.0),
    _type("g6-standard-8", "Linode 32GB", "standard", 8, 32768, 655360, 0.288, 192.0),
    _type("g6-dedicated-4", "Dedicated 8GB", "dedicated", 4, 8192, 163840, 0.108, 72.0),
    _type("g6-dedicated-8", "Dedicated 16GB", "dedicated", 8, 16384, 327680, 0.216, 144.0),
    _type("g2-gpu-rtx4000a1-s", "RTX4000 Ada x1 Small", "gpu", 4, 16384, 512000, 0.52, 350.0, gpus=1),
    _type("g2-gpu-rtx4000a1-m", "RTX4000 Ada x1 Medium", "gpu", 8, 32768, 512000, 0.67, 446.0, gpus=1),
    _type("g1-gpu-rtx6000-1", "Dedicated 32 GB + RTX6000 GPU x1", "gpu", 8, 32768, 655360, 1.5, 1000.0, gpus=1),
]
IMAGES = [
    {"id": "linode/ubuntu24.04", "label": "Ubuntu 24.04 LTS", "vendor": "Ubuntu",
     "capabilities": ["cloud-init", "distributed-sites"]},
    {"id": "linode/ubuntu22.04", "label": "Ubuntu 22.04 LTS", "vendor": "Ubuntu",
     "capabilities": ["cloud-init", "distributed-sites"]},
    {"id": "linode/debian12", "label": "Debian 12", "vendor": "Debian", "capabilities": ["cloud-init"]},
    {"id": "linode/ubuntu20.04", "label": "Ubuntu 20.04 LTS", "vendor": "Ubuntu", "capabilities": []},
]
for _i in IMAGES:
    _i.update({"type": "manual", "is_public": True, "deprecated": False, "status": "available", "size": 2500,
               "created": "2024-04-25T00:00:00", "created_by": "linode", "description": "", "eol": None,
               "expiry": None, "updated": "2024-04-25T00:00:00", "tags": [], "total_size": 2500})




def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, field: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(reason)
        self.status, self.errors, self.headers = status, [error(field, reason)], headers or {}

    @classmethod
    def many(cls, errors: list, status: int = 400) -> "ApiError":
        e = cls(status, errors[0]["reason"])
        e.errors = errors
        return e


def _raise(errors: list) -> None:
    if errors:
        raise ApiError.many(errors)


class Fault:
    def __init__(self, spec: dict):
        self.method = spec.get("method", "*").upper()
        self.path = re.compile(spec.get("path", ".*"))
        self.times = int(spec.get("times", 1))
        self.status = int(spec.get("status", 500))
        self.retry_after = spec.get("retry_after")
        self.reason = spec.get("reason", "Simulated failure")
        self.field = spec.get("field")
        self.when = spec.get("when", "before")
        self.action = spec.get("action", "status")
        self.hang_s = float(spec.get("hang_s", 5))
        self.body = spec.get("body")  # action "body": this JSON (or, a string, these raw bytes) with ``status``
        self.hits = 0

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and bool(self.path.search(path))


class State:
    def __init__(self, token: str = "sim-token", provision_s: float = 2.0, boot_s: float = 2.0,
                 app_ready_s: float = 1.0, serve_health: bool = True, run_token: Optional[str] = None,
                 shutdown_s: Optional[float] = None, client_ip: Optional[str] = None, nb_check_scale: float = 0.0,
                 wall_clock: Optional[Callable[[], datetime]] = None):
        self.token = token
        # the wall clock token expiry is read from (sim_tokens): the real time unless a test injects one; moved
        # further by clock_offset_s (POST /_sim/clock)
        self.wall_clock: Callable[[], datetime] = wall_clock or (lambda: datetime.now(timezone.utc))
        self.provision_s, self.boot_s, self.app_ready_s = provision_s, boot_s, app_ready_s
        self.shutdown_s = boot_s / 2 if shutdown_s is None else shutdown_s
        self.serve_health = serve_health
        self.run_token = run_token or secrets.token_hex(8)
        # the address the user's machine has on the internet: when set, each instance's Cloud Firewall decides
        # whether the app answers on 127.0.1.N (None: every request to 127.0.1.N passes, as before)
        self.client_ip = client_ip
        self.nb_check_scale = nb_check_scale  # 0: NodeBalancer node status is the backend's now (sim_nodebalancers)
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.RLock()):
            for app in getattr(self, "apps", {}).values():
                app.stop()
            for front in getattr(self, "nb_fronts", {}).values():
                front.stop()
            self.instances: dict[int, dict] = {}
            self.firewalls: dict[int, dict] = {}
            self.nodebalancers: dict[int, dict] = {}
            self.volumes: dict[int, dict] = {}
            self.tokens: dict[int, dict] = {}
            self.clock_offset_s = 0.0
            self.events: list[dict] = []
            self.faults: list[Fault] = []
            self.requests: list[dict] = []
            self.apps: dict[int, App] = {}
            self.nb_fronts: dict[int, nbs.Front] = {}
            self.app_rules: list[dict] = []
            self.internal_errors: list[str] = []
            self.next_id = 40000000
            self.next_ip = 2
            self.next_private = 0
            self.next_nb_ip = 1
            self.next_event = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # ------------------------------------------------------------ lifecycle

    def schedule(self, inst: dict, steps: list) -> None:
        """Run a status timeline from now: steps of (seconds from now, status, [(event action, event status)])."""
        inst["_t0"] = time.monotonic()
        inst["_timeline"] = steps
        inst["_step"] = 0
        self._tick(inst)

    def _tick(self, inst: dict) -> None:
        """Advance an instance's status by the clock along its timeline (provisioning → booting → running, …)."""
        steps = inst.get("_timeline")
        if not steps:
            return
        age = time.monotonic() - inst.get("_t0", 0.0)
        while inst["_step"] < len(steps) and steps[inst["_step"]][0] <= age:
            _, status, events = steps[inst["_step"]]
            inst["_step"] += 1
            for action, ev_status in events:
                self._event(action, inst, ev_status)
            if status != inst["status"]:
                inst["status"] = status
                inst["updated"] = _now()
                if status == "running":
                    inst["_running_at"] = inst["_t0"] + steps[inst["_step"] - 1][0]

    def _event(self, action: str, inst: dict, status: str, etype: str = "linode") -> None:
        url = f"/v4/linode/instances/{inst['id']}" if etype == "linode" else f"/v4/{etype}s/{inst['id']}"
        self.events.append({"id": self.next_event, "action": action, "status": status, "created": _now(),
                            "entity": {"id": inst["id"], "label": inst["label"], "type": etype, "url": url},
                            "percent_complete": 100 if status == "finished" else 0, "read": False, "seen": False,
                            "username": "lcai-sim", "duration": None, "message": None, "secondary_entity": None,
                            "time_remaining": None, "rate": None})
        self.next_event += 1

    def app_ready(self, iid: int) -> bool:
        with self.lock:
            inst = self.instances.get(iid)
            if inst is None:
                return False
            self._tick(inst)
            return inst["status"] == "running" and time.monotonic() - inst.get("_running_at", 1e18) >= self.app_ready_s

    def start_app(self, inst: dict, settings: Optional[HealthSettings] = None) -> None:
        """(Re)start the simulated app of an instance from its user data (or explicit settings)."""
        old = self.apps.pop(inst["id"], None)
        if old is not None:
            old.stop()
        if not self.serve_health:
            return
        text = None
        if settings is None:
            settings = health_settings(inst.get("_user_data"))
        iid = inst["id"]
        app = App(inst["ipv4"][0], settings, lambda: self.app_ready(iid), lambda port: self.public_allowed(iid, port))
        for rule in self.app_rules:
            if text is None:
                text = decode_user_data(inst.get("_user_data"))
            if rule.get("match") and rule["match"] in text:
                app.set_state(rule.get("state", "unhealthy"), rule.get("restart_after_s"))
        self.apps[iid] = app

    def pump(self) -> None:
        """One clock step: advance every instance and keep each app's listeners in step with its state."""
        with self.lock:
            for inst in self.instances.values():
                self._tick(inst)
            nbs.tick(self)
            apps = list(self.apps.values())
        for app in apps:  # outside the lock: a listener's handler thread takes it through ready()
            app.sync()
        if self.serve_health:
            nbs.sync_fronts(self)

    def public_allowed(self, iid: int, port: int) -> bool:
        """Whether the instance's firewall lets the user's machine (``client_ip``) reach this TCP port."""
        with self.lock:
            fw = self.firewall_of("linode", iid)
            return self.client_ip is None or fw is None or firewall_allows(fw["rules"], self.client_ip, port)

    def instance_by_private_ip(self, ip: str) -> Optional[dict]:
        return next((i for i in self.instances.values() if i.get("_private") == ip), None)

    def firewall_of(self, kind: str, oid: int) -> Optional[dict]:
        return next((f for f in self.firewalls.values() if f["status"] == "enabled"
                     and any(e["id"] == oid and e["type"] == kind for e in f["entities"])), None)

    def snapshot(self) -> dict:
        for inst in self.instances.values():
            self._tick(inst)
        return {"run_token": self.run_token,
                "instances": [dict(_public(i), user_data=i.get("_user_data"), private_ip=i.get("_private"),
                                   app=(self.apps[i["id"]].describe() if i["id"] in self.apps else None))
                              for i in self.instances.values()],
                "firewalls": [_public_fw(f) for f in self.firewalls.values()],
                "nodebalancers": [dict(nbs.full(self, nb), listening=sorted(self.nb_fronts[nb["id"]].servers)
                                       if nb["id"] in self.nb_fronts else [])
                                  for nb in self.nodebalancers.values()],
                "volumes": [{k: v for k, v in vol.items() if not k.startswith("_")}
                            for vol in self.volumes.values()],
                "tokens": toks.snapshot(self),
                "app_rules": self.app_rules,
                "internal_errors": self.internal_errors,
                "faults_left": sum(f.times for f in self.faults)}


def _public(inst: dict) -> dict:
    return {k: v for k, v in inst.items() if not k.startswith("_")}


def paginate(items: list, query: dict) -> dict:
    try:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["100"])[0])
    except ValueError:
        raise ApiError(400, "page and page_size must be integers") from None
    if not 25 <= size <= 500:
        raise ApiError(400, "Must be between 25 and 500", "page_size")
    pages = max(1, -(-len(items) // size))
    if page < 1 or page > pages:
        raise ApiError(400, f"Page {page} does not exist", "page")
    return {"data": items[(page - 1) * size: page * size], "page": page, "pages": pages, "results": len(items)}


_paginate = paginate


def _get_field(obj: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _match(obj: dict, flt: Any) -> bool:
    if not isinstance(flt, dict):
        raise ApiError(400, "Filter must be an object")
    for key, cond in flt.items():
        if key == "+and":
            if not all(_match(obj, c) for c in cond):
                return False
        elif key == "+or":
            if not any(_match(obj, c) for c in cond):
                return False
        elif key in ("+order_by", "+order"):
            continue
        else:
            value = _get_field(obj, key)
            if key == "tags" and isinstance(cond, list):
                raise ApiError(400, "Tags filter must be a string or dict")
            if isinstance(cond, dict):
                for op, arg in cond.items():
                    if op == "+contains":
                        ok = (arg in value) if isinstance(value, list) else (str(arg) in str(value or ""))
                    elif op == "+neq":
                        ok = value != arg
                    elif op in ("+gt", "+gte", "+lt", "+lte"):
                        ok = value is not None and {"+gt": value > arg, "+gte": value >= arg, "+lt": value < arg,
                                                    "+lte": value <= arg}[op]
                    else:
                        raise ApiError(400, f"Unknown filter operator {op}")
                    if not ok:
                        return False
            elif isinstance(value, list):
                if cond not in value:
                    return False
            elif value != cond:
                return False
    return True


API_METHODS = ("GET", "POST", "PUT", "DELETE")  # every operation of the Linode API uses one of these


class Handler(BaseHTTPRequestHandler):
    server_version = "lcai-linode-sim/0.2"
    protocol_version = "HTTP/1.1"
    state: State
    _acting: toks.Scopes = "*"  # the scopes of the token of the request being served

    def log_message(self, *a):
        pass

    # ------------------------------------------------------------ plumbing

    def _send(self, status: int, body: Any, headers: Optional[dict] = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Spec-Version", "4.189.0")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors raised by the HTTP layer itself (unknown method, bad request line) in the API's envelope."""
        try:
            self.close_connection = True
            if not getattr(self, "command", None):
                self.command = "GET"
            self._send(code, {"errors": [{"reason": message or self.responses.get(code, ("Error",))[0]}]},
                       {"Connection": "close"})
        except OSError:
            pass

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        if not n:
            return {}
        try:
            return json.loads(self.rfile.read(n))
        except ValueError:
            raise ApiError(400, "Invalid JSON") from None

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        st = self.state
        try:  # always consume the body first: a fault reply must not leave it in a keep-alive connection
            body = self._body() if self.headers.get("Content-Length") else None
        except ApiError as e:
            return self._send(e.status, {"errors": e.errors})
        if path.startswith("/_sim/"):
            return self._control(method, path, body)
        if not path.startswith("/v4/"):
            return self._send(404, {"errors": [{"reason": "Not found"}]})
        api_path = path[3:]
        if body is None and method in ("POST", "PUT"):
            body = {}
        with st.lock:
            st.requests.append({"method": method, "path": api_path, "query": url.query,
                                "filter": self.headers.get("X-Filter"), "time": time.time()})
            fault = next((f for f in st.faults if f.matches(method, api_path)), None)
            if fault is not None:
                fault.times -= 1
                fault.hits += 1
        if fault is not None and fault.when == "before" and self._fault(fault):
            return
        try:
            auth = self.headers.get("Authorization", "")
            with st.lock:
                self._acting = toks.authorize(st, method, api_path, auth)  # 401 unless the token may do this
                try:
                    status, payload = self._route(method, api_path, query, body)
                except ApiError:
                    raise
                except Exception as e:  # a simulator bug: answer as the API does (500), keep the trace for tests
                    st.internal_errors.append(traceback.format_exc())
                    raise ApiError(500, f"lcai-linode-sim internal error: {type(e).__name__}: {e}") from None
        except ApiError as e:
            if fault is not None and fault.when == "after" and self._fault(fault):
                return
            return self._send(e.status, {"errors": e.errors}, e.headers)
        if fault is not None and fault.when == "after" and self._fault(fault):
            return
        self._send(status, payload)

    def _fault(self, fault: Fault) -> bool:
        if fault.action == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            self.connection.close()
            return True
        if fault.action == "hang":
            time.sleep(fault.hang_s)
            self.close_connection = True
            self.connection.close()
            return True
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.action == "body":  # a reply the API should never give: malformed JSON, absurd values
            if isinstance(fault.body, str):
                raw = fault.body.encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            else:
                self._send(fault.status, fault.body, headers)
            return True
        self._send(fault.status, {"errors": [error(fault.field, fault.reason)]}, headers)
        return True

    def _control(self, method: str, path: str, body: Any) -> None:
        st = self.state
        try:
            with st.lock:
                if path == "/_sim/faults" and method == "POST":
                    specs = body if body is not None else []
                    st.faults.extend(Fault(s) for s in (specs if isinstance(specs, list) else [specs]))
                    return self._send(200, {"faults": len(st.faults)})
                if path == "/_sim/faults" and method == "DELETE":
                    st.faults.clear()
                    return self._send(200, {})
                if path == "/_sim/reset" and method == "POST":
                    st.reset()
                    return self._send(200, {})
                if path == "/_sim/state" and method == "GET":
                    return self._send(200, st.snapshot())
                if path == "/_sim/clock" and method in ("GET", "POST"):
                    return self._send(200, toks.control_clock(st, body if method == "POST" else None))
                if path == "/_sim/requests" and method == "GET":
                    return self._send(200, st.requests)
                if path == "/_sim/settings" and method in ("GET", "POST"):
                    if method == "POST":
                        self._control_settings(body)
                    return self._send(200, {"client_ip": st.client_ip, "provision_s": st.provision_s,
                                            "boot_s": st.boot_s, "app_ready_s": st.app_ready_s,
                                            "nb_check_scale": st.nb_check_scale})
                if path == "/_sim/app-rules" and method == "POST":
                    rules = body if isinstance(body, list) else [body]
                    for r in rules:
                        if not isinstance(r, dict) or not isinstance(r.get("match"), str) or not r["match"] \
                                or r.get("state", "unhealthy") not in ("healthy", "unhealthy", "crashed"):
                            raise ApiError(400, "an app rule is {\"match\": \"<text>\", \"state\": "
                                                "\"healthy|unhealthy|crashed\", \"restart_after_s\": null}")
                    st.app_rules.extend(rules)
                    return self._send(200, {"app_rules": st.app_rules})
                if path == "/_sim/app-rules" and method == "DELETE":
                    st.app_rules.clear()
                    return self._send(200, {})
                if g := re.fullmatch(r"/_sim/instances/(\d+)/app", path):
                    inst = st.instances.get(int(g.group(1)))
                    if inst is None:
                        raise ApiError(404, "Not found")
                    if method == "POST":
                        self._control_app(inst, body)
                    app = st.apps.get(inst["id"])
                    if method in ("GET", "POST"):
                        return self._send(200, app.describe() if app else {"state": None, "settings": None})
        except ApiError as e:
            return self._send(e.status, {"errors": e.errors})
        self._send(404, {"errors": [{"reason": "Not found"}]})

    def _control_settings(self, body: Any) -> None:
        st = self.state
        if not isinstance(body, dict):
            raise ApiError(400, "body must be an object")
        if "client_ip" in body:
            try:
                st.client_ip = str(ipaddress.ip_address(body["client_ip"])) if body["client_ip"] else None
            except ValueError:
                raise ApiError(400, "client_ip must be an IP address or null", "client_ip") from None
        for k in ("provision_s", "boot_s", "app_ready_s", "nb_check_scale"):
            if k in body:
                if not isinstance(body[k], (int, float)) or body[k] < 0:
                    raise ApiError(400, f"{k} must be a number of seconds", k)
                setattr(st, k, float(body[k]))

    def _control_app(self, inst: dict, body: Any) -> None:
        st = self.state
        if not isinstance(body, dict):
            raise ApiError(400, "body must be an object")
        if "health" in body:
            try:
                st.start_app(inst, settings_from_hint(body["health"]))
            except ValueError as e:
                raise ApiError(400, str(e), "health") from None
        app = st.apps.get(inst["id"])
        if app is None:
            raise ApiError(409, "this instance has no simulated app (no user data; serve_health off?)")
        if "state" in body:
            ras = body.get("restart_after_s")
            if ras is not None and not isinstance(ras, (int, float)):
                raise ApiError(400, "restart_after_s must be a number of seconds", "restart_after_s")
            try:
                app.set_state(body["state"], ras)
            except ValueError as e:
                raise ApiError(400, str(e), "state") from None

    do_GET = lambda self: self._handle("GET")  # noqa: E731
    do_POST = lambda self: self._handle("POST")  # noqa: E731
    do_PUT = lambda self: self._handle("PUT")  # noqa: E731
    do_DELETE = lambda self: self._handle("DELETE")  # noqa: E731
    do_PATCH = lambda self: self._handle("PATCH")  # noqa: E731
    do_HEAD = lambda self: self._handle("HEAD")  # noqa: E731
    do_OPTIONS = lambda self: self._handle("OPTIONS")  # noqa: E731

    # ------------------------------------------------------------ the API

    def _filter(self) -> Optional[dict]:
        raw = self.headers.get("X-Filter")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Invalid JSON in X-Filter") from None

    def _list(self, items: list, query: dict) -> tuple[int, dict]:
        flt = self._filter()
        if flt is not None:
            _match({}, flt)  # the filter is validated even when there is nothing to match
            items = [i for i in items if _match(i, flt)]
        return 200, paginate(items, query)

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if method not in API_METHODS:
            raise ApiError(405, f"Method Not Allowed: the Linode API has no {method} operations",
                           headers={"Allow": ", ".join(API_METHODS)})
        routed = self._route_api(method, path, query, body)
        if routed is None:
            routed = nbs.route(self, method, path, query, body)
        if routed is None:
            routed = vols.route(self, method, path, query, body)
        if routed is None:
            routed = toks.route(self, method, path, query, body, getattr(self, "_acting", "*"))
        if routed is None:
            raise ApiError(501, f"{method} /v4{path} is not implemented by lcai-linode-sim")
        return routed

    def _instance(self, iid: str) -> dict:
        inst = self.state.instances.get(int(iid))
        if inst is None:
            raise ApiError(404, "Not found")
        self.state._tick(inst)
        return inst

    def _route_api(self, method: str, path: str, query: dict, body: Any) -> Optional[tuple[int, Any]]:
        st = self.state
        m = re.fullmatch
        if method == "GET" and path == "/profile":
            return 200, {"username": "lcai-sim", "email": "sim@example.com", "restricted": False, "uid": 1,
                         "two_factor_auth": False, "authorized_keys": []}
        if method == "GET" and path == "/regions":
            return self._list(REGIONS, query)
        if method == "GET" and (g := m(r"/regions/([a-z0-9-]+)", path)):
            return 200, self._one(REGIONS, g.group(1))
        if method == "GET" and path == "/linode/types":
            return self._list(TYPES, query)
        if method == "GET" and (g := m(r"/linode/types/([a-z0-9-]+)", path)):
            return 200, self._one(TYPES, g.group(1))
        if method == "GET" and path == "/images":
            return self._list(IMAGES, query)
        if method == "GET" and (g := m(r"/images/([a-z0-9-]+/[A-Za-z0-9._-]+)", path)):
            return 200, self._one(IMAGES, g.group(1))
        if path == "/linode/instances":
            if method == "GET":
                for inst in st.instances.values():
                    st._tick(inst)
                return self._list([_public(i) for i in st.instances.values()], query)
            if method == "POST":
                return 200, self._create_instance(body)
        if g := m(r"/linode/instances/(\d+)", path):
            inst = self._instance(g.group(1))
            if method == "GET":
                return 200, _public(inst)
            if method == "PUT":
                return 200, self._update_instance(inst, body)
            if method == "DELETE":
                return 200, self._delete_instance(inst)
        if g := m(r"/linode/instances/(\d+)/(rebuild|boot|reboot|shutdown)", path):
            if method == "POST":
                inst = self._instance(g.group(1))
                if g.group(2) == "rebuild":
                    return 200, self._rebuild_instance(inst, body)
                return 200, self._power(inst, g.group(2))
        if g := m(r"/linode/instances/(\d+)/ips", path):
            inst = self._instance(g.group(1))
            if method == "GET":
                return 200, self._ips(inst)
            if method == "POST":
                return 200, self._add_ip(inst, body)
        if method == "GET" and (g := m(r"/linode/instances/(\d+)/firewalls", path)):
            inst = self._instance(g.group(1))
            return self._list([_public_fw(f) for f in st.firewalls.values()
                               if any(e["id"] == inst["id"] and e["type"] == "linode" for e in f["entities"])], query)
        if method == "GET" and (g := m(r"/linode/instances/(\d+)/nodebalancers", path)):
            inst = self._instance(g.group(1))
            return self._list(nbs.of_instance(st, inst), query)
        routed = self._route_firewalls(method, path, query, body)
        if routed is not None:
            return routed
        if method == "GET" and path == "/account/events":
            return self._list(sorted(st.events, key=lambda e: -e["id"]), query)
        return None

    def _one(self, items: list, key: str) -> dict:
        for i in items:
            if i["id"] == key:
                return i
        raise ApiError(404, "Not found")

    # ------------------------------------------------------------ instances

    def _check_password(self, rp: Any, errs: list) -> None:
        if not isinstance(rp, str) or not 7 <= len(rp) <= 128:
            errs.append(error("root_pass", "Length must be 7-128 characters"))
        elif sum(bool(re.search(p, rp)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")) < 3:
            errs.append(error("root_pass", "Password does not meet strength requirement"))

    def _check_metadata(self, md: Any, region: Optional[dict], image: Optional[dict], errs: list) -> None:
        if md is None:
            return
        if not isinstance(md, dict) or set(md) - {"user_data"}:
            errs.append(error("metadata", "metadata: only user_data is allowed"))
            return
        try:
            raw = base64.b64decode(md.get("user_data") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raw = None
            errs.append(error("metadata.user_data", "user_data must be base64-encoded"))
        if raw is not None and len(raw) > USER_DATA_MAX:
            errs.append(error("metadata.user_data", f"Unencoded data must not exceed {USER_DATA_MAX} bytes"))
        if region is not None and "Metadata" not in region["capabilities"]:
            errs.append(error("metadata", "The selected region does not support Metadata"))
        if image is not None and "cloud-init" not in image["capabilities"]:
            errs.append(error("metadata", "The selected image does not support Metadata (cloud-init)"))

    def _check_booleans(self, b: dict, names: tuple, errs: list) -> None:
        for name in names:
            if name in b and b[name] is not None and not isinstance(b[name], bool):
                errs.append(error(name, "Must be a boolean"))

    def _create_instance(self, b: Any) -> dict:
        st = self.state
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs: list = []
        region = next((r for r in REGIONS if r["id"] == b.get("region")), None)
        ltype = next((t for t in TYPES if t["id"] == b.get("type")), None)
        if not b.get("region"):
            errs.append(error("region", "region is required"))
        elif region is None:
            errs.append(error("region", "region is not valid"))
        if not b.get("type"):
            errs.append(error("type", "type is required"))
        elif ltype is None:
            errs.append(error("type", "A valid plan type by that ID was not found"))
        image = None
        if b.get("image") is not None:
            image = next((i for i in IMAGES if i["id"] == b["image"]), None)
            if image is None:
                errs.append(error("image", "image is not valid"))
            rp = b.get("root_pass")
            if not rp and not b.get("authorized_keys") and not b.get("authorized_users"):
                errs.append(error("root_pass", "root_pass is required"))
            if rp is not None:
                self._check_password(rp, errs)
        label = b.get("label")
        if label is not None:
            label_errs = check_label(label)
            errs += label_errs
            if not label_errs and any(i["label"] == label for i in st.instances.values()):
                errs.append(error("label", "Label must be unique among your Linodes"))
        tags = b.get("tags") or []
        errs += check_tags(tags)
        errs += check_authorized_keys(b.get("authorized_keys"))
        self._check_booleans(b, ("booted", "private_ip", "backups_enabled"), errs)
        if "firewall_id" in b and b["firewall_id"] is not None:
            if not is_int(b["firewall_id"]):
                errs.append(error("firewall_id", "firewall_id must be an integer"))
            elif b["firewall_id"] not in st.firewalls:
                errs.append(error("firewall_id", "Firewall not found"))
        md = b.get("metadata")
        self._check_metadata(md, region, image, errs)
        if ltype is not None and region is not None and ltype["class"] == "gpu" and \
                "GPU Linodes" not in region["capabilities"]:
            errs.append(error("type", "GPU Linodes are not available in this region"))
        _raise(errs)
        iid = st.new_id()
        ip = f"127.0.1.{st.next_ip}"
        st.next_ip += 1
        inst = {
            "id": iid, "label": label or f"linode{iid}", "group": "", "status": "provisioning",
            "created": _now(), "updated": _now(), "type": ltype["id"], "region": region["id"],
            "image": b.get("image"), "ipv4": [ip], "ipv6": f"2001:db8::{iid % 65536:x}/128", "tags": list(tags),
            "hypervisor": "kvm", "has_user_data": bool(md and md.get("user_data")), "watchdog_enabled": True,
            "specs": {"disk": ltype["disk"], "memory": ltype["memory"], "vcpus": ltype["vcpus"], "gpus": ltype["gpus"],
                      "transfer": ltype["transfer"]},
            "alerts": {"cpu": 180, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80},
            "backups": {"enabled": False, "available": False, "schedule": {"day": None, "window": None},
                        "last_successful": None},
            "capabilities": [], "disk_encryption": "disabled", "lke_cluster_id": None, "placement_group": None,
            "host_uuid": "sim", "locks": [], "maintenance_policy": "linode/migrate",
            "_user_data": (md or {}).get("user_data"),
        }
        if b.get("private_ip"):
            self._assign_private(inst)
        st.instances[iid] = inst
        fw_id = b.get("firewall_id")
        if fw_id:
            st.firewalls[fw_id]["entities"].append(_entity(inst, "linode"))
        p = st.provision_s
        create = [(0.0, "provisioning", [("linode_create", "started")])]
        if b.get("booted", True) is False or b.get("image") is None:
            # spec: booted defaults to true with an image; false leaves the Linode offline after deployment
            st.schedule(inst, create + [(p, "offline", [("linode_create", "finished")])])
        else:
            st.schedule(inst, create + [(p, "booting", [("linode_create", "finished"), ("linode_boot", "started")]),
                                        (p + st.boot_s, "running", [("linode_boot", "finished")])])
        st.start_app(inst)
        return _public(inst)

    def _assign_private(self, inst: dict) -> dict:
        st = self.state
        while True:
            addr = PRIVATE_NET.network_address + 2 + st.next_private
            st.next_private += 1
            if str(addr).rsplit(".", 1)[1] not in ("0", "255"):
                break
        inst["_private"] = str(addr)
        inst["ipv4"].append(str(addr))
        return self._ip_object(inst, str(addr), public=False)

    def _ip_object(self, inst: dict, addr: str, public: bool) -> dict:
        return {"address": addr, "gateway": None if not public else addr.rsplit(".", 1)[0] + ".1",
                "prefix": 24 if public else 17, "public": public, "rdns": None, "region": inst["region"],
                "subnet_mask": "255.255.255.0" if public else "255.255.128.0", "type": "ipv4",
                "linode_id": inst["id"], "vpc_nat_1_1": None}

    def _ips(self, inst: dict) -> dict:
        v6 = {"prefix": 64, "type": "ipv6", "rdns": None, "gateway": "fe80::1", "subnet_mask": "ffff:ffff:ffff:ffff::",
              "region": inst["region"], "linode_id": inst["id"]}
        return {"ipv4": {"public": [self._ip_object(inst, inst["ipv4"][0], public=True)],
                         "private": [self._ip_object(inst, inst["_private"], public=False)] if inst.get("_private")
                         else [], "shared": [], "reserved": [], "vpc": []},
                "ipv6": {"slaac": dict(v6, address=inst["ipv6"].split("/")[0], public=True),
                         "link_local": dict(v6, address=f"fe80::{inst['id'] % 65536:x}", public=False),
                         "global": []}}

    def _add_ip(self, inst: dict, b: Any) -> dict:
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs = []
        if b.get("type") != "ipv4":
            errs.append(error("type", "Only ipv4 addresses may be allocated" if "type" in b else "type is required"))
        if not isinstance(b.get("public"), bool):
            errs.append(error("public", "public is required: true or false"))
        for k in sorted(set(b) - {"type", "public"}):
            errs.append(error(k, "Unknown field"))
        _raise(errs)
        if b["public"]:
            raise ApiError(400, "Additional IPv4 addresses require technical justification. Please open a Support "
                                "Ticket describing your requirement", "public")
        if inst.get("_private"):
            raise ApiError(400, "This Linode already has a private IPv4 address", "public")
        return self._assign_private(inst)

    def _update_instance(self, inst: dict, b: Any) -> dict:
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs = []
        if "tags" in b:
            errs += check_tags(b["tags"])
        if "label" in b:
            errs += check_label(b["label"])
            if any(i["label"] == b["label"] and i is not inst for i in self.state.instances.values()):
                errs.append(error("label", "Label must be unique among your Linodes"))
        _raise(errs)
        if "tags" in b:
            inst["tags"] = list(b["tags"])
        if "label" in b:
            inst["label"] = b["label"]
        inst["updated"] = _now()
        return _public(inst)

    def _busy(self, inst: dict) -> None:
        if inst["status"] not in ("running", "offline"):
            raise ApiError(400, "Linode busy.")

    def _rebuild_instance(self, inst: dict, b: Any) -> dict:
        """spec post-rebuild-linode-instance: image, root_pass (or authorized_keys/authorized_users), booted,
        metadata.user_data, disk_encryption, type (resize); stackscripts are refused. Same id and addresses; the
        disks (and the user data, when given) are replaced; firewalls and NodeBalancer nodes stay."""
        st = self.state
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs: list = []
        image = None
        if not b.get("image"):
            errs.append(error("image", "image is required"))
        else:
            image = next((i for i in IMAGES if i["id"] == b["image"]), None)
            if image is None:
                errs.append(error("image", "image is not valid"))
        if b.get("root_pass") is None:
            # the spec lists root_pass as required; like create (and linode_api4 >= 5.44), SSH keys or users do too
            if not b.get("authorized_keys") and not b.get("authorized_users"):
                errs.append(error("root_pass", "root_pass is required"))
        else:
            self._check_password(b["root_pass"], errs)
        if b.get("disk_encryption") is not None and b["disk_encryption"] not in ("enabled", "disabled"):
            errs.append(error("disk_encryption", "Must be enabled or disabled"))
        errs += check_authorized_keys(b.get("authorized_keys"))
        au = b.get("authorized_users")
        if au is not None and (not isinstance(au, list) or not all(isinstance(u, str) for u in au)):
            errs.append(error("authorized_users", "Must be a list of user names"))
        self._check_booleans(b, ("booted",), errs)
        region = next(r for r in REGIONS if r["id"] == inst["region"])
        self._check_metadata(b.get("metadata"), region, image, errs)
        ltype = None
        if b.get("type") is not None:
            ltype = next((t for t in TYPES if t["id"] == b["type"]), None)
            if ltype is None:
                errs.append(error("type", "A valid plan type by that ID was not found"))
        if b.get("stackscript_id") is not None:
            errs.append(error("stackscript_id", "StackScripts are not available in lcai-linode-sim"))
        _raise(errs)
        self._busy(inst)
        inst["image"] = b["image"]
        if b.get("metadata") is not None:
            inst["_user_data"] = b["metadata"].get("user_data")
            inst["has_user_data"] = bool(inst["_user_data"])
        if ltype is not None:
            inst["type"] = ltype["id"]
            inst["specs"] = {"disk": ltype["disk"], "memory": ltype["memory"], "vcpus": ltype["vcpus"],
                             "gpus": ltype["gpus"], "transfer": ltype["transfer"]}
        inst.pop("_running_at", None)
        p = st.provision_s
        start = [(0.0, "rebuilding", [("linode_rebuild", "started")])]
        if b.get("booted", True) is False:
            st.schedule(inst, start + [(p, "offline", [("linode_rebuild", "finished")])])
        else:
            st.schedule(inst, start + [(p, "booting", [("linode_rebuild", "finished"), ("linode_boot", "started")]),
                                       (p + st.boot_s, "running", [("linode_boot", "finished")])])
        st.start_app(inst)  # the app of the new user data (its listeners open once it is running)
        return _public(inst)

    def _power(self, inst: dict, action: str) -> dict:
        st = self.state
        self._busy(inst)
        b = st.boot_s
        if action == "boot":
            if inst["status"] == "running":
                return {}
            st.schedule(inst, [(0.0, "booting", [("linode_boot", "started")]),
                               (b, "running", [("linode_boot", "finished")])])
        elif action == "reboot":
            st.schedule(inst, [(0.0, "rebooting", [("linode_reboot", "started")]),
                               (b, "running", [("linode_reboot", "finished")])])
        else:
            if inst["status"] == "offline":
                return {}
            st.schedule(inst, [(0.0, "shutting_down", [("linode_shutdown", "started")]),
                               (st.shutdown_s, "offline", [("linode_shutdown", "finished")])])
        inst.pop("_running_at", None)
        return {}

    def _delete_instance(self, inst: dict) -> dict:
        st = self.state
        del st.instances[inst["id"]]
        app = st.apps.pop(inst["id"], None)
        if app is not None:
            app.stop()
        for fw in st.firewalls.values():
            fw["entities"] = [e for e in fw["entities"] if not (e["id"] == inst["id"] and e["type"] == "linode")]
        vols.detach_all(self, inst["id"])
        st._event("linode_delete", inst, "finished")
        return {}

    # ------------------------------------------------------------ firewalls

    def _route_firewalls(self, method: str, path: str, query: dict, body: Any) -> Optional[tuple[int, Any]]:
        st = self.state
        m = re.fullmatch
        if path == "/networking/firewalls":
            if method == "GET":
                return self._list([_public_fw(f) for f in st.firewalls.values()], query)
            if method == "POST":
                return 200, self._create_firewall(body)
        g = m(r"/networking/firewalls/(\d+)(/rules|/devices|/devices/(\d+))?", path)
        if not g:
            return None
        fw = st.firewalls.get(int(g.group(1)))
        if fw is None:
            raise ApiError(404, "Not found")
        sub = g.group(2)
        if sub is None:
            if method == "GET":
                return 200, _public_fw(fw)
            if method == "PUT":
                return 200, self._update_firewall(fw, body)
            if method == "DELETE":
                del st.firewalls[fw["id"]]
                return 200, {}
        elif sub == "/rules":
            if method == "GET":
                return 200, fw["rules"]
            if method == "PUT":
                _raise(check_rules(body))
                fw["rules"] = self._rules_record(fw["id"], body, fw["rules"]["version"] + 1)
                fw["updated"] = _now()
                return 200, fw["rules"]
        elif sub == "/devices":
            if method == "GET":
                return self._list([self._device(fw, e) for e in fw["entities"]], query)
            if method == "POST":
                return 200, self._add_device(fw, body)
        else:
            did = int(g.group(3))
            ent = next((e for e in fw["entities"] if e["_device"] == did), None)
            if ent is None:
                raise ApiError(404, "Not found")
            if method == "GET":
                return 200, self._device(fw, ent)
            if method == "DELETE":
                fw["entities"].remove(ent)
                return 200, {}
        return None

    def _device(self, fw: dict, ent: dict) -> dict:
        return {"id": ent["_device"], "created": fw["created"], "updated": fw["updated"],
                "entity": {k: v for k, v in ent.items() if not k.startswith("_")}}

    def _add_device(self, fw: dict, b: Any) -> dict:
        st = self.state
        if not isinstance(b, dict) or not is_int(b.get("id")) or b.get("type") not in ("linode", "nodebalancer"):
            raise ApiError(400, "id (integer) and type (linode or nodebalancer) are required")
        target = (st.instances if b["type"] == "linode" else st.nodebalancers).get(b["id"])
        if target is None:
            raise ApiError(400, f"{b['type']} {b['id']} not found", "id")
        if any(e["id"] == b["id"] and e["type"] == b["type"] for e in fw["entities"]):
            raise ApiError(400, "This entity is already assigned to this Firewall", "id")
        if st.firewall_of(b["type"], b["id"]) is not None:
            raise ApiError(400, "Only one enabled Firewall can be attached to a service", "id")
        ent = _entity(target, b["type"])
        fw["entities"].append(ent)
        return self._device(fw, ent)

    def _rules_record(self, fid: int, rules: dict, version: int) -> dict:
        rec = {"inbound": [], "outbound": [], **rules, "version": version}
        rec["fingerprint"] = f"{zlib.crc32(json.dumps(rules, sort_keys=True).encode()):08x}"  # a 32-bit hash
        return rec

    def _create_firewall(self, b: Any) -> dict:
        st = self.state
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs = check_firewall_label(b.get("label"))
        if not errs and any(f["label"] == b["label"] for f in st.firewalls.values()):
            errs.append(error("label", "Label must be unique"))
        if "rules" not in b:
            errs.append(error("rules", "rules is required"))
        else:
            errs += check_rules(b["rules"])
        errs += check_tags(b.get("tags"))
        devices = b.get("devices") or {}
        if not isinstance(devices, dict):
            errs.append(error("devices", "Must be an object with linodes and nodebalancers"))
            devices = {}
        for kind, store in (("linodes", st.instances), ("nodebalancers", st.nodebalancers)):
            for i in devices.get(kind) or []:
                if not is_int(i) or i not in store:
                    errs.append(error(f"devices.{kind}", f"{kind[:-1]} {i} not found"))
        _raise(errs)
        fid = st.new_id()
        fw = {"id": fid, "label": b["label"], "status": "enabled", "created": _now(), "updated": _now(),
              "tags": list(b.get("tags") or []), "entities": [],
              "rules": self._rules_record(fid, b["rules"], 1)}
        st.firewalls[fid] = fw
        for kind, store, etype in (("linodes", st.instances, "linode"), ("nodebalancers", st.nodebalancers,
                                                                          "nodebalancer")):
            for i in devices.get(kind) or []:
                fw["entities"].append(_entity(store[i], etype))
        return _public_fw(fw)

    def _update_firewall(self, fw: dict, b: Any) -> dict:
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errs = []
        if "label" in b:
            errs += check_firewall_label(b["label"])
        if "status" in b and b["status"] not in ("enabled", "disabled"):
            errs.append(error("status", "Must be enabled or disabled"))
        if "tags" in b:
            errs += check_tags(b["tags"])
        _raise(errs)
        for k in ("label", "status", "tags"):
            if k in b:
                fw[k] = b[k]
        fw["updated"] = _now()
        return _public_fw(fw)


_device_ids = iter(range(7000000, 10 ** 9))


def _entity(obj: dict, etype: str) -> dict:
    url = f"/v4/linode/instances/{obj['id']}" if etype == "linode" else f"/v4/nodebalancers/{obj['id']}"
    return {"id": obj["id"], "type": etype, "label": obj["label"], "url": url, "_device": next(_device_ids)}


def _public_fw(fw: dict) -> dict:
    return dict(fw, entities=[{k: v for k, v in e.items() if not k.startswith("_")} for e in fw["entities"]])


class Simulator:
    """Run the simulator in a background thread (tests, the offline demo)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", tick_s: float = 0.05, **state_kw):
        self.state = State(**state_kw)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = Server((host, port), handler)
        self.httpd.daemon_threads = True
        self.tick_s = tick_s
        self.thread: Optional[threading.Thread] = None
        self._clock: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v4"

    def _run_clock(self) -> None:
        while not self._stopping.wait(self.tick_s):
            self.state.pump()

    def start(self, serve: bool = True) -> "Simulator":
        self._clock = threading.Thread(target=self._run_clock, daemon=True)
        self._clock.start()
        if serve:
            self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                           daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._clock is not None:
            self._clock.join(timeout=2)
        self.state.reset()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def paste_lines(url: str, token: str) -> str:
    """What the simulator prints after its first line: the two lines that point lcai (in another shell) at it."""
    import shlex

    return ("to point lcai at it, paste in another shell:\n"
            f"  export LCAI_LINODE_API_URL={shlex.quote(url)}\n"
            f"  export LINODE_TOKEN={shlex.quote(token)}")


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(
        prog="lcai-linode-sim", description="Linode API v4 simulator (127.0.0.1 only)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="point lcai at it (it prints these two lines for its own port and token):\n"
               "  export LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4\n"
               "  export LINODE_TOKEN=sim-token\n"
               "then lcai plan/deploy/status/destroy talk to the simulator, not to Linode.")
    ap.add_argument("--port", type=int, default=8111, help="port on 127.0.0.1 (0: any free port; the first line "
                                                          "printed says which)")
    ap.add_argument("--token", default="sim-token", help="the API token clients must send")
    ap.add_argument("--run-token", default=None,
                    help="an id for this run, served as run_token by GET /_sim/state (default: random)")
    ap.add_argument("--provision-seconds", type=float, default=2.0)
    ap.add_argument("--boot-seconds", type=float, default=2.0)
    ap.add_argument("--app-ready-seconds", type=float, default=1.0)
    ap.add_argument("--client-ip", default=None,
                    help="the address your machine has on the internet: instances' firewalls then decide whether "
                         "their apps answer you (default: every request passes)")
    ap.add_argument("--nb-check-scale", type=float, default=0.0,
                    help="NodeBalancer checks take check_interval x this many seconds (0: node status is immediate)")
    a = ap.parse_args(argv)
    if not 0 <= a.port <= 65535:
        print(f"lcai-linode-sim: --port {a.port}: must be 0-65535", file=sys.stderr)
        raise SystemExit(2)
    try:
        sim = Simulator(a.port, token=a.token, provision_s=a.provision_seconds, boot_s=a.boot_seconds,
                        app_ready_s=a.app_ready_seconds, run_token=a.run_token, client_ip=a.client_ip,
                        nb_check_scale=a.nb_check_scale)
    except OSError as e:
        why = "the port is in use (another simulator or service?)" if e.errno == errno.EADDRINUSE else \
            (e.strerror or str(e))
        print(f"lcai-linode-sim: cannot listen on 127.0.0.1:{a.port}: {why}; choose another --port, "
              "or --port 0 for a free one", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"Linode API simulator on {sim.url} (token {a.token!r}, run {sim.state.run_token}); Ctrl-C to stop",
          flush=True)
    print(paste_lines(sim.url, a.token), flush=True)
    sim.start(serve=False)
    try:
        sim.httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        sim._stopping.set()
        sim.httpd.server_close()
        sim.state.reset()


if __name__ == "__main__":
    main()
