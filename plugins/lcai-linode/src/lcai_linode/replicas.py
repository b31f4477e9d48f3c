"""Replicas behind a Linode NodeBalancer: the create steps, the NodeBalancer's view of health, `lcai scale` and
rolling redeploys (docs/scaling.md). Mixed into ``LinodeProvider``.

A replicated deployment (registry record with ``replicas``: N) is N instances labelled
``lcai-<app>-<env>-<id>-<k>`` with the contract tags and a private IPv4 each, one Cloud Firewall for all (SSH as
for one instance; the app port open only to 192.168.255.0/24, where NodeBalancers reach backends from), and one
NodeBalancer ``lcai-nb-<id>`` (tagged like the instances) with one config on the app's public port whose nodes
are the replicas' private addresses. Its ``provider_state``: ``firewall_id``, ``nodebalancer_id``,
``nb_config_id`` and ``replicas`` — a list of ``{k, linode_id, private_ip, public_ip, rendered_sha256}``.

Every create is reconciled by label (never a duplicate after a lost reply) and every step is undoable. Node
ids are never trusted from the registry: nodes are read from the API by address when needed.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any, Callable, Optional

from lcai_core.api import InputError, LcaiError, Spec, Step, TrackedError, env_seconds

PRIVATE_NET = ipaddress.ip_network("192.168.128.0/17")  # Linode private IPv4 addresses
NB_SOURCES = "192.168.255.0/24"  # Linode documents it as the range NodeBalancers connect to backends from
CHECK_PATH_RE = re.compile(r"^[a-zA-Z0-9/\-%?&=.]*$")  # the API's pattern for check_path


def nb_label(deployment_id: str) -> str:
    return f"lcai-nb-{deployment_id}"  # 16 chars: within the NodeBalancer label limit (3-32)


def replica_label(app: str, env: str, deployment_id: str, k: int) -> str:
    from lcai_core.api import instance_label

    return instance_label(app, env, f"{deployment_id}-{k}")


def replica_index(inst: dict, deployment_id: str) -> Optional[int]:
    m = re.search(rf"-{re.escape(deployment_id)}-(\d+)$", inst.get("label") or "")
    return int(m.group(1)) if m else None


def private_ip(inst: dict) -> Optional[str]:
    for a in inst.get("ipv4") or []:
        try:
            if ipaddress.ip_address(a) in PRIVATE_NET:
                return a
        except ValueError:
            continue
    return None


def public_ip(inst: dict) -> Optional[str]:
    priv = private_ip(inst)
    return next((a for a in inst.get("ipv4") or [] if a != priv), None)


def is_replicated(record: dict) -> bool:
    """A deployment behind a NodeBalancer (made with replicas > 1; stays so when scaled down to 1)."""
    return record.get("replicas") is not None


def nb_check(health: Optional[dict]) -> dict:
    """The NodeBalancer config's health check from the template's: http -> ``http`` on the health path, tcp and
    exec -> ``connection`` on the port (the NodeBalancer cannot run a command); interval, timeout and attempts
    from the template, clamped to what the API accepts (timeout and attempts 1-30, interval > timeout)."""
    h = health or {}
    timeout = max(1, min(30, int(h.get("timeout_seconds") or 5)))
    out = {"check": "connection", "check_timeout": timeout,
           "check_interval": max(int(h.get("interval_seconds") or 10), timeout + 1),
           "check_attempts": max(1, min(30, int(h.get("max_retries") or 3))), "check_passive": True}
    path = h.get("path") or "/"
    if h.get("type") == "http" and CHECK_PATH_RE.match(path):
        out.update(check="http", check_path=path)
    return out


def serving(node: dict) -> bool:
    """A replica's node takes traffic: UP and in ``accept`` mode."""
    return node.get("status") == "UP" and node.get("mode") == "accept"


