"""NodeBalancers in the Linode API simulator, faithful to the OpenAPI document (4.189.0).

``/nodebalancers`` (configs inline or separate), ``/nodebalancers/{id}``, ``/configs``, ``/configs/{id}``,
``/configs/{id}/rebuild``, ``/configs/{id}/nodes``, ``/nodes/{id}``, ``/nodebalancers/{id}/firewalls``,
``/nodebalancers/types`` and ``/linode/instances/{id}/nodebalancers``.

A node's ``status`` follows its backend for real: the address (``192.168.x.y:port``) is resolved to the instance
holding that private IPv4, the instance's Cloud Firewall must let the NodeBalancer's source address in (Linode
documents 192.168.255.0/24 as the range NodeBalancers reach backends from; the OpenAPI document does not name
it), and the config's check runs against the instance's simulated app (sim_health.App): ``connection`` needs a
listener, ``http`` a 2xx/3xx answer on ``check_path``, ``http_body`` that answer containing ``check_body``
(a regular expression). ``check: none`` marks a node DOWN only when it refuses connections (passive checks).
By default each read re-evaluates the check, so status changes as soon as the app does; with the setting
``nb_check_scale`` > 0 (``POST /_sim/settings``) status follows check_interval/check_attempts, scaled, as a real
NodeBalancer's does (``unknown`` at first, DOWN only after check_attempts failures).
Fields the simulator does not know (newer API versions, SDK extras) are ignored, not refused.

The NodeBalancer's ``ipv4`` (127.0.2.N in the simulator) answers HTTP on each config's port through its nodes
(:class:`Front`): round robin over ``accept`` nodes that are UP, ``backup`` nodes only when none is, 503 when
nothing is UP; the ``X-Sim-Backend`` header names the node that answered.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import TYPE_CHECKING, Any, Optional

from .sim_health import Listeners
from .sim_validate import NB_LABEL_RE, NB_NODE_LABEL_RE, CHECK_PATH_RE, check_tags, error, firewall_allows, is_int

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Handler, State

PRIVATE_NET = ipaddress.ip_network("192.168.128.0/17")
NB_SOURCE_NET = ipaddress.ip_network("192.168.255.0/24")

# Linode's published NodeBalancer price; the spec's example values (0.1/month) are placeholders.
NB_TYPES = [{"id": "nodebalancer", "label": "NodeBalancer", "price": {"hourly": 0.015, "monthly": 10.0},
             "region_prices": [{"id": "br-gru", "hourly": 0.018, "monthly": 12.0},
                               {"id": "id-cgk", "hourly": 0.018, "monthly": 12.0}],
             "transfer": 0}]

CONFIG_DEFAULTS = {"port": 80, "protocol": "http", "algorithm": "roundrobin", "stickiness": "none",
                   "check": "none", "check_interval": 31, "check_timeout": 30, "check_attempts": 3,
                   "check_path": "", "check_body": "", "check_passive": True, "cipher_suite": "recommended",
                   "proxy_protocol": "none"}
ENUMS = {"protocol": ("http", "https", "tcp"), "algorithm": ("roundrobin", "leastconn", "source"),
         "stickiness": ("none", "table", "http_cookie"), "check": ("none", "connection", "http", "http_body"),
         "cipher_suite": ("recommended", "legacy"), "proxy_protocol": ("none", "v1", "v2")}
NODE_MODES = ("accept", "reject", "drain", "backup")


def _api():
    from . import simulator

    return simulator


def _err(errs: list) -> None:
    if errs:
        raise _api().ApiError.many(errs)


def _not_found():
    return _api().ApiError(404, "Not found")


# ------------------------------------------------------------------ public views

def public_nb(nb: dict) -> dict:
    return {k: v for k, v in nb.items() if not k.startswith("_")}


def backend_status(st: "State", nb: dict, cfg: dict, node: dict) -> str:
    """UP/DOWN of the backend right now, as one check of this config would find it."""
    ip, _, port = node["address"].rpartition(":")
    inst = st.instance_by_private_ip(ip)
    if inst is None or inst["region"] != nb["region"]:
        return "DOWN"  # private networking reaches only instances of the same region
    app = st.apps.get(inst["id"])
    if app is None:
        return "DOWN"
    fw = st.firewall_of("linode", inst["id"])
    if fw is not None and not firewall_allows(fw["rules"], nb["_source_ip"], int(port)):
        return "DOWN"
    if not app.serving(int(port)):
        return "DOWN"
    if cfg["check"] in ("none", "connection"):
        return "UP"
    ans = app.answer(int(port), cfg["check_path"] or "/")
    if ans is None or not 200 <= ans[0] < 400:
        return "DOWN"
    if cfg["check"] == "http_body":
        body = ans[1].decode("utf-8", "replace")
        try:
            found = re.search(cfg["check_body"], body) is not None
        except re.error:
            found = cfg["check_body"] in body
        if not found:
            return "DOWN"
    return "UP"


def node_status(st: "State", nb: dict, cfg: dict, node: dict) -> str:
    """The status the API reports. With ``nb_check_scale`` 0 (the default) it is the backend's status now. With a
    scale > 0 it follows the config's check timing, ``check_interval`` seconds x scale per check: a new node is
    ``unknown`` until its first check, UP after one passing check, DOWN after ``check_attempts`` failing ones,
    so a client sees the stale status a real NodeBalancer shows (the simulator's clock evaluates every node)."""
    real = backend_status(st, nb, cfg, node)
    scale = st.nb_check_scale
    if not scale:
        node["_observed"], node["_pending"] = real, None
        return real
    now = time.monotonic()
    interval = cfg["check_interval"] * scale
    seen = node.get("_observed")
    if seen is None:
        if now - node.get("_created_at", now) >= interval:
            node["_observed"], node["_pending"] = real, None
            return real
        return "unknown"
    if real == seen:
        node["_pending"] = None
        return seen
    if node.get("_pending") is None:
        node["_pending"] = now
    if now - node["_pending"] >= (cfg["check_attempts"] if real == "DOWN" else 1) * interval:
        node["_observed"], node["_pending"] = real, None
        return real
    return seen


def public_node(st: "State", nb: dict, cfg: dict, node: dict) -> dict:
    return dict({k: v for k, v in node.items() if not k.startswith("_")}, status=node_status(st, nb, cfg, node))


def tick(st: "State") -> None:
    """Clock step (caller holds the simulator's lock): run every node's check, so timing does not depend on reads."""
    if st.nb_check_scale:
        for nb in st.nodebalancers.values():
            for cfg in nb["_configs"].values():
                for node in cfg["_nodes"].values():
                    node_status(st, nb, cfg, node)


def public_config(st: "State", nb: dict, cfg: dict) -> dict:
    out = {k: v for k, v in cfg.items() if not k.startswith("_")}
    statuses = [node_status(st, nb, cfg, n) for n in cfg["_nodes"].values()]  # "unknown" counts as neither
    out["nodes_status"] = {"up": statuses.count("UP"), "down": statuses.count("DOWN")}
    out["ssl_cert"] = "<REDACTED>" if cfg.get("_ssl_cert") else None
    out["ssl_key"] = "<REDACTED>" if cfg.get("_ssl_key") else None
    return out


def full(st: "State", nb: dict) -> dict:
    """A NodeBalancer with its configs and their nodes (for /_sim/state)."""
    return dict(public_nb(nb), configs=[dict(public_config(st, nb, c),
                                             nodes=[public_node(st, nb, c, n) for n in c["_nodes"].values()])
                                        for c in nb["_configs"].values()])


def of_instance(st: "State", inst: dict) -> list:
    ip = inst.get("_private")
    if not ip:
        return []
    return [public_nb(nb) for nb in st.nodebalancers.values()
            if any(n["address"].rpartition(":")[0] == ip
                   for c in nb["_configs"].values() for n in c["_nodes"].values())]


# ------------------------------------------------------------------ validation

def check_config(cfg: dict, where: str = "") -> list:
    errs: list = []

    def f(k: str) -> str:
        return f"{where}{k}"

    port = cfg.get("port")
    if not is_int(port) or not 1 <= port <= 65535:
        errs.append(error(f("port"), "Must be an integer 1-65535"))
    for k, allowed in ENUMS.items():
        if cfg.get(k) not in allowed:
            errs.append(error(f(k), f"Must be one of {', '.join(allowed)}"))
    for k in ("check_attempts", "check_timeout"):
        if not is_int(cfg.get(k)) or not 1 <= cfg[k] <= 30:
            errs.append(error(f(k), "Must be an integer 1-30"))
    if not is_int(cfg.get("check_interval")) or cfg["check_interval"] < 1:
        errs.append(error(f("check_interval"), "Must be a positive integer"))
    elif is_int(cfg.get("check_timeout")) and cfg["check_interval"] <= cfg["check_timeout"]:
        errs.append(error(f("check_interval"), "check_interval must be greater than check_timeout"))
    if not isinstance(cfg.get("check_path"), str) or not CHECK_PATH_RE.match(cfg["check_path"]):
        errs.append(error(f("check_path"), "Must contain only letters, digits and / - % ? & = ."))
    if not isinstance(cfg.get("check_body"), str):
        errs.append(error(f("check_body"), "Must be a string"))
    if not isinstance(cfg.get("check_passive"), bool):
        errs.append(error(f("check_passive"), "Must be a boolean"))
    has_ssl = bool(cfg.get("ssl_cert")) or bool(cfg.get("ssl_key"))
    if cfg.get("protocol") == "https" and not (cfg.get("ssl_cert") and cfg.get("ssl_key")):
        errs.append(error(f("ssl_cert"), "ssl_cert and ssl_key are required for the https protocol"))
    elif cfg.get("protocol") in ("http", "tcp") and has_ssl:
        errs.append(error(f("ssl_cert"), f"The {cfg['protocol']} protocol does not support ssl_cert and ssl_key"))
    if cfg.get("proxy_protocol") in ("v1", "v2") and cfg.get("protocol") != "tcp":
        errs.append(error(f("proxy_protocol"), "proxy_protocol requires the tcp protocol"))
    return errs


def check_node(node: Any, where: str = "", partial: bool = False) -> list:
    if not isinstance(node, dict):
        return [error(where.rstrip(".") or None, "A node must be an object")]
    errs: list = []

    def f(k: str) -> str:
        return f"{where}{k}"

    if not partial or "label" in node:
        if not isinstance(node.get("label"), str) or not NB_NODE_LABEL_RE.match(node["label"]):
            errs.append(error(f("label"), "label is required: 3-32 letters, digits, - _ ."))
    if not partial or "address" in node:
        addr = node.get("address")
        m = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+):(\d+)", addr) if isinstance(addr, str) else None
        ip = None
        if m:
            try:
                ip = ipaddress.ip_address(m.group(1))
            except ValueError:
                ip = None
        if ip is None or not 1 <= int(m.group(2)) <= 65535:
            errs.append(error(f("address"), "address is required: a private IPv4 address and port, "
                                            "such as 192.168.210.120:80"))
        elif ip not in PRIVATE_NET:
            errs.append(error(f("address"), "Must be a private IPv4 address (192.168.128.0/17)"))
    if "weight" in node and (not is_int(node["weight"]) or not 1 <= node["weight"] <= 255):
        errs.append(error(f("weight"), "Must be an integer 1-255"))
    if "mode" in node and node["mode"] not in NODE_MODES:
        errs.append(error(f("mode"), f"Must be one of {', '.join(NODE_MODES)}"))
    return errs


