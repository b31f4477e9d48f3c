"""Block Storage Volumes in the Linode API simulator, faithful to the OpenAPI document (4.189.0).

``/volumes`` (list, create: ``label`` required, ``size`` in GB (default 20, 10-10240), ``region`` or
``linode_id``, ``tags``), ``/volumes/{id}`` (get, update label/tags, delete: refused while attached),
``/volumes/{id}/attach`` (``linode_id``; refused when attached elsewhere, in another region, or when the
instance already has 8), ``/volumes/{id}/detach``, ``/volumes/{id}/resize`` (grow only, ``active`` only),
``/volumes/types`` (the price: $0.10/GB/month) and ``/linode/instances/{id}/volumes``.

A new volume is ``creating`` for ``provision_s`` (the simulator's setting), then ``active``. Deleting an instance
detaches its volumes (the API: "data persists even if you delete your attached instance"); a rebuild leaves them
attached. Labels are unique among the account's volumes (each is a device name inside the instance:
``/dev/disk/by-id/scsi-0Linode_Volume_<label>``).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Optional

from .sim_validate import check_tags, error, is_int

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Handler

VOLUME_LABEL_RE = re.compile(r"^[a-zA-Z]((?!--|__)[a-zA-Z0-9-_])+$")
MAX_PER_INSTANCE = 8
SIZE_MIN, SIZE_MAX = 10, 10240
VOLUME_TYPES = [{"id": "volume", "label": "Storage Volume", "price": {"hourly": 0.00015, "monthly": 0.1},
                 "region_prices": [{"id": "id-cgk", "hourly": 0.00018, "monthly": 0.12},
                                   {"id": "br-gru", "hourly": 0.00021, "monthly": 0.14}],
                 "transfer": 0}]


def _api():
    from . import simulator

    return simulator


def _fail(status: int, reason: str, field: Optional[str] = None):
    return _api().ApiError(status, reason, field)


def public(h: "Handler", v: dict) -> dict:
    st = h.state
    if v["status"] == "creating" and time.monotonic() >= v["_active_at"]:
        v["status"] = "active"
    inst = st.instances.get(v["linode_id"]) if v.get("linode_id") else None
    return {**{k: x for k, x in v.items() if not k.startswith("_")},
            "linode_label": inst["label"] if inst else None}


def _check_label(label: Any, field: str = "label") -> list:
    if not isinstance(label, str) or not 1 <= len(label) <= 32 or not VOLUME_LABEL_RE.match(label):
        return [error(field, "Label must be 1-32 characters: letters, digits, '-' and '_', starting with a "
                             "letter, without '--' or '__'")]
    return []


def _attached_to(h: "Handler", linode_id: int) -> list[dict]:
    return [v for v in h.state.volumes.values() if v.get("linode_id") == linode_id]


def _instance(h: "Handler", linode_id: Any, field: str = "linode_id") -> dict:
    if not is_int(linode_id):
        raise _fail(400, "linode_id must be an integer", field)
    inst = h.state.instances.get(linode_id)
    if inst is None:
        raise _fail(400, "Linode not found", field)
    return inst


def _attach(h: "Handler", v: dict, inst: dict) -> None:
    if inst["region"] != v["region"]:
        raise _fail(400, f"Volume and Linode must be in the same region (volume {v['region']}, "
                         f"Linode {inst['region']})", "linode_id")
    if len(_attached_to(h, inst["id"])) >= MAX_PER_INSTANCE:
        raise _fail(400, f"A Linode may have at most {MAX_PER_INSTANCE} volumes attached", "linode_id")
    v["linode_id"] = inst["id"]
    v["updated"] = _api()._now()
    h.state._event("volume_attach", inst, "finished")


def create(h: "Handler", b: Any) -> dict:
    st = h.state
    api = _api()
    if not isinstance(b, dict):
        raise _fail(400, "Request body must be an object")
    errs = _check_label(b.get("label"))
    size = b.get("size", 20)
    if not is_int(size) or not SIZE_MIN <= size <= SIZE_MAX:
        errs.append(error("size", f"Size must be between {SIZE_MIN} and {SIZE_MAX}"))
    if "tags" in b:
        errs += check_tags(b["tags"])
    if "config_id" in b and "linode_id" not in b:
        errs.append(error("config_id", "config_id requires linode_id"))
    if b.get("linode_id") is None and not b.get("region"):
        errs.append(error("region", "region is required when linode_id is not given"))
    if b.get("encryption") not in (None, "enabled", "disabled"):
        errs.append(error("encryption", "Must be enabled or disabled"))
    if isinstance(b.get("label"), str) and any(v["label"] == b["label"] for v in st.volumes.values()):
        errs.append(error("label", "Label must be unique among your Volumes"))
    api._raise(errs)
    inst = _instance(h, b["linode_id"]) if b.get("linode_id") is not None else None
    region = inst["region"] if inst else b["region"]
    if inst is None and not any(r["id"] == region for r in api.REGIONS):
        raise _fail(400, "region is not valid", "region")
    vid = st.new_id()
    now = api._now()
    v = {"id": vid, "label": b["label"], "status": "creating", "size": size, "region": region, "linode_id": None,
         "filesystem_path": f"/dev/disk/by-id/scsi-0Linode_Volume_{b['label']}", "tags": list(b.get("tags") or []),
         "created": now, "updated": now, "hardware_type": "nvme", "encryption": b.get("encryption") or "disabled",
         "_active_at": time.monotonic() + st.provision_s}
    if inst is not None:
        if len(_attached_to(h, inst["id"])) >= MAX_PER_INSTANCE:
            raise _fail(400, f"A Linode may have at most {MAX_PER_INSTANCE} volumes attached", "linode_id")
        v["linode_id"] = inst["id"]
    st.volumes[vid] = v
    return public(h, v)


def detach_all(h: "Handler", linode_id: int) -> None:
    """The instance is deleted: its volumes stay, detached."""
    for v in _attached_to(h, linode_id):
        v["linode_id"] = None


def route(h: "Handler", method: str, path: str, query: dict, body: Any) -> Optional[tuple[int, Any]]:
    st = h.state
    api = _api()
    m = re.fullmatch
    if path == "/volumes/types":
        return h._list(VOLUME_TYPES, query) if method == "GET" else None
    if path == "/volumes":
        if method == "GET":
            return h._list([public(h, v) for v in st.volumes.values()], query)
        if method == "POST":
            return 200, create(h, body)
        return None
    if method == "GET" and (g := m(r"/linode/instances/(\d+)/volumes", path)):
        inst = h._instance(g.group(1))
        return h._list([public(h, v) for v in _attached_to(h, inst["id"])], query)
    g = m(r"/volumes/(\d+)(/attach|/detach|/resize|/clone)?", path)
    if not g:
        return None
    v = st.volumes.get(int(g.group(1)))
    if v is None:
        raise _fail(404, "Not found")
    sub = g.group(2)
    if sub is None:
        if method == "GET":
            return 200, public(h, v)
        if method == "PUT":
            if not isinstance(body, dict):
                raise _fail(400, "Request body must be an object")
            errs = _check_label(body["label"]) if "label" in body else []
            if "tags" in body:
                errs += check_tags(body["tags"])
            api._raise(errs)
            v.update({k: body[k] for k in ("label", "tags") if k in body})
            v["updated"] = api._now()
            return 200, public(h, v)
        if method == "DELETE":
            if v.get("linode_id"):
                raise _fail(400, "Volume must be detached before it can be deleted")
            del st.volumes[v["id"]]
            return 200, {}
        return None
    if method != "POST":
        return None
    b = body if isinstance(body, dict) else {}
    if sub == "/attach":
        inst = _instance(h, b.get("linode_id"))
        if v.get("linode_id") == inst["id"]:
            raise _fail(400, "Volume is already attached to this Linode", "linode_id")
        if v.get("linode_id"):
            raise _fail(400, "Volume is already attached to another Linode", "linode_id")
        _attach(h, v, inst)
        return 200, public(h, v)
    if sub == "/detach":
        v["linode_id"] = None
        v["updated"] = api._now()
        return 200, {}
    if sub == "/resize":
        size = b.get("size")
        if public(h, v)["status"] != "active":
            raise _fail(400, "Volume must be active to be resized")
        if not is_int(size) or not v["size"] < size <= SIZE_MAX:
            raise _fail(400, f"Size must be larger than the current size ({v['size']}) and at most {SIZE_MAX}",
                        "size")
        v["size"] = size
        v["updated"] = api._now()
        return 200, public(h, v)
    raise _fail(501, "POST /volumes/{id}/clone is not implemented by lcai-linode-sim")
