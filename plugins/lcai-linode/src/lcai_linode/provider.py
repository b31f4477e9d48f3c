"""Linode operations lcai needs, each safe to retry: preflight, firewall and instance creation reconciled by
their deployment tag/label (never a duplicate), tag-filtered listing (one request for up to 500), deletion
tolerant of 404."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any, Callable, Optional

from lcai_core.errors import InputError, LcaiError
from lcai_core.providers import Provider

from .api import ApiFailure, Retrier, describe, make_client, retryable

TAG = "lcai"


def deployment_tags(deployment_id: str, app: str, env: str) -> list[str]:
    """Contract: exactly ``lcai``, ``lcai-id:<id>``, ``lcai-app:<app>``, ``lcai-env:<env>`` (each 3-50 chars)."""
    tags = [TAG, f"lcai-id:{deployment_id}", f"lcai-app:{app}", f"lcai-env:{env}"]
    for t in tags:
        if not 3 <= len(t) <= 50:
            raise InputError(f"tag {t!r} must be 3-50 characters (Linode's limit); use a shorter --app/--env")
    return tags


def parse_tags(tags: list[str]) -> dict:
    out = {}
    for t in tags:
        for key in ("id", "app", "env"):
            if t.startswith(f"lcai-{key}:"):
                out[key] = t.split(":", 1)[1]
    return out


def by_deployment(instances: list[dict]) -> dict[str, dict]:
    """Instances keyed by their ``lcai-id:`` tag (the first one, if a lost reply ever made two)."""
    out: dict[str, dict] = {}
    for inst in instances:
        dep = parse_tags(inst.get("tags") or []).get("id")
        if dep:
            out.setdefault(dep, inst)
    return out


def instance_label(app: str, env: str, deployment_id: str) -> str:
    """3-64 chars, a letter first, letters/digits/-/_/. only, no '--', '__', '..', alphanumeric last."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", f"lcai-{app}-{env}")
    base = re.sub(r"-{2,}", "-", base).strip("-")
    label = f"{base[:64 - len(deployment_id) - 1]}-{deployment_id}"
    return re.sub(r"-{2,}", "-", label)


def firewall_label(deployment_id: str) -> str:
    return f"lcai-fw-{deployment_id}"  # 16 chars: within the 3-32 limit


def random_root_password() -> str:
    """A strong random password (the SDK needs one with an image); kept only if no SSH key is used."""
    alphabet = string.ascii_letters + string.digits + "-_.,:+"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(40))
        if all(any(c in cls for c in pw) for cls in (string.ascii_lowercase, string.ascii_uppercase, string.digits)):
            return pw


def price_of(t: dict, region: str) -> dict:
    for rp in t.get("region_prices") or []:
        if rp.get("id") == region:
            return {"hourly": rp["hourly"], "monthly": rp["monthly"], "region_price": True}
    p = t.get("price") or {}
    return {"hourly": p.get("hourly"), "monthly": p.get("monthly"), "region_price": False}