def check_nb(b: dict, st: "State", nb: Optional[dict] = None) -> list:
    errs: list = []
    if "label" in b and b["label"] is not None:
        if not isinstance(b["label"], str) or not NB_LABEL_RE.match(b["label"]):
            errs.append(error("label", "Length must be 3-32 characters: letters, digits, - and _"))
        elif any(o["label"] == b["label"] and o is not nb for o in st.nodebalancers.values()):
            errs.append(error("label", "Label must be unique among your NodeBalancers"))
    if "client_conn_throttle" in b and (not is_int(b["client_conn_throttle"])
                                        or not 0 <= b["client_conn_throttle"] <= 20):
        errs.append(error("client_conn_throttle", "Must be an integer 0-20"))
    if "tags" in b:
        errs += check_tags(b["tags"])
    return errs


# ------------------------------------------------------------------ mutations

def _new_config(st: "State", nb: dict, body: dict, where: str = "") -> dict:
    cfg = {**CONFIG_DEFAULTS, **{k: v for k, v in body.items() if k in CONFIG_DEFAULTS}}
    cfg.update(ssl_cert=body.get("ssl_cert"), ssl_key=body.get("ssl_key"))
    errs = check_config({**cfg, **{k: v for k, v in body.items() if k not in cfg and k != "nodes"}}, where)
    if is_int(cfg["port"]) and any(c["port"] == cfg["port"] for c in nb["_configs"].values()):
        errs.append(error(f"{where}port", f"Port {cfg['port']} is already configured on this NodeBalancer"))
    return {"errors": errs, "config": cfg}


