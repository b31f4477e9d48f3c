"""Linode operations lcai needs, each safe to retry: preflight, firewall and instance creation reconciled by
their deployment tag/label (never a duplicate), tag-filtered listing (one request for up to 500), deletion
tolerant of 404."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from lcai_core.api import (
    VOLUMES_KEPT,
    InputError,
    LcaiError,
    Listing,
    Preflight,
    Price,
    Provider,
    Spec,
    Step,
    TrackedError,
)

from .api import ApiFailure, Retrier, describe, hopeless, make_client, resolve_url, retryable
from .replicas import ReplicaMixin, is_replicated, public_ip, replica_index
from .volumes import VolumeMixin

from lcai_core.api import deployment_tags, instance_label, parse_tags, random_root_password  # noqa: F401

TAG = "lcai"
API_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")  # a region or type id as it goes into /regions/… and /linode/types/…
API_IMAGE = re.compile(r"(?:linode|private)/(?!\.\.?\Z)[A-Za-z0-9._-]+\Z")  # /images/linode/…, no `..`


def by_deployment(instances: list[dict]) -> dict[str, dict]:
    """Instances keyed by their ``lcai-id:`` tag (the first one, if a lost reply ever made two)."""
    out: dict[str, dict] = {}
    for inst in instances:
        dep = parse_tags(inst.get("tags") or []).get("id")
        if dep:
            out.setdefault(dep, inst)
    return out


def group_by_deployment(instances: list[dict]) -> dict[str, list[dict]]:
    """Instances by their ``lcai-id:`` tag, all of them (replicas share one id)."""
    out: dict[str, list[dict]] = {}
    for inst in instances:
        dep = parse_tags(inst.get("tags") or []).get("id")
        if dep:
            out.setdefault(dep, []).append(inst)
    return out


def _looks_replicated(dep: str, insts: list[dict]) -> bool:
    """Several instances share the id, or one is labelled as replica k (``…-<id>-<k>``)."""
    return len(insts) > 1 or any(replica_index(i, dep) is not None for i in insts)


def firewall_label(deployment_id: str) -> str:
    return f"lcai-fw-{deployment_id}"  # 16 chars: within the 3-32 limit


def price_of(t: dict, region: str) -> dict:
    for rp in t.get("region_prices") or []:
        if rp.get("id") == region:
            return {"hourly": rp["hourly"], "monthly": rp["monthly"], "region_price": True}
    p = t.get("price") or {}
    return {"hourly": p.get("hourly"), "monthly": p.get("monthly"), "region_price": False}


def _token_error(e) -> InputError:
    return InputError(f"the Linode API rejected the token ({e.status})",
                      hint="check LINODE_TOKEN (or linode-cli's config); it needs Linodes and Firewalls read/write")


GPU_PLANS = "GPU plans: g2-gpu-rtx4000a1-s, g1-gpu-rtx6000-1 and the other g*-gpu-* types"


class LinodeProvider(VolumeMixin, ReplicaMixin, Provider):
    name = "linode"
    summary = "Linode (Akamai cloud) through the Linode API v4"
    #: one tag-filtered instance list (per 500 instances); when any deployment has replicas, plus one
    #: tag-filtered NodeBalancer list (per 500): 200 deployments x 3 replicas = 3 requests (docs/scaling.md)
    list_requests = 1

    def __init__(self, client=None, retrier: Optional[Retrier] = None):
        self._fixed_client = client
        self._client = None
        self._client_key: Optional[tuple] = None
        self._retrier = retrier

    @property
    def retrier(self) -> Retrier:
        """The retry policy, read from the environment when first needed (LCAI_RETRY_DELAY)."""
        if self._retrier is None:
            self._retrier = Retrier()
        return self._retrier

    @property
    def client(self):
        """The API client, made again when the token or URL changed (the TUI runs long; tests switch them)."""
        if self._fixed_client is not None:
            return self._fixed_client
        from .api import resolve_token

        key = (resolve_url(), resolve_token()[0])
        if self._client is None or self._client_key != key:
            self._client = make_client(token=key[1], url=key[0])
            self._client_key = key
        return self._client

    def gpu_refusal(self, type_: str) -> Optional[str]:
        """Offline, from the type id: Linode's GPU plans are the ``gN-gpu-…`` types (g1-gpu-rtx6000-1,
        g2-gpu-rtx4000a1-s, …); preflight asks the API (the type's ``gpus``)."""
        if "gpu" in type_.split("-"):
            return None
        return f"Linode type {type_} has none ({GPU_PLANS})"

    def configured(self) -> bool:
        """A token is set (environment or linode-cli's config): `lcai status` asks the API even with no record."""
        from .api import resolve_token

        try:
            resolve_token()
            return True
        except InputError:
            return False

    def _get(self, what: str, path: str, filters: Optional[dict] = None) -> Any:
        from linode_api4 import ApiError

        try:
            got = self.retrier.call(what, lambda: self.client.get(path, filters=filters))
        except ApiError as e:
            if e.status == 404:
                raise  # callers decide what "not found" means
            raise refused(what, e) from None
        except ValueError as e:  # a 200 whose body is not JSON (a proxy's page, a truncated reply)
            raise ApiFailure(f"{what}: the Linode API answered with a body that is not JSON ({e})",
                             hint="try again; check LCAI_LINODE_API_URL if it keeps happening") from None
        if not isinstance(got, dict):
            raise ApiFailure(f"{what}: the Linode API answered {type(got).__name__}, not an object",
                             hint="try again; check LCAI_LINODE_API_URL if it keeps happening")
        return got

    # ------------------------------------------------------------ preflight

    def preflight(self, spec: Spec) -> Preflight:
        """Token, type, region and image exist; the region has Metadata (and GPU Linodes for a GPU type); the image
        has cloud-init. The summary names the type and its price in that region."""
        pre = self._preflight(spec.region, spec.type, spec.image, gpu=spec.gpu)
        if spec.replicas > 1:
            if spec.volumes:
                return self.volume_preflight(spec, pre)  # refused: not yet with replicas
            return self.replica_preflight(spec, self._region_caps, pre)
        return self.volume_preflight(spec, pre)

    def _preflight(self, region: str, type_: str, image: str, gpu: bool = False) -> Preflight:
        from linode_api4 import ApiError

        # they go into API paths: a value from a Spec built by a plugin or from a record (`../profile`, `g6?x=1`)
        # is refused before the first request, as `--region`/`--type` are
        for what, value, flag, ok in (("type", type_, "--type", API_ID), ("region", region, "--region", API_ID),
                                      ("image", image, "deploy.linode.image", API_IMAGE)):
            if not isinstance(value, str) or not ok.match(value):
                raise InputError(f"{what} {value!r} is not a Linode id (lowercase letters, digits and dashes"
                                 + (", after linode/ or private/" if ok is API_IMAGE else "")
                                 + "): lcai does not put it into an API path",
                                 hint=f"override it with {flag}, or fix deploy.yml")
        self._get("checking the token", "/profile")

        def one(what: str, path: str, flag: str, choices_path: Optional[str] = None) -> dict:
            try:
                return self._get(f"looking up {what}", path)
            except ApiError as e:
                if e.status == 404:
                    hint = f"override it with {flag}, or fix deploy.yml"
                    if choices_path:
                        try:
                            ids = [x["id"] for x in self._get("listing choices", choices_path).get("data", [])]
                            if ids:
                                hint = f"valid: {', '.join(sorted(ids))} ({flag} overrides deploy.yml)"
                        except LcaiError:
                            pass
                    raise InputError(f"{what} does not exist", hint=hint) from None
                raise

        t = one(f"type {type_}", f"/linode/types/{type_}", "--type", "/linode/types")
        r = one(f"region {region}", f"/regions/{region}", "--region", "/regions")
        i = one(f"image {image}", f"/images/{image}", "deploy.linode.image")
        caps = r.get("capabilities") or []
        self._region_caps = caps
        if "Metadata" not in caps:
            raise InputError(f"region {region} does not support Metadata, so cloud-init user data cannot be delivered",
                             hint="pick another region with --region (e.g. us-ord)")
        if gpu and not t.get("gpus") and t.get("class") != "gpu":
            raise InputError(f"the template needs a GPU (gpu-nvidia), and type {type_} has none",
                             hint=f"pick a GPU plan with --type or deploy.linode.type_default ({GPU_PLANS})")
        if t.get("class") == "gpu" and "GPU Linodes" not in caps:
            raise InputError(f"region {region} has no GPU Linodes for type {type_}", hint="try --region us-ord")
        if "cloud-init" not in (i.get("capabilities") or []):
            raise InputError(f"image {image} does not support cloud-init", hint="use linode/ubuntu24.04")
        p = price_of(t, region)
        price = Price(p["hourly"], p["monthly"], "region price" if p["region_price"] else "")
        return Preflight(f"{t.get('label', type_)} ({type_}) in {region}, {image}", price)

    # ------------------------------------------------------------ lookups

    def list_instances(self, deployment_id: Optional[str] = None) -> list[dict]:
        """All lcai instances (or one deployment's) with ONE tag-filtered request per 500; tags re-checked here
        (the API's tag filtering has had edge cases)."""
        tag = f"lcai-id:{deployment_id}" if deployment_id else TAG
        flt = {"tags": {"+contains": tag}}
        out, page, pages = [], 1, 1
        while page <= pages:
            resp = self._get("listing instances", f"/linode/instances?page={page}&page_size=500", flt)
            out.extend(resp.get("data", []))
            pages = checked_pages(resp, page, "listing instances")
            page += 1
        return [i for i in out if tag in (i.get("tags") or [])]

    def get_instance(self, linode_id: int) -> Optional[dict]:
        return self._get_by_id(f"reading instance {linode_id}", f"/linode/instances/{linode_id}")

    def find_firewall(self, label: str) -> Optional[dict]:
        resp = self._get("listing firewalls", "/networking/firewalls", {"label": label})
        return next((f for f in resp.get("data", []) if f.get("label") == label), None)

    # ------------------------------------------------------------ create (reconciled, never duplicated)

    def _create(self, what: str, post: Callable[[], Any], lookup: Callable[[], Optional[Any]]) -> Any:
        """POST once; on an ambiguous failure (timeout, reset, 5xx, 429) look the resource up by its unique
        tag/label before anything is re-sent, so a lost reply never becomes a duplicate."""
        from linode_api4 import ApiError

        last: Optional[Exception] = None
        for attempt in range(self.retrier.attempts):
            try:
                return post()
            except Exception as e:  # classified: only retryable failures are reconciled
                if isinstance(e, ApiError) and not retryable(e):
                    raise refused(what, e) from None
                if not retryable(e):
                    raise
                why = hopeless(e)
                if why:
                    raise ApiFailure(f"{what}: cannot reach the Linode API at {resolve_url()}: {why}",
                                     hint="check LCAI_LINODE_API_URL / your network") from None
                last = e
            d = self.retrier.delay(attempt, last)
            self.retrier.say(f"retrying: {what}: {describe(last)} (attempt {attempt + 1}/{self.retrier.attempts}; "
                             f"checking first whether it happened, next in {d:.1f}s)")
            self.retrier.sleep(d)
            found = self.retrier.call(f"checking whether {what} happened", lookup)
            if found is not None:
                return found
        raise ApiFailure(f"{what} failed after {self.retrier.attempts} attempts: {describe(last)}")

    def create_firewall(self, deployment_id: str, tags: list[str], ports: list[int], ssh_sources: list[str],
                        app_sources: Optional[list[str]] = None) -> dict:
        label = firewall_label(deployment_id)
        body = {"label": label, "rules": firewall_rules(ports, ssh_sources, app_sources), "tags": tags[:2]}
        return self._create(f"creating firewall {label}",
                            lambda: self.client.post("/networking/firewalls", data=body),
                            lambda: self.find_firewall(label))

    def create_instance(self, *, deployment_id: str, label: str, region: str, type_: str, image: str, tags: list[str],
                        firewall_id: int, user_data_b64: str, authorized_keys: list[str], root_pass: str,
                        booted: bool = True) -> dict:

        # already base64(gzip(…)): the SDK must not encode it again
        metadata = self.client.linode.build_instance_metadata(user_data=user_data_b64, encode_user_data=False)
        body = {"type": type_, "region": region, "image": image, "label": label, "tags": tags,
                "root_pass": root_pass, "firewall_id": firewall_id, "metadata": metadata, "booted": booted}
        if authorized_keys:
            body["authorized_keys"] = authorized_keys

        def lookup():
            found = self.list_instances(deployment_id)
            return found[0] if found else None

        return self._create(f"creating instance {label}", lambda: self.client.post("/linode/instances", data=body),
                            lookup)

    def create_steps(self, spec: Spec) -> list[Step]:
        """The firewall (SSH and the app port only), then the instance booted with the user data; with replicas,
        the firewall, each replica, then the NodeBalancer (replicas.py)."""
        if spec.replicas > 1:
            return self.replica_steps(spec)
        dep = spec.deployment_id
        fw_step = self.firewall_step(spec, list(spec.app_ports), list(spec.app_sources),
                                     "inbound " + ", ".join(["22"] + [str(x) for x in spec.app_ports]))

        def inst_fields(inst: dict) -> dict:
            return {"linode_id": inst["id"], "address": (inst.get("ipv4") or [None])[0],
                    "status": inst.get("status") or "provisioning"}

        def inst_run(state: dict, say) -> dict:
            found = self.list_instances(dep)
            inst = found[0] if found else self.create_instance(
                deployment_id=dep, label=spec.label, region=spec.region, type_=spec.type, image=spec.image,
                tags=list(spec.tags), firewall_id=state["firewall_id"], user_data_b64=spec.user_data_b64,
                authorized_keys=list(spec.ssh_keys), root_pass=spec.root_password,
                booted=not spec.volumes)  # with volumes: booted once they are attached (volume_steps)
            f = inst_fields(inst)
            say(f"instance {inst['id']} {f['status']} at {f['address']}")
            return f

        def inst_find(state: dict) -> Optional[dict]:
            found = self.list_instances(dep)
            return inst_fields(found[0]) if found else None

        def inst_undo(state: dict, say) -> None:
            for inst in self.list_instances(dep):
                if self.delete_instance(inst["id"]):
                    say(f"instance {inst['id']}: deleted")

        steps = [fw_step, Step.of("instance", inst_run, inst_find, inst_undo)]
        return steps + self.volume_steps(spec) if spec.volumes else steps

    def firewall_step(self, spec: Spec, ports: list[int], app_sources: list[str], rules: str) -> Step:
        """The deployment's Cloud Firewall as an undoable step (found again by its label); ``rules`` is said."""
        dep = spec.deployment_id

        def fields(fw: dict) -> dict:
            return {"firewall_id": fw["id"], "firewall_label": fw["label"]}

        def run(state: dict, say) -> dict:
            fw = self.find_firewall(firewall_label(dep)) or self.create_firewall(
                dep, list(spec.tags), ports, list(spec.ssh_sources), app_sources)
            say(f"firewall {fw['label']} ({fw['id']}): {rules}")
            return fields(fw)

        def find(state: dict) -> Optional[dict]:
            fw = self.find_firewall(firewall_label(dep))
            return fields(fw) if fw else None

        def undo(state: dict, say) -> None:
            fw_id = state.get("firewall_id")
            if fw_id is None:
                fw = self.find_firewall(firewall_label(dep))
                fw_id = fw["id"] if fw else None
            if fw_id is not None and self.delete_firewall(fw_id):
                say(f"firewall {fw_id}: deleted")

        return Step.of("firewall", run, find, undo)

    def update_firewall(self, record: dict, spec: Spec, say=lambda m: None) -> dict:
        """``PUT /networking/firewalls/{id}/rules`` with the rules a create would send for ``spec``, then
        ``GET`` them back: the machine is not touched. With replicas the app port stays open to the NodeBalancer
        range only."""
        from .replicas import NB_SOURCES

        dep = record["deployment_id"]
        state = record.get("provider_state") or {}
        fw_id = state.get("firewall_id")
        if fw_id is None:
            fw = self.find_firewall(firewall_label(dep))
            fw_id = fw["id"] if fw else None
        if fw_id is None:
            raise LcaiError(f"deployment {dep} has no firewall {firewall_label(dep)} any more: its rules cannot be "
                            "changed", hint=f"`lcai destroy {dep}`, then deploy again (a new deployment)")
        if is_replicated(record):
            rules = firewall_rules([spec.external_port] if spec.external_port else [], spec.ssh_sources,
                                   [NB_SOURCES])
        else:
            rules = firewall_rules(list(spec.app_ports), spec.ssh_sources, spec.app_sources)
        self._put(f"updating the rules of firewall {fw_id}", f"/networking/firewalls/{fw_id}/rules", rules)
        got = self._get(f"reading the rules of firewall {fw_id}", f"/networking/firewalls/{fw_id}/rules")
        if _rule_view(got) != _rule_view(rules):
            raise LcaiError(f"firewall {fw_id} did not take the new rules (read back: {_rule_view(got)})",
                            hint="run `lcai deploy` again; check the firewall in the Cloud Manager")
        say(f"firewall {fw_id}: inbound " + "; ".join(f"{r['ports']} from {_sources_text(r['addresses'])}"
                                                        for r in rules["inbound"]))
        return {"firewall_id": fw_id}

    # ------------------------------------------------------------ rebuild, wait

    def rebuild(self, record: dict, spec: Spec, say=lambda m: None) -> dict:
        """``POST /linode/instances/{id}/rebuild`` with the new user data: same instance, IPv4 and firewall."""
        from linode_api4 import ApiError

        if is_replicated(record):
            raise LcaiError(f"deployment {record['deployment_id']} has replicas: a redeploy rolls out to them one "
                            "at a time (`lcai deploy` in its directory)")
        lid = (record.get("provider_state") or {}).get("linode_id")
        if not lid:
            raise LcaiError(f"deployment {record['deployment_id']} has no instance to rebuild",
                            hint=f"`lcai destroy {record['deployment_id']}` then deploy again")
        metadata = self.client.linode.build_instance_metadata(user_data=spec.user_data_b64, encode_user_data=False)
        # with volumes: rebuilt offline, the volumes checked (attached again, new ones created), then booted
        body = {"image": spec.image, "root_pass": spec.root_password, "metadata": metadata,
                "booted": not spec.volumes}
        if spec.ssh_keys:
            body["authorized_keys"] = list(spec.ssh_keys)
        before = self._last_rebuild_event(lid)

        def started() -> Optional[dict]:  # after an ambiguous failure: did the rebuild happen (a lost reply)?
            # a linode_rebuild event newer than the one before we sent: the status alone cannot tell (a machine
            # still booting from its create looks the same)
            if self._last_rebuild_event(lid) == before:
                return None
            return self.get_instance(lid)

        try:  # sent once: a lost reply is looked up, never re-sent (a second rebuild would wipe the disk again)
            inst = self._create(f"rebuilding instance {lid}",
                                lambda: self.client.post(f"/linode/instances/{lid}/rebuild", data=body), started)
        except ApiError as e:
            if e.status == 401:
                raise _token_error(e) from None
            raise refused(f"rebuilding instance {lid}", e) from None
        say(f"instance {lid}: rebuild accepted ({inst.get('status') or 'rebuilding'})")
        out = {"status": inst.get("status") or "rebuilding", "address": (inst.get("ipv4") or [None])[0]}
        if spec.volumes:
            made: list = []
            vols = self.ensure_volumes(spec, lid, say, made)
            kept = [f"volume {v['name']} ({v['size_gb']} GB)" for v in vols if v["name"] not in made]
            say("kept: " + ", ".join(kept) if kept else "volumes: all new")
            out.update(self._boot(lid, say), volumes=vols)
        return out

    def _last_rebuild_event(self, lid: int) -> Optional[int]:
        """The id of the newest ``linode_rebuild`` event of instance ``lid`` (the account's newest 100 events)."""
        resp = self._get(f"reading the events of instance {lid}", "/account/events?page_size=100",
                         {"entity.id": lid, "entity.type": "linode", "action": "linode_rebuild"})
        ids = [e.get("id") for e in resp.get("data", []) if isinstance(e, dict)
               and (e.get("entity") or {}).get("id") == lid and e.get("action") == "linode_rebuild"]
        return max((i for i in ids if isinstance(i, int)), default=None)

    def wait(self, record: dict, say, deadline: float) -> dict:
        import time

        from lcai_core.api import env_seconds

        if is_replicated(record):
            return self.wait_replicas(record, say, deadline)
        lid = (record.get("provider_state") or {}).get("linode_id")
        poll = env_seconds("LCAI_POLL_INTERVAL", 5.0)
        last = None
        while True:
            inst = self.get_instance(lid)
            if inst is None:
                raise LcaiError(f"instance {lid} disappeared while booting",
                                hint=f"lcai destroy {record['deployment_id']} --yes")
            status = inst.get("status")
            if status != last:
                say(status)
                last = status
            if status == "running":
                addr = (inst.get("ipv4") or [None])[0]
                return {"status": "running", "address": addr, **({"hostname": default_hostname(addr)} if addr
                                                                    else {})}
            if time.monotonic() > deadline:
                raise TrackedError(f"timed out waiting for instance {lid} (still {status})",
                                   hint=f"the deployment is tracked: lcai status {record['deployment_id']}")
            time.sleep(poll)

    # ------------------------------------------------------------ delete (404 = already gone)

    def delete_instance(self, linode_id: int) -> bool:
        return self._delete(f"deleting instance {linode_id}", f"/linode/instances/{linode_id}")

    def delete_firewall(self, firewall_id: int) -> bool:
        return self._delete(f"deleting firewall {firewall_id}", f"/networking/firewalls/{firewall_id}")

    def _delete(self, what: str, path: str) -> bool:
        from linode_api4 import ApiError

        try:
            self.retrier.call(what, lambda: self.client.delete(path))
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            if e.status == 401:
                raise _token_error(e) from None
            raise ApiFailure(f"{what} was refused: {describe(e)}") from None

    # ------------------------------------------------------------ read

    def rows(self, records: dict) -> Listing:
        """Registry records merged with ONE tag-filtered instance list; when any deployment has replicas, plus
        ONE tag-filtered NodeBalancer list (one request per 500 of each). Vanished and untracked marked."""
        try:
            live = self.list_instances()
        except LcaiError as e:
            refused = isinstance(e, InputError) or getattr(e, "status", None) in (401, 403)
            return Listing([dict(r, live_status=r.get("status")) for r in records.values()],
                           f"registry (API not reached: {e.message})",
                           reached=False, refused=refused)
        groups = group_by_deployment(live)
        nbs: Optional[dict] = {}
        source = "api (one tag-filtered list request)"
        if any(is_replicated(r) for r in records.values()) or any(_looks_replicated(d, g) for d, g in groups.items()):
            source = "api (tag-filtered instance and NodeBalancer lists)"
            try:
                nbs = {parse_tags(n.get("tags") or []).get("id"): n for n in self.list_nodebalancers()}
            except LcaiError:
                nbs, source = None, "api (instances; the NodeBalancer list failed)"
        rows: list[dict] = []
        for dep_id, rec in sorted(records.items(), key=lambda kv: kv[1].get("created_at", "")):
            insts = groups.pop(dep_id, [])
            if is_replicated(rec):
                rows.append(self._replicated_row(rec, insts, nbs))
                continue
            inst = insts[0] if insts else None
            row = dict(rec)
            state = dict(rec.get("provider_state") or {})
            if inst is not None:
                state["linode_id"] = inst["id"]
                row.update(live_status=inst.get("status"), address=(inst.get("ipv4") or [None])[0],
                           provider_state=state)
            elif rec.get("status") == "creating" and not state.get("linode_id"):
                row["live_status"] = "creating?"
            elif rec.get("status") in (VOLUMES_KEPT, "stopped"):
                row["live_status"] = rec["status"]
            else:
                row["live_status"] = "vanished"
            rows.append(row)
        for dep_id, insts in sorted(groups.items()):
            if _looks_replicated(dep_id, insts) or (nbs and dep_id in nbs):
                rec = self._replicated_record(dep_id, insts, (nbs or {}).get(dep_id))
            else:
                rec = self._record_of(insts[0])
            rows.append(dict(rec, live_status=rec.get("status"), untracked=True))
        for dep_id, nb in sorted((nbs or {}).items()):
            if dep_id and dep_id not in records and not any(r["deployment_id"] == dep_id for r in rows):
                rec = self._replicated_record(dep_id, [], nb)
                rows.append(dict(rec, live_status="nodebalancer only", untracked=True))
        live_nodes = [r for r in rows if is_replicated(r) and not r.get("untracked") and nbs
                      and r["deployment_id"] in nbs and (r.get("provider_state") or {}).get("nodebalancer_id")]
        if live_nodes:
            self._read_nodes(live_nodes)
            source += f" + the nodes of {len(live_nodes)} NodeBalancer(s), read concurrently"
        return Listing(rows, source)

    def _read_nodes(self, rows: list) -> None:
        """Each replicated row's live node states (one request per NodeBalancer, 8 at a time): its health cell
        is then ``healthy k/N`` as the NodeBalancer sees it now, not at the last deploy. A failed read keeps
        the recorded count."""
        from concurrent.futures import ThreadPoolExecutor

        def one(row: dict) -> None:
            st = row.get("provider_state") or {}
            try:
                if not st.get("nb_config_id"):  # adopted or old records: the config's own counts (one request)
                    cfg = self._config(row, st["nodebalancer_id"])
                    row["replicas_healthy"] = int((cfg.get("nodes_status") or {})["up"])
                    return
                view = self.node_view(row)
            except Exception:  # noqa: BLE001 - the recorded count stays; `status ID` names the failure
                return
            row["replica_nodes"] = view
            row["replicas_healthy"] = sum(1 for v in view if v["k"] is not None and v["status"] == "UP")
            row["replicas_accepting"] = sum(1 for v in view if v["k"] is not None and v["status"] == "UP"
                                            and v["mode"] == "accept")

        with ThreadPoolExecutor(max_workers=min(8, len(rows))) as pool:
            list(pool.map(one, rows))

    def _replicated_row(self, rec: dict, insts: list, nbs: Optional[dict]) -> dict:
        dep = rec["deployment_id"]
        row = dict(rec)
        state = dict(rec.get("provider_state") or {})
        by_k = {replica_index(i, dep): i for i in insts}
        reps = [dict(r) for r in state.get("replicas") or []]
        for r in reps:
            inst = by_k.get(r["k"])
            if inst is not None:
                r["public_ip"] = public_ip(inst)
        state["replicas"] = reps
        n = len(reps)
        statuses = [(by_k.get(r["k"]) or {}).get("status") for r in reps]
        running = statuses.count("running")
        if not insts:
            live = "creating?" if rec.get("status") == "creating" and not reps else \
                "stopped" if rec.get("status") == "stopped" else "vanished"
        elif n and running == n:
            live = "running"
        elif len(set(statuses)) == 1 and statuses[0]:
            live = statuses[0]
        else:
            live = f"running {running}/{n}"
        nb = (nbs or {}).get(dep)
        if nb is not None:
            row["address"] = nb.get("ipv4")
        elif nbs is not None and insts:
            live += " (NodeBalancer gone)"
        row.update(live_status=live, provider_state=state, replicas=n, replicas_live=len(insts))
        return row

    def _replicated_record(self, dep: str, insts: list, nb: Optional[dict], firewall_id: Optional[int] = None,
                           prices: Optional[dict] = None, nb_price: Optional[dict] = None) -> dict:
        from .replicas import private_ip

        insts = sorted(insts, key=lambda i: replica_index(i, dep) or 0)
        first = insts[0] if insts else {}
        t = parse_tags(first.get("tags") or (nb or {}).get("tags") or [])
        reps = [{"k": replica_index(i, dep) or 0, "linode_id": i["id"], "private_ip": private_ip(i),
                 "public_ip": public_ip(i), "rendered_sha256": None} for i in insts]
        state: dict = {"replicas": reps}
        if nb is not None:
            state.update(nodebalancer_id=nb["id"], nodebalancer_label=nb.get("label"))
        if firewall_id is not None:
            state["firewall_id"] = firewall_id
        statuses = {i.get("status") for i in insts}
        created = first.get("created") or (nb or {}).get("created")
        rec = {"deployment_id": dep, "app": t.get("app"), "env": t.get("env"), "provider": self.name,
               "region": first.get("region") or (nb or {}).get("region"), "type": first.get("type"),
               "label": instance_label(t["app"], t["env"], dep) if t.get("app") and t.get("env") else None,
               "image": first.get("image"), "address": (nb or {}).get("ipv4"),
               "status": statuses.pop() if len(statuses) == 1 else "running" if not statuses else "mixed",
               "created_at": created.rstrip("Z") + "Z" if created else None, "replicas": len(reps),
               "provider_state": state}
        price = (prices or {}).get(first.get("type"))
        if price and nb_price:
            p = price_of(price, first.get("region") or "")
            rec.update(price_hourly=round(len(reps) * p["hourly"] + nb_price["hourly"], 4),
                       price_monthly=round(len(reps) * p["monthly"] + nb_price["monthly"], 2))
        return rec

    def _record_of(self, inst: dict, firewall_id: Optional[int] = None, prices: Optional[dict] = None) -> dict:
        t = parse_tags(inst.get("tags") or [])
        state = {"linode_id": inst["id"]}
        if firewall_id is not None:
            state["firewall_id"] = firewall_id
        rec = {"deployment_id": t.get("id"), "app": t.get("app"), "env": t.get("env"), "provider": self.name,
               "region": inst.get("region"), "type": inst.get("type"), "label": inst.get("label"),
               "image": inst.get("image"), "address": (inst.get("ipv4") or [None])[0], "status": inst.get("status"),
               "created_at": (inst.get("created") or "").rstrip("Z") + "Z" if inst.get("created") else None,
               "provider_state": state}
        price = (prices or {}).get(inst.get("type"))
        if price:
            p = price_of(price, inst.get("region") or "")
            rec.update(price_hourly=p["hourly"], price_monthly=p["monthly"])
        return rec

    def detail(self, record: dict) -> list:
        if is_replicated(record):
            return self.replica_detail(record)
        st = record.get("provider_state") or {}
        out = []
        if st.get("linode_id"):
            out.append(("instance", st["linode_id"]))
        if st.get("hostname") or record.get("address"):
            out.append(("hostname", st.get("hostname") or default_hostname(record["address"])))
        out.append(("firewall", st.get("firewall_label") or firewall_label(record["deployment_id"])))
        for v in st.get("volumes") or []:
            out.append(("volume", f"{v.get('name')} ({v.get('label')}, {v.get('size_gb')} GB, id {v.get('id')})"))
        return out

    def health(self, record: dict):
        """Replicated deployments: the NodeBalancer's view (``healthy k/N``, one request); else core checks."""
        return self.replica_health(record) if is_replicated(record) else None

    def ssh(self, record: dict):
        """Replicated deployments: replica 1 (the lowest index) over its public IPv4; else the instance."""
        from lcai_core.api import SshEndpoint

        if is_replicated(record):
            reps = sorted((record.get("provider_state") or {}).get("replicas") or [], key=lambda r: r["k"])
            ip = next((r.get("public_ip") for r in reps if r.get("public_ip")), None)
            return SshEndpoint(ip) if ip else None
        return super().ssh(record)

    def ssh_absent(self, record: dict):
        """A loopback address is no Linode's: the API answering is a simulator (the test simulator hands out
        127.0.1.N), and nothing serves SSH there."""
        import ipaddress

        ep = self.ssh(record)
        try:
            loopback = ep is not None and ipaddress.ip_address(ep.host).is_loopback
        except ValueError:
            return None
        if not loopback:
            return None
        from .api import resolve_url

        return (f"{ep.host} is a loopback address, which no Linode has: the API at {resolve_url()} is a simulator "
                "and runs no SSH server")

    def discover(self) -> list[dict]:
        """Every lcai instance (one request), its firewall (one request for all) and prices (one request); with
        replicated deployments, their NodeBalancers (one request) and the NodeBalancer price (one request)."""
        live = self.list_instances()
        fws = self._get("listing firewalls", "/networking/firewalls", {"tags": {"+contains": TAG}}).get("data", [])
        fw_by_label = {f.get("label"): f["id"] for f in fws}
        prices = {}
        if live:
            try:
                prices = {t["id"]: t for t in self._get("listing types", "/linode/types").get("data", [])}
            except LcaiError:
                prices = {}
        groups = group_by_deployment(live)
        nbs: dict = {}
        if any(_looks_replicated(d, g) for d, g in groups.items()):
            nbs = {parse_tags(n.get("tags") or []).get("id"): n for n in self.list_nodebalancers()}
        out = []
        nb_prices: dict = {}
        for dep, insts in groups.items():
            if _looks_replicated(dep, insts) or dep in nbs:
                region = insts[0].get("region") or ""
                if region not in nb_prices:
                    try:
                        nb_prices[region] = self.nb_price(region)
                    except LcaiError:
                        nb_prices[region] = None
                out.append(self._replicated_record(dep, insts, nbs.get(dep), fw_by_label.get(firewall_label(dep)),
                                                   prices, nb_prices[region]))
            else:
                out.append(self._record_of(insts[0], fw_by_label.get(firewall_label(dep)), prices))
        out += self._kept_volume_records(set(groups))
        return out

    def _kept_volume_records(self, live_deps: set) -> list[dict]:
        """Volumes with lcai's tags whose deployment has no instance any more: a `volumes kept` record each,
        so another machine's `sync` knows them too (one request)."""
        vols = self._get("listing volumes", "/volumes?page_size=500", {"tags": {"+contains": TAG}}).get("data", [])
        by_dep: dict = {}
        for v in vols:
            t = parse_tags(v.get("tags") or [])
            if t.get("id") and t["id"] not in live_deps and not v.get("linode_id"):
                by_dep.setdefault(t["id"], (t, []))[1].append(v)
        out = []
        for dep, (t, vs) in sorted(by_dep.items()):
            kept = [{"name": v["label"].split("-", 2)[-1], "label": v["label"], "size_gb": v.get("size"),
                     "mount": None} for v in vs]
            out.append({"deployment_id": dep, "provider": self.name, "app": t.get("app"), "env": t.get("env"),
                        "region": vs[0].get("region"), "status": VOLUMES_KEPT, "address": None, "volumes": kept,
                        "provider_state": {"volumes": [{"name": k["name"], "id": v["id"], "label": v["label"],
                                                        "size_gb": v.get("size"), "created": True}
                                                       for k, v in zip(kept, vs)]}})
        return out

    def remains(self, record: dict):
        """What a direct ``GET`` by id finds of a deployment the tag-filtered list missed: its instances
        (still there: an edited tag, or a short list reply), then the firewall and NodeBalancer purge deletes."""
        from lcai_core.api import Remains

        dep = record["deployment_id"]
        state = record.get("provider_state") or {}
        ids = {state["linode_id"]} if state.get("linode_id") else set()
        ids |= {r["linode_id"] for r in state.get("replicas") or [] if r.get("linode_id")}
        machines = []
        for lid in sorted(ids):
            inst = self.get_instance(lid)
            if inst is not None:
                tags = inst.get("tags") or []
                why = "" if f"lcai-id:{dep}" in tags else f", without its tag lcai-id:{dep}"
                machines.append(f"instance {lid} ({inst.get('status')}, label {inst.get('label')}{why})")
        leftovers = []
        fw_id = state.get("firewall_id")
        fw = (self._get_by_id(f"reading firewall {fw_id}", f"/networking/firewalls/{fw_id}") if fw_id
              else self.find_firewall(firewall_label(dep)))
        if fw is not None:
            leftovers.append(f"firewall {fw['id']} ({fw.get('label')})")
        nb_id = state.get("nodebalancer_id")
        if nb_id:
            nb = self._get_by_id(f"reading NodeBalancer {nb_id}", f"/nodebalancers/{nb_id}")
            if nb is not None:
                leftovers.append(f"NodeBalancer {nb_id} ({nb.get('label')}; its address {nb.get('ipv4')} is released)")
        return Remains(tuple(machines), tuple(leftovers))

    def _get_by_id(self, what: str, path: str) -> Optional[dict]:
        from linode_api4 import ApiError

        try:
            return self._get(what, path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    # ------------------------------------------------------------ destroy

    def stop(self, record: dict, say=lambda m: None) -> dict:
        """Its instances (and a replicated deployment's NodeBalancer, whose address is released) deleted; the
        firewall and the volumes kept for ``start``."""
        if is_replicated(record):
            self.destroy_nodebalancer_of(record, say)
        dep = record["deployment_id"]
        state = record.get("provider_state") or {}
        ids = {state["linode_id"]} if state.get("linode_id") else set()
        ids |= {r["linode_id"] for r in state.get("replicas") or [] if r.get("linode_id")}
        ids |= {i["id"] for i in self.list_instances(dep)}
        for lid in sorted(ids):
            gone = not self.delete_instance(lid)
            say(f"instance {lid}: {'already gone' if gone else 'deleted'}")
        return {k: v for k, v in state.items() if k in ("firewall_id", "firewall_label", "volumes")}

    def destroy(self, record: dict, say=lambda m: None) -> None:
        """Instances (by id, and any a lost reply left behind with the deployment's tag), then the firewall; a
        replicated deployment's NodeBalancer first."""
        if is_replicated(record):
            self.destroy_nodebalancer_of(record, say)
        dep_id = record["deployment_id"]
        state = record.get("provider_state") or {}
        linode_ids = {state["linode_id"]} if state.get("linode_id") else set()
        linode_ids |= {r["linode_id"] for r in state.get("replicas") or [] if r.get("linode_id")}
        linode_ids |= {i["id"] for i in self.list_instances(dep_id)}
        for lid in sorted(linode_ids):
            gone = not self.delete_instance(lid)
            say(f"instance {lid}: {'already gone' if gone else 'deleted'}")
        fw_id = state.get("firewall_id")
        if fw_id is None:
            fw = self.find_firewall(firewall_label(dep_id))
            fw_id = fw["id"] if fw else None
        if fw_id is not None:
            gone = not self.delete_firewall(fw_id)
            say(f"firewall {fw_id}: {'already gone' if gone else 'deleted'}")


def default_hostname(ipv4: str) -> str:
    """The reverse-DNS name every Linode has by default: ``a-b-c-d.ip.linodeusercontent.com``."""
    return f"{ipv4.replace('.', '-')}.ip.linodeusercontent.com"


MAX_PAGES = 200  # 100 000 objects at 500 a page: more is a broken reply, not an account


def checked_pages(resp: dict, page: int, what: str) -> int:
    """The ``pages`` of a list reply, refused when it is not a sane count (an absurd value once made `status`
    send 11 195 requests in 15 s) or when a page short of it came back empty."""
    pages = resp.get("pages", 1)
    if not isinstance(pages, int) or isinstance(pages, bool) or not 1 <= pages <= MAX_PAGES:
        raise ApiFailure(f"{what}: the Linode API answered pages={pages!r}, which lcai does not follow "
                         f"(at most {MAX_PAGES})", hint="try again; check LCAI_LINODE_API_URL")
    if page < pages and not resp.get("data"):
        raise ApiFailure(f"{what}: page {page} of {pages} came back empty", hint="try again")
    return pages


def firewall_rules(ports, ssh_sources, app_sources=None) -> dict:
    """A deployment's firewall rules: SSH (22) from ``ssh_sources``, the app ports from ``app_sources``
    (default anywhere), everything else inbound dropped."""

    def addresses(sources) -> dict:
        v4 = [s for s in sources if ":" not in s]
        v6 = [s for s in sources if ":" in s]
        return {k: v for k, v in (("ipv4", v4), ("ipv6", v6)) if v}

    inbound = [{"label": "lcai-ssh", "action": "ACCEPT", "protocol": "TCP", "ports": "22",
                "addresses": addresses(list(ssh_sources))}]
    if ports:
        inbound.append({"label": "lcai-app", "action": "ACCEPT", "protocol": "TCP",
                        "ports": ", ".join(str(p) for p in sorted(set(ports))),
                        "addresses": addresses(list(app_sources or ["0.0.0.0/0", "::/0"]))})
    return {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": inbound, "outbound": []}


def _rule_view(rules) -> list:
    """What decides who gets in: policy, then each inbound rule's protocol, ports and sources."""
    rules = rules if isinstance(rules, dict) else {}
    return [rules.get("inbound_policy"),
            sorted((r.get("action"), r.get("protocol"), str(r.get("ports")).replace(" ", ""),
                    tuple(sorted((r.get("addresses") or {}).get("ipv4") or [])),
                    tuple(sorted((r.get("addresses") or {}).get("ipv6") or [])))
                   for r in rules.get("inbound") or [] if isinstance(r, dict))]


def _sources_text(addresses: dict) -> str:
    srcs = [*(addresses.get("ipv4") or []), *(addresses.get("ipv6") or [])]
    return "anywhere" if set(srcs) == {"0.0.0.0/0", "::/0"} else ", ".join(srcs)


def refused(what: str, e) -> LcaiError:
    """A 4xx the API will answer the same way again: one line with the API's reasons and the next step."""
    reasons = "; ".join(map(str, e.errors or [])) or str(e)
    if e.status == 401:
        return _token_error(e)
    hint = {403: "the token needs read/write access to Linodes and Firewalls (and NodeBalancers, for replicas), "
                 "and the account access to this type (GPU plans need a support request)",
            400: "fix what the API names (deploy.yml or the flags) and deploy again"}.get(e.status)
    err = ApiFailure(f"{what} was refused by the Linode API ({e.status}): {reasons}", hint=hint)
    err.status = e.status  # type: ignore[attr-defined]
    return err