class LinodeProvider(Provider):
    name = "linode"
    summary = "Linode (Akamai cloud) through the Linode API v4"

    def __init__(self, client=None, retrier: Optional[Retrier] = None):
        self._client = client
        self.retrier = retrier or Retrier()

    @property
    def client(self):
        if self._client is None:
            self._client = make_client()
        return self._client

    def _get(self, what: str, path: str, filters: Optional[dict] = None) -> Any:
        return self.retrier.call(what, lambda: self.client.get(path, filters=filters))

    # ------------------------------------------------------------ preflight

    def preflight(self, region: str, type_: str, image: str) -> dict:
        """Token, type, region and image exist; the region has Metadata (and GPU Linodes for a GPU type); the image
        has cloud-init. Returns the type and its price in that region."""
        from linode_api4 import ApiError

        try:
            self._get("checking the token", "/profile")
        except ApiError as e:
            if e.status == 401:
                raise InputError("the Linode API rejected the token (401)",
                                 hint="check LINODE_TOKEN; it needs Linodes and Firewalls read/write") from None
            raise

        def one(what: str, path: str, flag: str) -> dict:
            try:
                return self._get(f"looking up {what}", path)
            except ApiError as e:
                if e.status == 404:
                    raise InputError(f"{what} does not exist", hint=f"override it with {flag}, or fix deploy.yml") from None
                raise

        t = one(f"type {type_}", f"/linode/types/{type_}", "--type")
        r = one(f"region {region}", f"/regions/{region}", "--region")
        i = one(f"image {image}", f"/images/{image}", "deploy.linode.image")
        caps = r.get("capabilities") or []
        if "Metadata" not in caps:
            raise InputError(f"region {region} does not support Metadata, so cloud-init user data cannot be delivered",
                             hint="pick another region with --region (e.g. us-ord)")
        if t.get("class") == "gpu" and "GPU Linodes" not in caps:
            raise InputError(f"region {region} has no GPU Linodes for type {type_}", hint="try --region us-ord")
        if "cloud-init" not in (i.get("capabilities") or []):
            raise InputError(f"image {image} does not support cloud-init", hint="use linode/ubuntu24.04")
        return {"type": t, "region": r, "image": i, "price": price_of(t, region)}

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
            pages = resp.get("pages", 1)
            page += 1
        return [i for i in out if tag in (i.get("tags") or [])]

    def get_instance(self, linode_id: int) -> Optional[dict]:
        from linode_api4 import ApiError

        try:
            return self._get(f"reading instance {linode_id}", f"/linode/instances/{linode_id}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

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
                    reasons = "; ".join(map(str, e.errors or [])) or str(e)
                    raise ApiFailure(f"{what} was refused by the Linode API: {reasons}") from None
                if not retryable(e):
                    raise
                last = e
            self.retrier.sleep(self.retrier.delay(attempt, last))
            found = self.retrier.call(f"checking whether {what} happened", lookup)
            if found is not None:
                return found
        raise ApiFailure(f"{what} failed after {self.retrier.attempts} attempts: {describe(last)}")

    def create_firewall(self, deployment_id: str, tags: list[str], ports: list[int], ssh_sources: list[str]) -> dict:
        label = firewall_label(deployment_id)
        v4 = [s for s in ssh_sources if ":" not in s]
        v6 = [s for s in ssh_sources if ":" in s]
        inbound = [{"label": "lcai-ssh", "action": "ACCEPT", "protocol": "TCP", "ports": "22",
                    "addresses": {k: v for k, v in (("ipv4", v4), ("ipv6", v6)) if v}}]
        if ports:
            inbound.append({"label": "lcai-app", "action": "ACCEPT", "protocol": "TCP",
                            "ports": ", ".join(str(p) for p in sorted(set(ports))),
                            "addresses": {"ipv4": ["0.0.0.0/0"], "ipv6": ["::/0"]}})
        rules = {"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": inbound, "outbound": []}
        body = {"label": label, "rules": rules, "tags": tags[:2]}
        return self._create(f"creating firewall {label}",
                            lambda: self.client.post("/networking/firewalls", data=body),
                            lambda: self.find_firewall(label))

    def create_instance(self, *, deployment_id: str, label: str, region: str, type_: str, image: str, tags: list[str],
                        firewall_id: int, user_data_b64: str, authorized_keys: list[str], root_pass: str) -> dict:

        # already base64(gzip(…)): the SDK must not encode it again
        metadata = self.client.linode.build_instance_metadata(user_data=user_data_b64, encode_user_data=False)
        body = {"type": type_, "region": region, "image": image, "label": label, "tags": tags,
                "root_pass": root_pass, "firewall_id": firewall_id, "metadata": metadata, "booted": True}
        if authorized_keys:
            body["authorized_keys"] = authorized_keys

        def lookup():
            found = self.list_instances(deployment_id)
            return found[0] if found else None

        return self._create(f"creating instance {label}", lambda: self.client.post("/linode/instances", data=body),
                            lookup)

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
            raise ApiFailure(f"{what} was refused: {describe(e)}") from None


    # ------------------------------------------------------------ the Provider interface (CLI and TUI)

    def deployment_rows(self, records: dict) -> tuple[list[dict], str]:
        """Registry records merged with ONE tag-filtered list call; vanished and untracked instances marked."""
        try:
            live = self.list_instances()
        except LcaiError as e:
            return [dict(r, live_status=r.get("status")) for r in records.values()], f"registry (API unreachable: {e})"
        by_dep = by_deployment(live)
        rows = []
        for dep_id, rec in sorted(records.items(), key=lambda kv: kv[1].get("created_at", "")):
            inst = by_dep.pop(dep_id, None)
            row = dict(rec)
            if inst is not None:
                row.update(live_status=inst.get("status"), linode_id=inst["id"], ipv4=(inst.get("ipv4") or [None])[0])
            elif rec.get("status") == "creating" and not rec.get("linode_id"):
                row["live_status"] = "creating?"
            else:
                row["live_status"] = "vanished"
            rows.append(row)
        for dep_id, inst in sorted(by_dep.items()):
            t = parse_tags(inst.get("tags") or [])
            rows.append({"deployment_id": dep_id, "app": t.get("app"), "env": t.get("env"),
                         "region": inst.get("region"), "type": inst.get("type"), "linode_id": inst["id"],
                         "ipv4": (inst.get("ipv4") or [None])[0], "live_status": inst.get("status"),
                         "created_at": (inst.get("created") or "") + "Z", "untracked": True})
        return rows, "api"

    def destroy_deployment(self, record: dict, say: Callable[[str], None] = lambda m: None) -> None:
        """Instances (by id, and any a lost reply left behind with the deployment's tag), then the firewall."""
        dep_id = record["deployment_id"]
        linode_ids = {record["linode_id"]} if record.get("linode_id") else set()
        linode_ids |= {i["id"] for i in self.list_instances(dep_id)}
        for lid in sorted(linode_ids):
            gone = not self.delete_instance(lid)
            say(f"instance {lid}: {'already gone' if gone else 'deleted'}")
        fw_id = record.get("firewall_id")
        if fw_id is None:
            fw = self.find_firewall(firewall_label(dep_id))
            fw_id = fw["id"] if fw else None
        if fw_id is not None:
            gone = not self.delete_firewall(fw_id)
            say(f"firewall {fw_id}: {'already gone' if gone else 'deleted'}")

    def probe(self, record: dict):
        from .health import probe

        return probe(record)
