"""Block Storage volumes of a deployment (``Spec.volumes``): found by label (``volume_label(app, env, name)``, the
same for every deployment of the app and env), created with the deployment's tags only when none exists, attached
before the instance first boots (the create body has no volume field: the instance is created with ``booted:
false``, then the volumes, then ``POST /linode/instances/{id}/boot``), checked again after every rebuild, kept by
``destroy`` and deleted only by ``delete_volumes`` (``lcai destroy --volumes``).

An undo (a failed or interrupted create) deletes only the volumes this deployment created (they carry its
``lcai-id:`` tag); a volume an earlier deployment kept is left as it is, with its data."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from lcai_core.api import InputError, LcaiError, Preflight, Price, Spec, Step, env_seconds

if TYPE_CHECKING:  # pragma: no cover
    from .provider import LinodeProvider as _Base
else:
    _Base = object


PROVISION_S = 900  # how long an instance may stay provisioning before its first boot is given up


def _volume_fields(vol: dict, created: bool) -> dict:
    return {"name": vol.get("_name"), "id": vol["id"], "label": vol["label"], "size_gb": vol.get("size"),
            "created": created}


class VolumeMixin(_Base):
    """The volume half of ``LinodeProvider`` (uses its ``_get``, ``_create``, ``_put``, ``retrier``, ``client``)."""

    # ------------------------------------------------------------ reads

    def find_volume(self, label: str) -> Optional[dict]:
        resp = self._get(f"looking up volume {label}", "/volumes", {"label": label})
        return next((v for v in resp.get("data", []) if v.get("label") == label), None)

    def volumes_of(self, linode_id: int) -> list[dict]:
        return self._get(f"listing the volumes of instance {linode_id}",
                         f"/linode/instances/{linode_id}/volumes?page_size=100").get("data", [])

    def volume_price(self, region: str) -> tuple[Optional[float], Optional[float]]:
        """(hourly, monthly) per GB in ``region`` (``GET /volumes/types``)."""
        types = self._get("reading the volume price", "/volumes/types").get("data", [])
        t = next((x for x in types if x.get("id") == "volume"), types[0] if types else {})
        p = next((rp for rp in t.get("region_prices") or [] if rp.get("id") == region), t.get("price") or {})
        return p.get("hourly"), p.get("monthly")

    def volume_preflight(self, spec: Spec, pre: Preflight) -> Preflight:
        if not spec.volumes:
            return pre
        if spec.replicas > 1:
            raise InputError("volumes with replicas are not supported yet: each replica would need its own",
                             hint="deploy one instance (replicas: 1), or remove deploy.linode.volumes")
        hourly, monthly = self.volume_price(spec.region)
        gb = sum(v.size_gb for v in spec.volumes)
        vm = round(monthly * gb, 2) if monthly is not None else None
        vh = round(hourly * gb, 5) if hourly is not None else None
        p = pre.price
        price = Price(round(p.hourly + vh, 5) if p.hourly is not None and vh is not None else p.hourly,
                      round(p.monthly + vm, 2) if p.monthly is not None and vm is not None else p.monthly,
                      p.note)
        each = ", ".join(f"{v.name} {v.size_gb} GB at {v.mount}" for v in spec.volumes)
        note = (f"volumes: {each} ({gb} GB, ${vm}/mo, in the total): kept by redeploys and by `lcai destroy` "
                "(`--volumes` deletes them); found again by the next deploy of this app and env")
        return Preflight(pre.summary + f" + {len(spec.volumes)} volume(s), {gb} GB", price, (*pre.notes, note))

    # ------------------------------------------------------------ create steps

    def volume_steps(self, spec: Spec) -> list[Step]:
        """The volumes (found and attached, or created attached), then the first boot."""
        dep = spec.deployment_id

        def ensure(state: dict, say) -> dict:
            return {"volumes": self.ensure_volumes(spec, state["linode_id"], say)}

        def find(state: dict) -> Optional[dict]:
            lid = state.get("linode_id")
            if not lid:
                return None
            attached = {v["label"]: v for v in self.volumes_of(lid)}
            if any(v.label not in attached for v in spec.volumes):
                return None
            return {"volumes": [_volume_fields(dict(attached[v.label], _name=v.name),
                                               f"lcai-id:{dep}" in (attached[v.label].get("tags") or []))
                                for v in spec.volumes]}

        def undo(state: dict, say) -> None:
            for v in spec.volumes:
                vol = self.find_volume(v.label)
                if vol is None:
                    continue
                if f"lcai-id:{dep}" in (vol.get("tags") or []):
                    self._delete_volume(vol, say)
                else:
                    say(f"volume {v.name} ({vol['label']}): kept (an earlier deployment's data)")

        def boot(state: dict, say) -> dict:
            return self._boot(state["linode_id"], say)

        def boot_find(state: dict) -> Optional[dict]:
            inst = self.get_instance(state["linode_id"]) if state.get("linode_id") else None
            return {"status": inst["status"]} if inst and inst.get("status") in ("booting", "running") else None

        return [Step.of("volumes", ensure, find, undo), Step.of("boot", boot, boot_find, lambda state, say: None)]

    def ensure_volumes(self, spec: Spec, linode_id: int, say, made: Optional[list] = None) -> list[dict]:
        """Every volume of ``spec`` attached to ``linode_id``: found by label (attached if it is not; refused
        when another instance holds it or it is in another region) or created there. Never resized, never
        formatted here (the user data formats an empty one only)."""
        out = []
        for v in spec.volumes:
            vol = self.find_volume(v.label)
            if vol is None:
                body = {"label": v.label, "size": v.size_gb, "linode_id": linode_id, "tags": list(spec.tags[:4])}
                vol = self._create(f"creating volume {v.label}", lambda body=body: self.client.post("/volumes",
                                                                                                   data=body),
                                   lambda label=v.label: self.find_volume(label))
                say(f"volume {v.name} ({vol['label']}, {v.size_gb} GB): created, attached to instance {linode_id}")
                if made is not None:
                    made.append(v.name)
                out.append(_volume_fields(dict(vol, _name=v.name), True))
                continue
            if vol.get("region") != spec.region:
                raise InputError(f"volume {v.label} ({v.name}) is in {vol.get('region')}, the deployment in "
                                 f"{spec.region}: a volume cannot move regions",
                                 hint=f"deploy in {vol.get('region')} (--region), or rename the volume")
            holder = vol.get("linode_id")
            if holder and holder != linode_id:
                raise InputError(f"volume {v.label} ({v.name}) is attached to instance {holder} "
                                 f"({vol.get('linode_label')}): one deployment of an app and env holds its volumes",
                                 hint="destroy that deployment first (its volumes are kept), or use another --env")
            if not holder:
                self._post(f"attaching volume {v.label}", f"/volumes/{vol['id']}/attach", {"linode_id": linode_id})
                say(f"volume {v.name} ({vol['label']}, {vol.get('size')} GB): attached to instance {linode_id}, "
                    "with its data")
            if vol.get("size") and vol["size"] < v.size_gb:
                vol = self._grow(dict(vol, _name=v.name), v.size_gb, say)
            elif vol.get("size") and vol["size"] > v.size_gb:
                say(f"note: volume {v.name} is {vol['size']} GB, more than the template's {v.size_gb} GB "
                    "(a volume never shrinks)")
            out.append(_volume_fields(dict(vol, _name=v.name), f"lcai-id:{spec.deployment_id}" in
                                      (vol.get("tags") or [])))
        return out

    def _grow(self, vol: dict, size_gb: int, say) -> dict:
        """``POST /volumes/{id}/resize`` to ``size_gb`` (a volume only grows), then wait until it is ``active``
        again; a lost reply is looked up (the size it has), never a second request that would fail. The
        filesystem grows on the instance's next first boot (the volume-prepare step's ``resize2fs``)."""
        from linode_api4 import ApiError

        from .provider import refused

        vid, was = vol["id"], vol.get("size")
        try:
            self.retrier.call(f"growing volume {vol['label']}",
                              lambda: self.client.post(f"/volumes/{vid}/resize", data={"size": size_gb}))
        except ApiError as e:
            now = self.find_volume(vol["label"]) or {}
            if (now.get("size") or 0) < size_gb:
                raise refused(f"growing volume {vol['label']} to {size_gb} GB", e) from None
        deadline = time.monotonic() + PROVISION_S
        while True:
            now = self.find_volume(vol["label"]) or {}
            if now.get("status") == "active" and (now.get("size") or 0) >= size_gb:
                break
            if time.monotonic() > deadline:
                raise LcaiError(f"volume {vol['label']} is still {now.get('status')} after growing it",
                                hint="`lcai status`; deploy again once Cloud Manager shows it active")
            time.sleep(env_seconds("LCAI_POLL_INTERVAL", 3))
        say(f"volume {vol.get('_name') or vol['label']}: grown from {was} GB to {size_gb} GB (its filesystem grows "
            "when the instance boots)")
        return dict(now, _name=vol.get("_name"))

    def _post(self, what: str, path: str, body: dict) -> Any:
        from linode_api4 import ApiError

        from .provider import refused

        try:
            return self.retrier.call(what, lambda: self.client.post(path, data=body))
        except ApiError as e:
            if e.status == 400 and "already attached to this" in " ".join(map(str, e.errors or [])):
                return {}  # a lost reply of our own attach
            raise refused(what, e) from None

    def _boot(self, linode_id: int, say) -> dict:
        """Boot the instance once it is provisioned (``offline``); booting or running already is fine."""
        deadline = time.monotonic() + PROVISION_S
        poll = env_seconds("LCAI_POLL_INTERVAL", 3)
        while True:
            inst = self.get_instance(linode_id)
            if inst is None:
                raise LcaiError(f"instance {linode_id} is gone before its first boot")
            status = inst.get("status")
            if status in ("booting", "running"):
                return {"status": status}
            if status == "offline":
                self._post(f"booting instance {linode_id}", f"/linode/instances/{linode_id}/boot", {})
                say(f"instance {linode_id}: booting, with its volumes attached")
                return {"status": "booting"}
            if time.monotonic() > deadline:
                raise LcaiError(f"instance {linode_id} is still {status} after provisioning; it was not booted",
                                hint="`lcai status`; `lcai destroy ID` and deploy again if it stays so")
            time.sleep(poll)

    # ------------------------------------------------------------ delete (only when asked)

    def _delete_volume(self, vol: dict, say) -> None:
        from linode_api4 import ApiError

        vid = vol["id"]
        if vol.get("linode_id"):
            try:
                self.retrier.call(f"detaching volume {vid}",
                                  lambda: self.client.post(f"/volumes/{vid}/detach", data={}))
            except ApiError as e:
                if e.status != 404:
                    raise
        deadline = time.monotonic() + PROVISION_S
        while True:
            try:
                self.retrier.call(f"deleting volume {vid}", lambda: self.client.delete(f"/volumes/{vid}"))
                say(f"volume {vid} ({vol.get('label')}): deleted")
                return
            except ApiError as e:
                if e.status == 404:
                    say(f"volume {vid}: already gone")
                    return
                if e.status != 400 or time.monotonic() > deadline:  # 400: still detaching
                    from .provider import refused

                    raise refused(f"deleting volume {vid}", e) from None
            time.sleep(env_seconds("LCAI_POLL_INTERVAL", 3))

    def delete_volumes(self, record: dict, say=lambda m: None) -> None:
        """``lcai destroy --volumes``: the deployment's volumes, looked up by label, detached and deleted."""
        for v in record.get("volumes") or []:
            vol = self.find_volume(v["label"])
            if vol is None:
                say(f"volume {v['name']} ({v['label']}): already gone")
                continue
            self._delete_volume(vol, say)
