"""A Linode API v4 simulator: real HTTP on 127.0.0.1, the endpoints lcai uses, validated like the spec
(OpenAPI 4.189.0) and answering in Linode's shapes, with a lifecycle and fault injection.

It also stands in for the booted machines: each instance gets a loopback IPv4 (127.0.1.N), and once it is
running (plus ``app_ready_s``) the template's health check is answered there — HTTP 200 on any path of the
published port, or a TCP accept — so ``deploy --wait`` and ``status`` work end to end.

  lcai-linode-sim --port 8111            # then LCAI_LINODE_API_URL=http://127.0.0.1:8111/v4 LINODE_TOKEN=sim-token

Test-only control endpoints live under ``/_sim/`` (no token): ``POST /_sim/faults`` (a list of faults),
``POST /_sim/reset``, ``GET /_sim/state``, ``GET /_sim/requests``.
A fault: ``{"method": "POST", "path": "/linode/instances$", "times": 1, "status": 429, "retry_after": 0,
"reason": "...", "when": "before" | "after", "action": "status" | "reset" | "hang", "hang_s": 2}``.
``when: "after"`` performs the request and then fails the response (a lost reply: the classic duplicate maker).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import socket
import socketserver
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

LABEL_RE = re.compile(r"^[a-zA-Z]((?!--|__|\.\.)[a-zA-Z0-9-_.])+$")
USER_DATA_MAX = 65535  # spec: "Unencoded data must not exceed 65535 bytes"

REGIONS = [
    {"id": "us-ord", "label": "Chicago, IL", "country": "us",
     "capabilities": ["Linodes", "Block Storage", "Cloud Firewall", "Metadata", "GPU Linodes", "Placement Group"]},
    {"id": "us-mia", "label": "Miami, FL", "country": "us",
     "capabilities": ["Linodes", "Block Storage", "Cloud Firewall", "Metadata"]},
    {"id": "de-fra-2", "label": "Frankfurt 2, DE", "country": "de",
     "capabilities": ["Linodes", "Cloud Firewall", "Metadata", "GPU Linodes"]},
    {"id": "br-gru", "label": "Sao Paulo, BR", "country": "br",
     "capabilities": ["Linodes", "Cloud Firewall", "Metadata"]},
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
        self.status, self.errors, self.headers = status, [dict(reason=reason, **({"field": field} if field else {}))], headers or {}


class Fault:
    def __init__(self, spec: dict):
        self.method = spec.get("method", "*").upper()
        self.path = re.compile(spec.get("path", ".*"))
        self.times = int(spec.get("times", 1))
        self.status = int(spec.get("status", 500))
        self.retry_after = spec.get("retry_after")
        self.reason = spec.get("reason", "Simulated failure")
        self.when = spec.get("when", "before")
        self.action = spec.get("action", "status")
        self.hang_s = float(spec.get("hang_s", 5))
        self.hits = 0

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and bool(self.path.search(path))


class HealthResponder:
    """Answers an instance's health check on its loopback address once it is 'ready'."""

    def __init__(self, ip: str, port: int, kind: str, ready):
        self.ip, self.port, self.kind, self.ready = ip, port, kind, ready
        self.server: Optional[socketserver.BaseServer] = None
        self.error: Optional[str] = None

    def start(self) -> None:
        ready = self.ready

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                if not ready():
                    self.close_connection = True
                    self.connection.close()
                    return
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        try:
            srv = ThreadingHTTPServer((self.ip, self.port), H)
        except OSError as e:
            self.error = f"cannot answer health checks on {self.ip}:{self.port}: {e}"
            return
        srv.daemon_threads = True
        self.server = srv
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class State:
    def __init__(self, token: str = "sim-token", provision_s: float = 2.0, boot_s: float = 2.0,
                 app_ready_s: float = 1.0, serve_health: bool = True):
        self.token = token
        self.provision_s, self.boot_s, self.app_ready_s = provision_s, boot_s, app_ready_s
        self.serve_health = serve_health
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.RLock()):
            for r in getattr(self, "responders", {}).values():
                r.stop()
            self.instances: dict[int, dict] = {}
            self.firewalls: dict[int, dict] = {}
            self.events: list[dict] = []
            self.faults: list[Fault] = []
            self.requests: list[dict] = []
            self.responders: dict[int, HealthResponder] = {}
            self.next_id = 40000000
            self.next_ip = 2
            self.next_event = 1

    # ------------------------------------------------------------ lifecycle

    def _tick(self, inst: dict) -> None:
        """Advance an instance's status by the clock: provisioning → booting → running."""
        if inst["status"] in ("provisioning", "booting"):
            age = time.monotonic() - inst["_t0"]
            new = "running" if age >= self.provision_s + self.boot_s else ("booting" if age >= self.provision_s
                                                                            else "provisioning")
            if new != inst["status"]:
                if new in ("booting", "running") and inst["status"] == "provisioning":
                    self._event("linode_create", inst, "finished")
                    self._event("linode_boot", inst, "started")
                if new == "running":
                    self._event("linode_boot", inst, "finished")
                inst["status"] = new
                inst["updated"] = _now()
                if new == "running":
                    inst["_running_at"] = time.monotonic()

    def _event(self, action: str, inst: dict, status: str) -> None:
        self.events.append({"id": self.next_event, "action": action, "status": status, "created": _now(),
                            "entity": {"id": inst["id"], "label": inst["label"], "type": "linode",
                                       "url": f"/v4/linode/instances/{inst['id']}"},
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


def _public(inst: dict) -> dict:
    return {k: v for k, v in inst.items() if not k.startswith("_")}


def _paginate(items: list, query: dict) -> dict:
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


class Handler(BaseHTTPRequestHandler):
    server_version = "lcai-linode-sim/0.1"
    protocol_version = "HTTP/1.1"
    state: State

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
        self.wfile.write(raw)

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
        if path.startswith("/_sim/"):
            return self._control(method, path)
        if not path.startswith("/v4/"):
            return self._send(404, {"errors": [{"reason": "Not found"}]})
        api_path = path[3:]
        try:  # always consume the body first: a fault reply must not leave it in a keep-alive connection
            body = self._body() if method in ("POST", "PUT") else None
        except ApiError as e:
            return self._send(e.status, {"errors": e.errors})
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
            if auth != f"Bearer {st.token}":
                raise ApiError(401, "Invalid Token")
            with st.lock:
                status, payload = self._route(method, api_path, query, body)
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
        self._send(fault.status, {"errors": [{"reason": fault.reason}]}, headers)
        return True

    def _control(self, method: str, path: str) -> None:
        st = self.state
        with st.lock:
            if path == "/_sim/faults" and method == "POST":
                specs = self._body()
                st.faults.extend(Fault(s) for s in (specs if isinstance(specs, list) else [specs]))
                return self._send(200, {"faults": len(st.faults)})
            if path == "/_sim/faults" and method == "DELETE":
                st.faults.clear()
                return self._send(200, {})
            if path == "/_sim/reset" and method == "POST":
                st.reset()
                return self._send(200, {})
            if path == "/_sim/state" and method == "GET":
                for inst in st.instances.values():
                    st._tick(inst)
                return self._send(200, {"instances": [dict(_public(i), user_data=i["_user_data"])
                                                      for i in st.instances.values()],
                                        "firewalls": list(st.firewalls.values()),
                                        "faults_left": sum(f.times for f in st.faults)})
            if path == "/_sim/requests" and method == "GET":
                return self._send(200, st.requests)
        self._send(404, {"errors": [{"reason": "Not found"}]})

    do_GET = lambda self: self._handle("GET")  # noqa: E731
    do_POST = lambda self: self._handle("POST")  # noqa: E731
    do_PUT = lambda self: self._handle("PUT")  # noqa: E731
    do_DELETE = lambda self: self._handle("DELETE")  # noqa: E731

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
        return 200, _paginate(items, query)

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
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
        if g := m(r"/linode/instances/(\d+)(/ips)?", path):
            inst = st.instances.get(int(g.group(1)))
            if inst is None:
                raise ApiError(404, "Not found")
            st._tick(inst)
            if g.group(2):
                if method != "GET":
                    raise ApiError(405, "Method not allowed")
                return 200, {"ipv4": {"public": [{"address": inst["ipv4"][0], "gateway": None, "prefix": 24,
                                                  "public": True, "rdns": None, "region": inst["region"],
                                                  "subnet_mask": "255.255.255.0", "type": "ipv4",
                                                  "linode_id": inst["id"]}],
                                      "private": [], "shared": [], "reserved": []},
                             "ipv6": {"slaac": {"address": inst["ipv6"].split("/")[0], "prefix": 64,
                                                "type": "ipv6", "public": True, "rdns": None, "gateway": "fe80::1",
                                                "subnet_mask": "ffff:ffff:ffff:ffff::", "region": inst["region"],
                                                "linode_id": inst["id"]},
                                      "link_local": {"address": f"fe80::{inst['id'] % 65536:x}", "prefix": 64,
                                                     "type": "ipv6", "public": False, "rdns": None,
                                                     "gateway": "fe80::1", "subnet_mask": "ffff:ffff:ffff:ffff::",
                                                     "region": inst["region"], "linode_id": inst["id"]},
                                      "global": []}}
            if method == "GET":
                return 200, _public(inst)
            if method == "PUT":
                return 200, self._update_instance(inst, body)
            if method == "DELETE":
                return 200, self._delete_instance(inst)
        if path == "/networking/firewalls":
            if method == "GET":
                return self._list(list(st.firewalls.values()), query)
            if method == "POST":
                return 200, self._create_firewall(body)
        if g := m(r"/networking/firewalls/(\d+)", path):
            fw = st.firewalls.get(int(g.group(1)))
            if fw is None:
                raise ApiError(404, "Not found")
            if method == "GET":
                return 200, fw
            if method == "DELETE":
                del st.firewalls[fw["id"]]
                return 200, {}
        if method == "GET" and path == "/account/events":
            return self._list(sorted(st.events, key=lambda e: -e["id"]), query)
        raise ApiError(404, "Not found")

    def _one(self, items: list, key: str) -> dict:
        for i in items:
            if i["id"] == key:
                return i
        raise ApiError(404, "Not found")

    def _create_instance(self, b: Any) -> dict:
        st = self.state
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        errors = []

        def err(reason, fld=None):
            errors.append({"reason": reason, **({"field": fld} if fld else {})})

        region = next((r for r in REGIONS if r["id"] == b.get("region")), None)
        ltype = next((t for t in TYPES if t["id"] == b.get("type")), None)
        if not b.get("region"):
            err("region is required", "region")
        elif region is None:
            err("region is not valid", "region")
        if not b.get("type"):
            err("type is required", "type")
        elif ltype is None:
            err("A valid plan type by that ID was not found", "type")
        image = None
        if b.get("image") is not None:
            image = next((i for i in IMAGES if i["id"] == b["image"]), None)
            if image is None:
                err("image is not valid", "image")
            rp = b.get("root_pass")
            if not rp and not b.get("authorized_keys") and not b.get("authorized_users"):
                err("root_pass is required", "root_pass")
            if rp is not None:
                if not isinstance(rp, str) or not 7 <= len(rp) <= 128:
                    err("Length must be 7-128 characters", "root_pass")
                elif sum(bool(re.search(p, rp)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")) < 3:
                    err("Password does not meet strength requirement", "root_pass")
        label = b.get("label")
        if label is not None:
            if not isinstance(label, str) or not 3 <= len(label) <= 64:
                err("Length must be 3-64 characters", "label")
            elif not LABEL_RE.match(label) or not label[-1].isalnum():
                err("Label must begin and end with an alphanumeric character, and contain only alphanumeric "
                    "characters, hyphens, underscores, or periods; no consecutive --, __ or ..", "label")
            elif any(i["label"] == label for i in st.instances.values()):
                err("Label must be unique among your Linodes", "label")
        tags = b.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            err("tags must be a list of strings", "tags")
        else:
            for t in tags:
                if not 3 <= len(t) <= 50:
                    err("Length must be 3-50 characters", "tags")
        keys = b.get("authorized_keys") or []
        for k in keys:
            if not isinstance(k, str) or not k.startswith(("ssh-", "ecdsa-", "sk-")):
                err("Invalid SSH key", "authorized_keys")
        if "firewall_id" in b and b["firewall_id"] is not None:
            if not isinstance(b["firewall_id"], int) or isinstance(b["firewall_id"], bool):
                err("firewall_id must be an integer", "firewall_id")
            elif b["firewall_id"] not in st.firewalls:
                err("Firewall not found", "firewall_id")
        md = b.get("metadata")
        if md is not None:
            if not isinstance(md, dict) or set(md) - {"user_data"}:
                err("metadata: only user_data is allowed", "metadata")
            else:
                try:
                    raw = base64.b64decode(md.get("user_data") or "", validate=True)
                except (binascii.Error, ValueError):
                    raw = None
                    err("user_data must be base64-encoded", "metadata.user_data")
                if raw is not None and len(raw) > USER_DATA_MAX:
                    err(f"Unencoded data must not exceed {USER_DATA_MAX} bytes", "metadata.user_data")
                if region is not None and "Metadata" not in region["capabilities"]:
                    err("The selected region does not support Metadata", "metadata")
                if image is not None and "cloud-init" not in image["capabilities"]:
                    err("The selected image does not support Metadata (cloud-init)", "metadata")
        if ltype is not None and region is not None and ltype["class"] == "gpu" and \
                "GPU Linodes" not in region["capabilities"]:
            err("GPU Linodes are not available in this region", "type")
        if errors:
            e = ApiError(400, errors[0]["reason"])
            e.errors = errors
            raise e
        iid = st.next_id
        st.next_id += 1
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
            "_t0": time.monotonic(), "_user_data": (md or {}).get("user_data"),
        }
        st.instances[iid] = inst
        fw_id = b.get("firewall_id")
        if fw_id:
            st.firewalls[fw_id]["entities"].append({"id": iid, "type": "linode", "label": inst["label"],
                                                     "url": f"/v4/linode/instances/{iid}"})
        st._event("linode_create", inst, "started")
        self._start_health(inst)
        return _public(inst)

    def _start_health(self, inst: dict) -> None:
        """Serve the health check the user data's app would answer (see the module docstring)."""
        st = self.state
        if not st.serve_health or not inst.get("_user_data"):
            return
        try:
            import gzip

            text = gzip.decompress(base64.b64decode(inst["_user_data"])).decode()
        except (OSError, ValueError):
            return
        port = re.search(r"-p (\d+):\d+ ", text)
        if not port:
            return
        kind = "tcp" if "/dev/tcp/" in text else "http"
        iid = inst["id"]
        resp = HealthResponder(inst["ipv4"][0], int(port.group(1)), kind, lambda: st.app_ready(iid))
        resp.start()
        st.responders[iid] = resp

    def _update_instance(self, inst: dict, b: Any) -> dict:
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        if "tags" in b:
            if not isinstance(b["tags"], list) or any(not 3 <= len(t) <= 50 for t in b["tags"]):
                raise ApiError(400, "Length must be 3-50 characters", "tags")
            inst["tags"] = list(b["tags"])
        if "label" in b:
            if not isinstance(b["label"], str) or not LABEL_RE.match(b["label"]) or not 3 <= len(b["label"]) <= 64:
                raise ApiError(400, "Invalid label", "label")
            inst["label"] = b["label"]
        inst["updated"] = _now()
        return _public(inst)

    def _delete_instance(self, inst: dict) -> dict:
        st = self.state
        del st.instances[inst["id"]]
        resp = st.responders.pop(inst["id"], None)
        if resp is not None:
            resp.stop()
        for fw in st.firewalls.values():
            fw["entities"] = [e for e in fw["entities"] if e["id"] != inst["id"]]
        st._event("linode_delete", inst, "finished")
        return {}

    def _create_firewall(self, b: Any) -> dict:
        st = self.state
        if not isinstance(b, dict):
            raise ApiError(400, "Request body must be an object")
        label = b.get("label")
        if not isinstance(label, str) or not 3 <= len(label) <= 32 or not LABEL_RE.match(label):
            raise ApiError(400, "Label must be 3-32 characters: letters, digits, - _ . (letter first)", "label")
        if any(f["label"] == label for f in st.firewalls.values()):
            raise ApiError(400, "Label must be unique", "label")
        rules = b.get("rules")
        if not isinstance(rules, dict):
            raise ApiError(400, "rules is required", "rules")
        for pol in ("inbound_policy", "outbound_policy"):
            if rules.get(pol) not in ("ACCEPT", "DROP"):
                raise ApiError(400, f"{pol} is required", f"rules.{pol}")
        for direction in ("inbound", "outbound"):
            for i, rule in enumerate(rules.get(direction) or []):
                where = f"rules.{direction}[{i}]"
                if rule.get("action") not in ("ACCEPT", "DROP"):
                    raise ApiError(400, "action must be ACCEPT or DROP", f"{where}.action")
                if rule.get("protocol") not in ("TCP", "UDP", "ICMP", "IPENCAP"):
                    raise ApiError(400, "protocol is not valid", f"{where}.protocol")
                addrs = rule.get("addresses") or {}
                if not (addrs.get("ipv4") or addrs.get("ipv6")):
                    raise ApiError(400, "Must not be an empty list", f"{where}.addresses")
                ports = rule.get("ports")
                if ports is not None:
                    if rule["protocol"] not in ("TCP", "UDP"):
                        raise ApiError(400, "Ports are only allowed for TCP and UDP", f"{where}.ports")
                    pieces = [p.strip() for p in str(ports).split(",")]
                    count = sum(2 if "-" in p else 1 for p in pieces)
                    if count > 15 or not all(re.fullmatch(r"[1-9][0-9]*(-[1-9][0-9]*)?", p) for p in pieces):
                        raise ApiError(400, "Invalid ports", f"{where}.ports")
                lbl = rule.get("label")
                if lbl is not None and not 3 <= len(lbl) <= 32:
                    raise ApiError(400, "Length must be 3-32 characters", f"{where}.label")
        fid = st.next_id
        st.next_id += 1
        fw = {"id": fid, "label": label, "status": "enabled", "created": _now(), "updated": _now(),
              "tags": list(b.get("tags") or []), "entities": [],
              "rules": {**rules, "version": 1, "fingerprint": f"{fid:08x}"[-8:]}}
        st.firewalls[fid] = fw
        return fw


class Simulator:
    """Run the simulator in a background thread (tests, the offline demo)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **state_kw):
        self.state = State(**state_kw)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v4"

    def start(self) -> "Simulator":
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.state.reset()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(prog="lcai-linode-sim", description="Linode API v4 simulator (127.0.0.1 only)")
    ap.add_argument("--port", type=int, default=8111)
    ap.add_argument("--token", default="sim-token")
    ap.add_argument("--provision-seconds", type=float, default=2.0)
    ap.add_argument("--boot-seconds", type=float, default=2.0)
    ap.add_argument("--app-ready-seconds", type=float, default=1.0)
    a = ap.parse_args(argv)
    sim = Simulator(a.port, token=a.token, provision_s=a.provision_seconds, boot_s=a.boot_seconds,
                    app_ready_s=a.app_ready_seconds)
    print(f"Linode API simulator on {sim.url} (token {a.token!r}); Ctrl-C to stop", flush=True)
    try:
        sim.httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.httpd.server_close()


if __name__ == "__main__":
    main()
