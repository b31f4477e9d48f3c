"""JSON Schema (draft 2020-12) of the template format, generated from the attrs models and the installed
capabilities' config classes, so it never drifts from what the loader accepts."""

from __future__ import annotations

import typing
from typing import Any, Literal, cast

import attrs

from .template import Feature, Template

# attrs' stubs declare Factory as a function (so `x: list = Factory(list)` type-checks); at runtime it is the class
# of factory defaults
_FACTORY = cast(type, attrs.Factory)

DESCRIPTIONS = {
    "Template.name": "Template id: 3-63 lowercase letters, digits, dashes.",
    "Capabilities.runtime": "How the app runs: docker (container) or native (host process).",
    "Capabilities.features": "Capabilities to install: a name, or {name, config}.",
    "Capabilities.packages": "Extra apt packages.",
    "LinodeDeploy.image": "Linode image id, e.g. linode/ubuntu24.04 (must support cloud-init).",
    "LinodeDeploy.replicas": "Instances behind one NodeBalancer, 1-25 (1: one instance, no NodeBalancer); "
                             "see docs/scaling.md.",
    "Container.internal_port": "Port the container listens on.",
    "Container.external_port": "Public port on the instance (opened in the firewall).",
    "Container.env": "Environment defaults; values may reference ${NAME} from .env.",
    "Health.initial_delay_seconds": "Failures during this time do not count against max_retries.",
    "SetupFile.permissions": "Octal string, e.g. '0644' (quoted).",
}


def _t(tp: Any, defs: dict) -> dict:
    if tp is Any:
        return {}
    if tp is Feature:
        return {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": False, "required": ["name"],
                                               "properties": {"name": {"type": "string"},
                                                              "config": {"type": "object"}}}]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is typing.Union:
        non_none = [a for a in args if a is not type(None)]
        inner = _t(non_none[0], defs) if len(non_none) == 1 else {"anyOf": [_t(a, defs) for a in non_none]}
        return {"anyOf": [inner, {"type": "null"}]} if len(non_none) < len(args) else inner
    if origin in (list, tuple):
        return {"type": "array", "items": _t(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _t(args[1], defs)}
    if attrs.has(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}
            defs[name] = object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    return {}


def object_schema(cls: type, defs: dict) -> dict:
    hints = typing.get_type_hints(cls)
    props, required = {}, []
    for f in attrs.fields(cls):
        s = _t(hints[f.name], defs)
        desc = DESCRIPTIONS.get(f"{cls.__name__}.{f.name}")
        if desc:
            s = {**s, "description": desc}
        if f.default is not attrs.NOTHING and not isinstance(f.default, _FACTORY):
            try:
                import json

                json.dumps(f.default)
                s = {**s, "default": list(f.default) if isinstance(f.default, tuple) else f.default}
            except TypeError:
                pass
        props[f.name] = s
        if f.default is attrs.NOTHING:
            required.append(f.name)
    out: dict = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    return out


def template_schema(catalog=None) -> dict:
    from .template import MAX_REPLICAS

    defs: dict = {}
    root = object_schema(Template, defs)
    defs["LinodeDeploy"]["properties"]["replicas"].update(minimum=1, maximum=MAX_REPLICAS)
    if catalog is not None:
        names = catalog.names()
        feats = [n for n in names if catalog.by_name[n].capability.kind == "feature"] + sorted(catalog.alias_of)
        runtimes = catalog.names("runtime")
        defs["Capabilities"]["properties"]["runtime"]["enum"] = runtimes
        item = defs["Capabilities"]["properties"]["features"]["items"]
        item["oneOf"][0]["enum"] = feats
        conds = []
        for n in feats:
            reg, _ = catalog.lookup(n)
            cfg = reg.capability.config_class
            if cfg is None:
                continue
            conds.append({"if": {"type": "object", "properties": {"name": {"const": n}}},
                          "then": {"properties": {"config": object_schema(cfg, defs)}}})
        if conds:
            item["oneOf"][1]["allOf"] = conds
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://lcai.dev/schema/template.json",
            "title": "lcai template", **root, "$defs": defs}