def _store_config(st: "State", nb: dict, cfg: dict) -> dict:
    cid = st.new_id()
    rec = {"id": cid, "nodebalancer_id": nb["id"], **{k: v for k, v in cfg.items() if k not in ("ssl_cert", "ssl_key")},
           "ssl_commonname": "sim.invalid" if cfg.get("ssl_cert") else "", "ssl_fingerprint": "",
           "_ssl_cert": cfg.get("ssl_cert"), "_ssl_key": cfg.get("ssl_key"), "_nodes": {}}
    nb["_configs"][cid] = rec
    return rec


def _store_node(st: "State", nb: dict, cfg: dict, body: dict) -> dict:
    nid = st.new_id()
    node = {"id": nid, "config_id": cfg["id"], "nodebalancer_id": nb["id"], "address": body["address"],
            "label": body["label"], "weight": body.get("weight", 100), "mode": body.get("mode", "accept"),
            "_created_at": time.monotonic()}
    cfg["_nodes"][nid] = node
    return node


def _dup_address(cfg: dict, address: str, skip: Optional[int] = None) -> bool:
    return any(n["address"] == address and n["id"] != skip for n in cfg["_nodes"].values())


def create(h: "Handler", b: Any) -> dict:
    st = h.state
    api = _api()
    if not isinstance(b, dict):
        raise api.ApiError(400, "Request body must be an object")
    errs: list = []
    region = next((r for r in api.REGIONS if r["id"] == b.get("region")), None)
    if not b.get("region"):
        errs.append(error("region", "region is required"))
    elif region is None:
        errs.append(error("region", "region is not valid"))
    elif "NodeBalancers" not in region["capabilities"]:
        errs.append(error("region", "NodeBalancers are not available in this region"))
    errs += check_nb(b, st)
    fw_id = b.get("firewall_id")
    if fw_id is not None:
        if not is_int(fw_id) or fw_id not in st.firewalls:
            errs.append(error("firewall_id", "Firewall not found"))
        elif any(e["type"] == "nodebalancer" for e in st.firewalls[fw_id]["entities"]):
            errs.append(error("firewall_id", "Only one NodeBalancer can be assigned to a Firewall at a time"))
    configs = b.get("configs") or []
    staged = []
    if not isinstance(configs, list):
        errs.append(error("configs", "Must be a list of configs"))
        configs = []
    ports = []
    for i, c in enumerate(configs):
        where = f"configs[{i}]."
        if not isinstance(c, dict):
            errs.append(error(f"configs[{i}]", "A config must be an object"))
            continue
        probe = {"_configs": {}}
        res = _new_config(st, probe, c, where)
        errs += res["errors"]
        if res["config"]["port"] in ports:
            errs.append(error(f"{where}port", "Each config must have a unique port"))
        ports.append(res["config"]["port"])
        nodes = c.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            errs.append(error(f"{where}nodes", "Each config must have at least one node"))
            nodes = []
        for j, n in enumerate(nodes):
            errs += check_node(n, f"{where}nodes[{j}].")
        addrs = [n.get("address") for n in nodes if isinstance(n, dict)]
        if len(set(addrs)) != len(addrs):
            errs.append(error(f"{where}nodes", "Node addresses must be unique within a config"))
        staged.append((res["config"], nodes))
    _err(errs)
    nid = st.new_id()
    ip = f"127.0.2.{st.next_nb_ip}"
    src = str(NB_SOURCE_NET.network_address + 1 + (st.next_nb_ip - 1) % 254)
    st.next_nb_ip += 1
    now = api._now()
    nb = {"id": nid, "label": b.get("label") or f"balancer{nid}", "region": region["id"],
          "hostname": f"{ip}.ip.linodeusercontent.com", "ipv4": ip, "ipv6": None,
          "client_conn_throttle": b.get("client_conn_throttle", 0), "tags": list(b.get("tags") or []),
          "created": now, "updated": now, "transfer": {"in": None, "out": None, "total": None},
          "_configs": {}, "_source_ip": src}
    st.nodebalancers[nid] = nb
    for cfg, nodes in staged:
        rec = _store_config(st, nb, cfg)
        for n in nodes:
            _store_node(st, nb, rec, n)
    if fw_id is not None:
        st.firewalls[fw_id]["entities"].append(api._entity(nb, "nodebalancer"))
    st._event("nodebalancer_create", nb, "notification", "nodebalancer")
    return public_nb(nb)