class ReplicaMixin:
    """The replica half of ``LinodeProvider`` (it supplies ``client``, ``retrier``, ``_get``, ``_create``,
    ``list_instances``, ``find_firewall``, ``create_firewall``, ``delete_instance``, ``delete_firewall``)."""

    supports_replicas = True

    # ------------------------------------------------------------ lookups

    def find_nodebalancer(self, deployment_id: str) -> Optional[dict]:
        label = nb_label(deployment_id)
        resp = self._get("listing NodeBalancers", "/nodebalancers", {"label": label})
        return next((n for n in resp.get("data", []) if n.get("label") == label), None)

    def list_nodebalancers(self) -> list[dict]:
        """Every lcai NodeBalancer, ONE tag-filtered request per 500."""
        from .provider import checked_pages

        out, page, pages = [], 1, 1
        while page <= pages:
            resp = self._get("listing NodeBalancers", f"/nodebalancers?page={page}&page_size=500",
                             {"tags": {"+contains": "lcai"}})
            out.extend(resp.get("data", []))
            pages = checked_pages(resp, page, "listing NodeBalancers")
            page += 1
        return [n for n in out if "lcai" in (n.get("tags") or [])]

    def nb_price(self, region: str) -> dict:
        from .provider import price_of

        types = self._get("looking up NodeBalancer prices", "/nodebalancers/types").get("data", [])
        t = next((x for x in types if x.get("id") == "nodebalancer"), types[0] if types else {})
        return price_of(t, region)

    def replica_instances(self, deployment_id: str) -> dict[int, list[dict]]:
        """The deployment's instances by replica index (a list, so a duplicate would show)."""
        out: dict[int, list[dict]] = {}
        for inst in self.list_instances(deployment_id):
            k = replica_index(inst, deployment_id)
            if k is not None:
                out.setdefault(k, []).append(inst)
        return out

    def _config(self, record_or_state: dict, nb_id: int) -> dict:
        cfgs = self._get(f"reading NodeBalancer {nb_id} configs", f"/nodebalancers/{nb_id}/configs").get("data", [])
        if not cfgs:
            raise LcaiError(f"NodeBalancer {nb_id} has no config", hint="`lcai destroy ID` and deploy again")
        port = record_or_state.get("external_port")
        return next((c for c in cfgs if c.get("port") == port), cfgs[0])

    def nodes(self, nb_id: int, cfg_id: int) -> list[dict]:
        return self._get(f"reading NodeBalancer {nb_id} nodes",
                         f"/nodebalancers/{nb_id}/configs/{cfg_id}/nodes").get("data", [])

    # ------------------------------------------------------------ writes (each reconciled or idempotent)

    def _put(self, what: str, path: str, body: dict) -> dict:
        from linode_api4 import ApiError

        from .provider import refused

        try:
            return self.retrier.call(what, lambda: self.client.put(path, data=body))
        except ApiError as e:
            raise refused(what, e) from None

    def create_replica(self, spec: Spec, k: int, firewall_id: int) -> dict:
        label = replica_label(spec.app, spec.env, spec.deployment_id, k)
        metadata = self.client.linode.build_instance_metadata(user_data=spec.user_data_b64, encode_user_data=False)
        body = {"type": spec.type, "region": spec.region, "image": spec.image, "label": label, "tags": list(spec.tags),
                "root_pass": spec.root_password, "firewall_id": firewall_id, "metadata": metadata, "booted": True,
                "private_ip": True}
        if spec.ssh_keys:
            body["authorized_keys"] = list(spec.ssh_keys)

        def lookup():
            return next(iter(self.replica_instances(spec.deployment_id).get(k, [])), None)

        return self._create(f"creating instance {label}", lambda: self.client.post("/linode/instances", data=body),
                            lookup)

    def create_nodebalancer(self, spec: Spec, replicas: list[dict]) -> dict:
        label = nb_label(spec.deployment_id)
        cfg = {"port": spec.external_port, "protocol": "http" if (spec.health or {}).get("type") == "http" else "tcp",
               "algorithm": "roundrobin", "stickiness": "none", **nb_check(spec.health),
               "nodes": [self._node_body(spec.deployment_id, r, spec.external_port, "accept") for r in replicas]}
        body = {"region": spec.region, "label": label, "tags": [t for t in spec.tags if t.startswith("lcai")],
                "configs": [cfg]}
        return self._create(f"creating NodeBalancer {label}", lambda: self.client.post("/nodebalancers", data=body),
                            lambda: self.find_nodebalancer(spec.deployment_id))

    @staticmethod
    def _node_body(dep: str, r: dict, port: int, mode: str) -> dict:
        return {"label": f"{dep}-{r['k']}", "address": f"{r['private_ip']}:{port}", "mode": mode, "weight": 100}

    def add_node(self, nb_id: int, cfg_id: int, dep: str, r: dict, port: int, mode: str) -> dict:
        """Add the replica as a node (reconciled by address: a lost reply never makes a second node)."""
        addr = f"{r['private_ip']}:{port}"

        def lookup():
            return next((n for n in self.nodes(nb_id, cfg_id) if n.get("address") == addr), None)

        found = lookup()
        if found is not None:
            return found
        body = self._node_body(dep, r, port, mode)
        return self._create(f"adding node {addr} to NodeBalancer {nb_id}",
                            lambda: self.client.post(f"/nodebalancers/{nb_id}/configs/{cfg_id}/nodes", data=body),
                            lookup)

    def set_mode(self, nb_id: int, cfg_id: int, node: dict, mode: str) -> dict:
        return self._put(f"setting node {node['address']} to {mode}",
                         f"/nodebalancers/{nb_id}/configs/{cfg_id}/nodes/{node['id']}", {"mode": mode})

    def delete_node(self, nb_id: int, cfg_id: int, node_id: int) -> bool:
        return self._delete(f"deleting node {node_id}", f"/nodebalancers/{nb_id}/configs/{cfg_id}/nodes/{node_id}")

    def delete_nodebalancer(self, nb_id: int) -> bool:
        return self._delete(f"deleting NodeBalancer {nb_id}", f"/nodebalancers/{nb_id}")

    # ------------------------------------------------------------ create

    def replica_preflight(self, spec: Spec, caps: list, pre) -> Any:
        from lcai_core.api import Preflight, Price

        if "NodeBalancers" not in caps:
            raise InputError(f"region {spec.region} has no NodeBalancers, which replicas need",
                             hint="pick another region with --region (e.g. us-ord), or deploy one replica")
        if not spec.external_port:
            raise InputError("replicas need a public port (deploy.linode.container.external_port): the NodeBalancer "
                             "serves it")
        if tuple(spec.app_sources) != ("0.0.0.0/0", "::/0"):
            raise InputError("--app-from is not supported with replicas: the app is reached through the "
                             "NodeBalancer, whose address is public",
                             hint="deploy one replica to limit who reaches the app port, or leave out --app-from")
        nb = self.nb_price(spec.region)
        n = spec.replicas
        p = pre.price
        hourly = round(n * p.hourly + (nb["hourly"] or 0), 4) if p.hourly is not None else None
        monthly = round(n * p.monthly + (nb["monthly"] or 0), 2) if p.monthly is not None else None
        note = (f"{n} x ${p.hourly}/h instances + ${nb['hourly']}/h NodeBalancer"
                + (", region prices" if p.note or nb["region_price"] else ""))
        check = nb_check(spec.health)
        notes = list(pre.notes)
        if (spec.health or {}).get("type") in ("tcp", "exec", None):
            notes.append(f"the NodeBalancer checks each replica with a TCP connection to port {spec.external_port}"
                         + (" (an exec check cannot run on a NodeBalancer; each replica still runs it)"
                            if (spec.health or {}).get("type") == "exec" else ""))
        else:
            notes.append(f"the NodeBalancer checks each replica with HTTP GET {check['check_path']} every "
                         f"{check['check_interval']}s (2xx/3xx = UP)")
        return Preflight(f"{n} x {pre.summary}, behind a NodeBalancer", Price(hourly, monthly, note), tuple(notes))

    def replica_steps(self, spec: Spec) -> list[Step]:
        """Firewall (SSH; the app port only from the NodeBalancer range), the replicas, then the NodeBalancer."""
        port = spec.external_port
        steps = [self.firewall_step(spec, [port], [NB_SOURCES],
                                    f"inbound 22, {port} from the NodeBalancer range {NB_SOURCES} only")]
        for k in range(1, spec.replicas + 1):
            steps.append(self._replica_step(spec, k))
        steps.append(self._nb_step(spec))
        return steps

    def _replica_entry(self, inst: dict, k: int, sha: Optional[str]) -> dict:
        return {"k": k, "linode_id": inst["id"], "private_ip": private_ip(inst), "public_ip": public_ip(inst),
                "rendered_sha256": sha}

    def _replica_step(self, spec: Spec, k: int) -> Step:
        from lcai_core.api import sha256

        dep = spec.deployment_id
        sha = sha256(spec.user_data)

        def fields(state: dict, inst: dict) -> dict:
            entry = self._replica_entry(inst, k, sha)
            reps = [r for r in state.get("replicas") or [] if r["k"] != k] + [entry]
            return {"replicas": sorted(reps, key=lambda r: r["k"])}

        def run(state: dict, say) -> dict:
            found = self.replica_instances(dep).get(k)
            inst = found[0] if found else self.create_replica(spec, k, state["firewall_id"])
            if not private_ip(inst):
                raise LcaiError(f"instance {inst['id']} has no private IPv4, which the NodeBalancer needs")
            say(f"replica {k}: instance {inst['id']} {inst.get('status') or 'provisioning'} at {public_ip(inst)} "
                f"(private {private_ip(inst)})")
            return fields(state, inst)

        def find(state: dict) -> Optional[dict]:
            found = self.replica_instances(dep).get(k)
            return fields(state, found[0]) if found else None

        def undo(state: dict, say) -> None:
            for inst in self.replica_instances(dep).get(k, []):
                if self.delete_instance(inst["id"]):
                    say(f"replica {k}: instance {inst['id']} deleted")

        return Step.of(f"replica {k}", run, find, undo)

    def _nb_step(self, spec: Spec) -> Step:
        dep = spec.deployment_id

        def fields(nb: dict) -> dict:  # the config id is read when needed: nothing here can fail after the create
            return {"nodebalancer_id": nb["id"], "nodebalancer_label": nb["label"], "address": nb.get("ipv4"),
                    "status": "provisioning"}

        def run(state: dict, say) -> dict:
            nb = self.find_nodebalancer(dep) or self.create_nodebalancer(spec, state.get("replicas") or [])
            f = fields(nb)
            try:  # known from now on: `status ID` then reads the nodes in one request
                f["nb_config_id"] = self._config({"external_port": spec.external_port}, nb["id"])["id"]
            except LcaiError:
                pass
            say(f"NodeBalancer {nb['label']} ({nb['id']}) at {nb.get('ipv4')}:{spec.external_port}, "
                f"{len(state.get('replicas') or [])} nodes")
            return f

        def find(state: dict) -> Optional[dict]:
            nb = self.find_nodebalancer(dep)
            return fields(nb) if nb else None

        def undo(state: dict, say) -> None:
            nb_id = state.get("nodebalancer_id")
            if nb_id is None:
                nb = self.find_nodebalancer(dep)
                nb_id = nb["id"] if nb else None
            if nb_id is not None and self.delete_nodebalancer(nb_id):
                say(f"NodeBalancer {nb_id}: deleted")

        return Step.of("nodebalancer", run, find, undo)

    # ------------------------------------------------------------ wait, health

    def wait_replicas(self, record: dict, say, deadline: float) -> dict:
        dep = record["deployment_id"]
        want = {r["k"] for r in (record.get("provider_state") or {}).get("replicas") or []}
        poll = env_seconds("LCAI_POLL_INTERVAL", 5.0)
        last = None
        while True:
            by_k = self.replica_instances(dep)
            running = sum(1 for k in want if by_k.get(k) and by_k[k][0].get("status") == "running")
            line = f"replicas running {running}/{len(want)}"
            if line != last:
                say(line)
                last = line
            if running == len(want):
                st = record.get("provider_state") or {}
                if st.get("nodebalancer_id") and not st.get("nb_config_id"):
                    try:  # for the health checks that follow (one request each instead of two)
                        st["nb_config_id"] = self._config(record, st["nodebalancer_id"])["id"]
                    except LcaiError:
                        pass
                return {"status": "running", "address": record.get("address")}
            if time.monotonic() > deadline:
                raise TrackedError(f"timed out waiting for the replicas of {dep} ({line})",
                                   hint=f"the deployment is tracked: lcai status {dep}")
            time.sleep(poll)

    def node_view(self, record: dict) -> list[dict]:
        """Each replica with its node's status and mode (one request; two without a known config id)."""
        st = record.get("provider_state") or {}
        nb_id = st.get("nodebalancer_id")
        cfg_id = st.get("nb_config_id") or self._config(record, nb_id)["id"]
        by_addr = {n.get("address", "").rpartition(":")[0]: n for n in self.nodes(nb_id, cfg_id)}
        out = []
        for r in st.get("replicas") or []:
            n = by_addr.pop(r.get("private_ip"), None)
            out.append({"k": r["k"], "linode_id": r.get("linode_id"), "private_ip": r.get("private_ip"),
                        "public_ip": r.get("public_ip"), "node_id": n and n.get("id"),
                        "status": n.get("status") if n else "no node", "mode": n.get("mode") if n else None})
        for addr, n in by_addr.items():  # a node of no replica: added by hand, or left by an interrupted scale
            out.append({"k": None, "linode_id": None, "private_ip": addr, "public_ip": None, "node_id": n.get("id"),
                        "status": n.get("status"), "mode": n.get("mode"), "label": n.get("label")})
        return out

    def _prune(self, record: dict, view: list[dict], nb_id: int, cfg_id: int, say) -> list[dict]:
        """Delete nodes lcai added for replicas that no longer exist (label ``<id>-<k>``); keep others."""
        mine = re.compile(rf"^{re.escape(record['deployment_id'])}-\d+$")
        out = []
        for v in view:
            if v["k"] is None and mine.match(v.get("label") or ""):
                self.delete_node(nb_id, cfg_id, v["node_id"])
                say(f"removed leftover node {v['private_ip']} ({v['label']})")
            else:
                out.append(v)
        return out

    def replica_health(self, record: dict):
        from linode_api4 import ApiError

        from lcai_core.api import Health

        st = record.get("provider_state") or {}
        n = len(st.get("replicas") or [])
        if not st.get("nodebalancer_id"):
            return Health(None, "no NodeBalancer recorded", "none")
        try:
            view = self.node_view(record)
        except ApiError as e:
            if e.status == 404:
                return Health(False, f"NodeBalancer {st['nodebalancer_id']} is gone", "nodebalancer", final=True)
            raise
        except LcaiError as e:  # a refusal is final; a failing API may recover
            return Health(None, f"cannot read the NodeBalancer: {e.message}", "none",
                          final=getattr(e, "status", None) in (400, 401, 403))
        up = sum(1 for v in view if v["k"] is not None and v["status"] == "UP")
        serving = sum(1 for v in view if v["k"] is not None and v["status"] == "UP" and v["mode"] == "accept")
        record["replicas_healthy"] = up
        record["replica_nodes"] = view
        detail = f"healthy {up}/{n} (NodeBalancer nodes UP; {serving} accepting traffic)"
        return Health(up == n and n > 0, detail, "nodebalancer")

    # ------------------------------------------------------------ scale

    def scale(self, record: dict, replicas: int, spec: Optional[Spec], say, deadline: float,
              save: Callable[[dict], None]) -> dict:
        dep = record["deployment_id"]
        st = dict(record.get("provider_state") or {})
        nb_id = st["nodebalancer_id"]
        cfg = self._config(record, nb_id)
        cfg_id, port = cfg["id"], int(cfg["port"])
        st["nb_config_id"] = cfg_id
        current = sorted(st.get("replicas") or [], key=lambda r: r["k"])
        view_all = self._prune(record, self.node_view(dict(record, provider_state=st)), nb_id, cfg_id, say)
        if replicas > len(current):
            if spec is None:
                raise InputError(f"adding replicas to {dep} needs its deployment directory (the user data)")
            budget = max(0.0, deadline - time.monotonic())  # each new replica gets the whole budget (--timeout)
            for _ in range(replicas - len(current)):
                k = max([r["k"] for r in st.get("replicas") or []] + [0]) + 1
                self._add_replica(record, spec, k, st, nb_id, cfg_id, port, say, time.monotonic() + budget, save)
            return {"replicas": st["replicas"], "nb_config_id": cfg_id, **self._prices(record, replicas)}
        view = {v["k"]: v for v in view_all if v["k"] is not None}
        # keep the healthy ones (lowest index first), so removing never lowers the healthy capacity below N
        # (serving first: UP and accepting traffic; a replica a stopped rollout left drained goes before any
        # that serves)
        ranked = sorted(current, key=lambda r: (view.get(r["k"], {}).get("status") != "UP",
                                                view.get(r["k"], {}).get("mode") not in ("accept", None), r["k"]))
        keep, drop = ranked[:replicas], ranked[replicas:]
        up_kept = sum(1 for r in keep if view.get(r["k"], {}).get("status") == "UP")
        if up_kept < replicas:
            say(f"note: only {up_kept} of the {replicas} replicas kept are UP now")
        drain_s = env_seconds("LCAI_DRAIN_SECONDS", 10.0)
        for r in sorted(drop, key=lambda r: -r["k"]):
            v = view.get(r["k"]) or {}
            if v.get("node_id"):
                if v.get("mode") != "drain":
                    self.set_mode(nb_id, cfg_id, {"id": v["node_id"], "address": f"{r['private_ip']}:{port}"},
                                  "drain")
                    say(f"replica {r['k']}: draining (node mode drain, {drain_s:g}s for open connections)")
                    time.sleep(drain_s)
                self.delete_node(nb_id, cfg_id, v["node_id"])
                say(f"replica {r['k']}: node removed from the NodeBalancer")
            for inst in self.replica_instances(dep).get(r["k"], []):
                self.delete_instance(inst["id"])
            say(f"replica {r['k']}: instance {r['linode_id']} deleted")
            st["replicas"] = [x for x in st["replicas"] if x["k"] != r["k"]]
            save({"replicas": st["replicas"]})
        return {"replicas": st["replicas"], "nb_config_id": cfg_id, **self._prices(record, replicas)}

    def _prices(self, record: dict, n: int) -> dict:
        """``price_hourly``/``price_monthly`` of n replicas and the NodeBalancer (empty when unknown)."""
        from linode_api4 import ApiError

        from .provider import API_ID, price_of

        if not isinstance(record.get("type"), str) or not API_ID.match(record["type"]):
            return {}  # a record's type that is not an id (an edited registry) never goes into an API path
        try:
            t = self._get("looking up the type's price", f"/linode/types/{record.get('type')}")
            nb = self.nb_price(record.get("region") or "")
        except (LcaiError, ApiError):
            return {}
        p = price_of(t, record.get("region") or "")
        if p["hourly"] is None or nb["hourly"] is None:
            return {}
        return {"price_hourly": round(n * p["hourly"] + nb["hourly"], 4),
                "price_monthly": round(n * p["monthly"] + nb["monthly"], 2)}

    def _add_replica(self, record: dict, spec: Spec, k: int, st: dict, nb_id: int, cfg_id: int, port: int, say,
                     deadline: float, save: Callable[[dict], None]) -> None:
        """Create replica k, add it as a ``reject`` node (checked, no traffic), wait until UP, then ``accept``.
        On any failure or Ctrl-C the half-made replica is removed again (its node, then its instance)."""
        from lcai_core.api import sha256

        dep = record["deployment_id"]
        step = self._replica_step(spec, k)
        node = None
        try:
            st.update(step.run(st, say))
            save({"replicas": st["replicas"]})  # known before anything else happens to it
            r = next(x for x in st["replicas"] if x["k"] == k)
            node = self.add_node(nb_id, cfg_id, dep, r, port, "reject")
            say(f"replica {k}: node {node['address']} added (mode reject: checked, no traffic yet)")
            self._wait_node_up(nb_id, cfg_id, node, f"replica {k}", say, deadline)
            self.set_mode(nb_id, cfg_id, node, "accept")
            say(f"replica {k}: UP, accepting traffic")
            r["rendered_sha256"] = sha256(spec.user_data)
            save({"replicas": st["replicas"]})
        except (Exception, KeyboardInterrupt) as e:
            why = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            try:  # the node first (a leftover one is pruned by the next scale or rollout: its label is ours)
                addr = next((f"{x['private_ip']}:{port}" for x in st.get("replicas") or [] if x["k"] == k), None)
                node = node or (next((n for n in self.nodes(nb_id, cfg_id) if n.get("address") == addr), None)
                                if addr else None)
                if node is not None:
                    self.delete_node(nb_id, cfg_id, node["id"])
            except Exception as e2:
                say(f"{why}: could not remove replica {k}'s node ({type(e2).__name__}: {e2}); the next "
                    "`lcai scale` removes it")
            try:
                step.undo(st, say)
                st["replicas"] = [x for x in st.get("replicas") or [] if x["k"] != k]
                save({"replicas": st["replicas"]})
                say(f"{why}: replica {k} removed again")
            except Exception as e2:  # leave it recorded: `lcai scale`/`destroy` find it by its tag and label
                say(f"{why}: could not remove replica {k} ({type(e2).__name__}: {e2}); it stays recorded")
            raise

    def _wait_node_up(self, nb_id: int, cfg_id: int, node: dict, what: str, say, deadline: float) -> None:
        poll = env_seconds("LCAI_POLL_INTERVAL", 5.0)
        last = None
        while True:
            n = next((x for x in self.nodes(nb_id, cfg_id) if x.get("id") == node["id"]), None)
            status = n.get("status") if n else "gone"
            if status != last:
                say(f"{what}: node {status}")
                last = status
            if status == "UP":
                return
            if n is None:
                raise LcaiError(f"{what}: its NodeBalancer node disappeared")
            if time.monotonic() > deadline:
                raise LcaiError(f"{what} did not become healthy in time (its NodeBalancer node is {status})")
            time.sleep(poll)

    # ------------------------------------------------------------ rolling redeploy

    def rollout(self, record: dict, spec: Spec, say, deadline: float, save: Callable[[dict], None]) -> dict:
        from lcai_core.api import sha256

        dep = record["deployment_id"]
        st = dict(record.get("provider_state") or {})
        nb_id = st["nodebalancer_id"]
        cfg = self._config(record, nb_id)
        cfg_id, port = cfg["id"], int(cfg["port"])
        st["nb_config_id"] = cfg_id
        new_sha = sha256(spec.user_data)
        reps = st.get("replicas") or []
        view_all = self._prune(record, self.node_view(dict(record, provider_state=st)), nb_id, cfg_id, say)
        view = {v["k"]: v for v in view_all if v["k"] is not None}
        # replicas already on the new version and serving are done (a resumed rollout); DOWN ones go first
        todo = [r for r in reps if not (r.get("rendered_sha256") == new_sha and view.get(r["k"], {}).get("status")
                                        == "UP" and view.get(r["k"], {}).get("mode") == "accept")]
        # what does not serve goes first (DOWN, or drained by a stopped rollout): a resumed rollout never takes a
        # serving replica out while another is still out of rotation
        todo.sort(key=lambda r: (serving(view.get(r["k"], {})), r["k"]))
        if len(todo) < len(reps):
            say(f"rollout: {len(reps) - len(todo)} replica(s) already run the new version")
        budget = max(0.0, deadline - time.monotonic())  # each replica gets the whole budget (--timeout)
        for i, r in enumerate(todo, 1):
            k = r["k"]
            what = f"replica {k} ({i}/{len(todo)})"
            v = view.get(k) or {}
            others = [x for x in reps if x["k"] != k and serving(view.get(x["k"], {}))]
            if serving(v) and not others and len(reps) > 1:
                raise TrackedError(f"rollout stopped before replica {k}: no other replica accepts traffic, so "
                                   "draining it would leave the NodeBalancer with none",
                                   hint=f"`lcai status {dep}` shows the nodes; fix the others first, then "
                                        "`lcai deploy` again")
            node = {"id": v.get("node_id"), "address": f"{r['private_ip']}:{port}"}
            if node["id"] is None:
                node = self.add_node(nb_id, cfg_id, dep, r, port, "drain")
            elif v.get("mode") != "drain":
                self.set_mode(nb_id, cfg_id, node, "drain")
            say(f"{what}: drained at the NodeBalancer; rebuilding instance {r['linode_id']} with the new user data")
            try:
                self._rebuild_one(r["linode_id"], spec, say)
            except LcaiError:
                if v.get("status") == "UP":  # not rebuilt: it still serves the previous version
                    self.set_mode(nb_id, cfg_id, node, "accept")
                raise
            r["rendered_sha256"] = None  # unknown until healthy: a resumed rollout rebuilds it again
            save({"replicas": reps, "nb_config_id": cfg_id})
            limit = time.monotonic() + budget
            try:
                self._wait_node_up(nb_id, cfg_id, node, what, say, limit)
            except LcaiError as e:
                left = [x["k"] for x in reps if x["k"] != k]
                raise TrackedError(
                    f"rollout stopped: {e.message}; replicas {', '.join(map(str, left)) or '-'} still serve the "
                    f"previous version, replica {k} is drained (no traffic)",
                    hint="roll back: put the previous deploy.yml back and run `lcai deploy` (it rebuilds replica "
                         f"{k} with it); or fix the new version and run `lcai deploy` again to resume; "
                         f"`lcai logs {dep}` shows replica 1's boot log") from None
            self.set_mode(nb_id, cfg_id, node, "accept")
            view[k] = dict(v, status="UP", mode="accept")
            r["rendered_sha256"] = new_sha
            save({"replicas": reps, "nb_config_id": cfg_id})
            say(f"{what}: UP, accepting traffic again")
        want = nb_check(spec.health)
        if any(cfg.get(k) != v for k, v in want.items()):  # the new health settings, once every replica has them
            self._put(f"updating NodeBalancer {nb_id}'s health check", f"/nodebalancers/{nb_id}/configs/{cfg_id}",
                      want)
            say(f"NodeBalancer health check now {want['check']}"
                + (f" {want['check_path']}" if want.get("check_path") else "")
                + f" every {want['check_interval']}s")
        return {"replicas": reps, "nb_config_id": cfg_id, "status": "running"}

    def _rebuild_one(self, lid: int, spec: Spec, say) -> None:
        from linode_api4 import ApiError

        from .provider import _token_error, refused

        metadata = self.client.linode.build_instance_metadata(user_data=spec.user_data_b64, encode_user_data=False)
        body = {"image": spec.image, "root_pass": spec.root_password, "metadata": metadata, "booted": True}
        if spec.ssh_keys:
            body["authorized_keys"] = list(spec.ssh_keys)
        def started():  # after an ambiguous failure: did the rebuild happen (a lost reply)?
            inst = self.get_instance(lid)
            return inst if inst is not None and inst.get("status") in ("rebuilding", "booting") else None

        try:
            self._create(f"rebuilding instance {lid}",
                         lambda: self.client.post(f"/linode/instances/{lid}/rebuild", data=body), started)
        except ApiError as e:
            if e.status == 401:
                raise _token_error(e) from None
            raise refused(f"rebuilding instance {lid}", e) from None

    # ------------------------------------------------------------ destroy

    def destroy_nodebalancer_of(self, record: dict, say) -> None:
        """A replicated deployment's NodeBalancer (deleted first, so clients stop before the replicas go)."""
        nb_id = (record.get("provider_state") or {}).get("nodebalancer_id")
        if nb_id is None:
            nb = self.find_nodebalancer(record["deployment_id"])
            nb_id = nb["id"] if nb else None
        if nb_id is not None:
            gone = not self.delete_nodebalancer(nb_id)
            say(f"NodeBalancer {nb_id}: {'already gone' if gone else 'deleted'}")

    # ------------------------------------------------------------ detail

    def replica_detail(self, record: dict) -> list:
        from .provider import firewall_label

        st = record.get("provider_state") or {}
        reps = st.get("replicas") or []
        out = [("replicas", f"{len(reps)}" + (f", healthy {record['replicas_healthy']}/{len(reps)}"
                                               if record.get("replicas_healthy") is not None else "")),
               ("nodebalancer", f"{st.get('nodebalancer_label') or nb_label(record['deployment_id'])} "
                                f"({st.get('nodebalancer_id')})"),
               ("firewall", st.get("firewall_label") or firewall_label(record["deployment_id"]))]
        nodes = record.get("replica_nodes")
        for v in nodes if nodes is not None else reps:
            if v.get("k") is None:
                out.append(("extra node", f"{v['private_ip']} {v['status']}, {v['mode']} (not an lcai replica)"))
                continue
            line = f"instance {v.get('linode_id')}, {v.get('public_ip')}, private {v.get('private_ip')}"
            if nodes is not None:
                line += f", node {v['status']}, {v['mode'] or '-'}"
            out.append((f"replica {v['k']}", line))
        return out