def _update_config(st: "State", nb: dict, cfg: dict, b: Any) -> tuple[list, dict]:
    api = _api()
    if not isinstance(b, dict):
        raise api.ApiError(400, "Request body must be an object")
    merged = {k: v for k, v in cfg.items() if not k.startswith("_")}
    merged.update(ssl_cert=cfg.get("_ssl_cert"), ssl_key=cfg.get("_ssl_key"))
    merged.update({k: v for k, v in b.items() if k != "nodes"})
    errs = check_config({k: v for k, v in merged.items() if k not in ("ssl_commonname", "ssl_fingerprint")})
    if is_int(merged.get("port")) and any(c["port"] == merged["port"] and c is not cfg
                                          for c in nb["_configs"].values()):
        errs.append(error("port", f"Port {merged['port']} is already configured on this NodeBalancer"))
    return errs, merged


def _apply_config(cfg: dict, merged: dict) -> None:
    for k in CONFIG_DEFAULTS:
        cfg[k] = merged[k]
    cfg["_ssl_cert"], cfg["_ssl_key"] = merged.get("ssl_cert"), merged.get("ssl_key")
    cfg["ssl_commonname"] = "sim.invalid" if cfg["_ssl_cert"] else ""


def route(h: "Handler", method: str, path: str, query: dict, body: Any) -> Optional[tuple[int, Any]]:
    st = h.state
    api = _api()
    m = re.fullmatch
    if path == "/nodebalancers/types":
        return h._list(NB_TYPES, query) if method == "GET" else None
    if path == "/nodebalancers":
        if method == "GET":
            return h._list([public_nb(nb) for nb in st.nodebalancers.values()], query)
        if method == "POST":
            return 200, create(h, body)
        return None
    g = m(r"/nodebalancers/(\d+)(/.*)?", path)
    if not g:
        return None
    nb = st.nodebalancers.get(int(g.group(1)))
    rest = g.group(2) or ""
    if nb is None:
        raise _not_found()
    if rest == "":
        if method == "GET":
            return 200, public_nb(nb)
        if method == "PUT":
            if not isinstance(body, dict):
                raise api.ApiError(400, "Request body must be an object")
            _err(check_nb(body, st, nb))
            for k in ("label", "client_conn_throttle", "tags"):
                if k in body and body[k] is not None:
                    nb[k] = body[k]
            nb["updated"] = api._now()
            return 200, public_nb(nb)
        if method == "DELETE":
            del st.nodebalancers[nb["id"]]
            for fw in st.firewalls.values():
                fw["entities"] = [e for e in fw["entities"]
                                  if not (e["id"] == nb["id"] and e["type"] == "nodebalancer")]
            st._event("nodebalancer_delete", nb, "notification", "nodebalancer")
            return 200, {}
        return None
    if rest == "/firewalls" and method == "GET":
        return h._list([api._public_fw(f) for f in st.firewalls.values()
                        if any(e["id"] == nb["id"] and e["type"] == "nodebalancer" for e in f["entities"])], query)
    if rest == "/configs":
        if method == "GET":
            return h._list([public_config(st, nb, c) for c in nb["_configs"].values()], query)
        if method == "POST":
            if not isinstance(body, dict):
                raise api.ApiError(400, "Request body must be an object")
            res = _new_config(st, nb, {k: v for k, v in body.items() if k != "nodes"})
            _err(res["errors"])
            cfg = _store_config(st, nb, res["config"])
            return 200, public_config(st, nb, cfg)
        return None
    g = m(r"/configs/(\d+)(/nodes(?:/(\d+))?|/rebuild)?", rest)
    if not g:
        return None
    cfg = nb["_configs"].get(int(g.group(1)))
    if cfg is None:
        raise _not_found()
    sub = g.group(2)
    if sub is None:
        if method == "GET":
            return 200, public_config(st, nb, cfg)
        if method == "PUT":
            errs, merged = _update_config(st, nb, cfg, body)
            _err(errs)
            _apply_config(cfg, merged)
            return 200, public_config(st, nb, cfg)
        if method == "DELETE":
            del nb["_configs"][cfg["id"]]
            return 200, {}
        return None
    if sub == "/rebuild":
        return (200, rebuild_config(st, nb, cfg, body)) if method == "POST" else None
    if sub == "/nodes":
        if method == "GET":
            return h._list([public_node(st, nb, cfg, n) for n in cfg["_nodes"].values()], query)
        if method == "POST":
            errs = check_node(body)
            if not errs and _dup_address(cfg, body["address"]):
                errs.append(error("address", "This address is already a node of this config"))
            _err(errs)
            return 200, public_node(st, nb, cfg, _store_node(st, nb, cfg, body))
        return None
    node = cfg["_nodes"].get(int(g.group(3)))
    if node is None:
        raise _not_found()
    if method == "GET":
        return 200, public_node(st, nb, cfg, node)
    if method == "PUT":
        errs = check_node(body, partial=True)
        if not errs and "address" in body and _dup_address(cfg, body["address"], node["id"]):
            errs.append(error("address", "This address is already a node of this config"))
        _err(errs)
        for k in ("address", "label", "weight", "mode"):
            if k in body:
                node[k] = body[k]
        return 200, public_node(st, nb, cfg, node)
    if method == "DELETE":
        del cfg["_nodes"][node["id"]]
        return 200, {}
    return None


def rebuild_config(st: "State", nb: dict, cfg: dict, b: Any) -> dict:
    """spec post-rebuild-node-balancer-config: the config's settings and its complete node list (nodes with an
    id are updated, without one created, and nodes left out are deleted)."""
    errs, merged = _update_config(st, nb, cfg, b)
    nodes = b.get("nodes") if isinstance(b, dict) else None
    if not isinstance(nodes, list):
        errs.append(error("nodes", "nodes is required"))
        nodes = []
    for j, n in enumerate(nodes):
        errs += check_node(n, f"nodes[{j}].")
        if isinstance(n, dict) and "id" in n and n["id"] not in cfg["_nodes"]:
            errs.append(error(f"nodes[{j}].id", f"Node {n['id']} is not a node of this config"))
    addrs = [n.get("address") for n in nodes if isinstance(n, dict)]
    if len(set(addrs)) != len(addrs):
        errs.append(error("nodes", "Node addresses must be unique within a config"))
    _err(errs)
    _apply_config(cfg, merged)
    keep = {n["id"] for n in nodes if "id" in n}
    for nid in list(cfg["_nodes"]):
        if nid not in keep:
            del cfg["_nodes"][nid]
    for n in nodes:
        if "id" in n:
            cfg["_nodes"][n["id"]].update({k: n[k] for k in ("address", "label", "weight", "mode") if k in n})
        else:
            _store_node(st, nb, cfg, n)
    return public_config(st, nb, cfg)


# ------------------------------------------------------------------ traffic: the NodeBalancer's own address

NO_SERVER = (b"<html><body><h1>503 Service Unavailable</h1>\n"
             b"No server is available to handle this request.\n</body></html>\n")


class Front(Listeners):
    """Listens on a NodeBalancer's IPv4 (127.0.2.N in the simulator) on each config's port and hands each HTTP
    request to a backend chosen as the NodeBalancer would: ``accept`` nodes that are UP (round robin; ``backup``
    nodes only when no ``accept`` node is UP; never ``drain``/``reject`` nodes for new requests); 503 when none
    is available. The backend's answer is its simulated app's answer (sim_health.App)."""

    def __init__(self, st: "State", nb_id: int, ip: str):
        import threading

        self.st, self.nb_id, self.ip = st, nb_id, ip
        self.servers: dict = {}
        self.errors: dict = {}
        self.turn = 0
        self.lock = threading.Lock()
        self.stopped = False

    def pick(self, port: int) -> Optional[tuple]:
        """(node, app) to serve a new request on port, or None (caller holds the simulator's lock)."""
        st = self.st
        nb = st.nodebalancers.get(self.nb_id)
        cfg = next((c for c in (nb or {}).get("_configs", {}).values() if c["port"] == port), None)
        if cfg is None:
            return None
        nodes = list(cfg["_nodes"].values())
        up = [n for n in nodes if n["mode"] == "accept" and node_status(st, nb, cfg, n) == "UP"] or \
             [n for n in nodes if n["mode"] == "backup" and node_status(st, nb, cfg, n) == "UP"]
        if not up:
            return None
        self.turn += 1
        node = up[self.turn % len(up)]
        inst = st.instance_by_private_ip(node["address"].rpartition(":")[0])
        return node, st.apps.get(inst["id"]) if inst else None

    def answer(self, port: int, path: str) -> tuple[int, bytes, str, Optional[str]]:
        with self.st.lock:
            chosen = self.pick(port)
            if chosen is None or chosen[1] is None:
                return 503, NO_SERVER, "text/html", None
            node, app = chosen
            ans = app.answer(int(node["address"].rpartition(":")[2]), path)
        if ans is None:
            return 503, NO_SERVER, "text/html", node["label"]
        return ans[0], ans[1], "application/json", node["label"]

    def sync(self) -> None:
        with self.st.lock:
            nb = self.st.nodebalancers.get(self.nb_id)
            want = {c["port"] for c in nb["_configs"].values()} if nb else set()
        with self.lock:
            if self.stopped:
                return
            for port in want - set(self.servers) - set(self.errors):
                self._listen(port)
            for port in set(self.servers) - want:
                self._close(port)

    def _listen(self, port: int) -> None:
        from http.server import BaseHTTPRequestHandler


        front = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                code, body, ctype, backend = front.answer(port, self.path)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if backend:
                    self.send_header("X-Sim-Backend", backend)
                self.end_headers()
                if self.command != "HEAD" and code not in (204, 304):
                    self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *a):
                pass

        self._start_listener(port, H, f"NodeBalancer {self.nb_id}")


def sync_fronts(st: "State") -> None:
    """Clock step: a Front for every NodeBalancer (listening on its config ports), none for deleted ones."""
    with st.lock:
        for nid, nb in st.nodebalancers.items():
            if nid not in st.nb_fronts:
                st.nb_fronts[nid] = Front(st, nid, nb["ipv4"])
        gone = [st.nb_fronts.pop(nid) for nid in list(st.nb_fronts) if nid not in st.nodebalancers]
        fronts = list(st.nb_fronts.values())
    for f in gone:
        f.stop()
    for f in fronts:
        f.sync()
