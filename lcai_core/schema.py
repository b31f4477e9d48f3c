"""JSON Schema (draft 2020-12) of the template format, generated from the attrs models, the constraints table
(``lcai_core.constraints``, which the loader applies too) and the installed capabilities (names, config classes,
supported images), so it accepts what the loader accepts — except the checks listed in
``constraints.BEYOND_SCHEMA`` (tests/core/test_schema_agreement.py)."""

from __future__ import annotations

import typing
from typing import Any, Literal, cast

import attrs

from .constraints import CROSS, VALUES, at, cross_schema, value_schema
from .template import Capabilities, Feature, LinodeDeploy, Template

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
                                                              "config": {"type": ["object", "null"]}}}]}
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


def _non_null(s: dict) -> dict:
    """The branch of an ``Optional`` schema that is not null (``s`` itself if it is not optional)."""
    for alt in s.get("anyOf", []):
        if alt != {"type": "null"}:
            return alt
    return s


def _constrain(cls: type, name: str, s: dict) -> None:
    """Write the rules of ``constraints.VALUES`` for field ``name`` of ``cls`` into its schema ``s``."""
    key = f"{cls.__name__}.{name}"
    target = _non_null(s)
    if key in VALUES:
        target.update(value_schema(VALUES[key]))
    if key + "[]" in VALUES:
        target["items"] = {**target["items"], **value_schema(VALUES[key + "[]"])}
    if key + ":key" in VALUES:
        target["propertyNames"] = value_schema(VALUES[key + ":key"])
    if key + ":value" in VALUES:
        target["additionalProperties"] = {**target["additionalProperties"], **value_schema(VALUES[key + ":value"])}


def object_schema(cls: type, defs: dict) -> dict:
    hints = typing.get_type_hints(cls)
    ours = cls.__module__ == Template.__module__  # the constraints table is about the template's own classes
    props, required = {}, []
    for f in attrs.fields(cls):
        s = _t(hints[f.name], defs)
        if ours:
            _constrain(cls, f.name, s)
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
    conds = []
    for rule in CROSS if ours else ():
        if rule.at != cls.__name__:
            continue
        if rule.each is None:
            conds.append(cross_schema(rule))
        else:
            items = _non_null(props[rule.each])["items"]
            items.setdefault("allOf", []).append(cross_schema(rule))
    if conds:
        out["allOf"] = conds
    return out


def _named(names: list[str]) -> dict:
    """A capability entry (a name, or {name, config}) naming one of ``names``."""
    return {"anyOf": [{"enum": names},
                      {"type": "object", "required": ["name"], "properties": {"name": {"enum": names}}}]}


def _catalog_rules(catalog, defs: dict, root: dict) -> None:
    """What the loader checks through the installed capabilities (Catalog.check_template), as schema: runtime and
    feature names, each feature's config, a capability listed once, the images a capability supports."""
    def names_of(real: str) -> list[str]:
        return [real] + sorted(a for a, (r, _) in catalog.alias_of.items() if r == real)

    kinds = {n: catalog.by_name[n].capability.kind for n in catalog.names()}
    runtimes = [n for n in catalog.names() if kinds[n] == "runtime"]
    features = [n for n in catalog.names() if kinds[n] == "feature"]
    caps = defs["Capabilities"]["properties"]
    caps["runtime"]["enum"] = [a for n in runtimes for a in names_of(n)]
    feats = [a for n in features for a in names_of(n)]
    item = caps["features"]["items"]
    item["oneOf"][0]["enum"] = feats
    item["oneOf"][1]["properties"]["name"]["enum"] = feats
    conds = []
    for n in feats:
        reg, _ = catalog.lookup(n)
        cfg = reg.capability.config_class
        config = ({"anyOf": [object_schema(cfg, defs), {"type": "null"}]} if cfg is not None
                  else {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]})
        conds.append({"if": {"type": "object", "properties": {"name": {"const": n}}},
                      "then": {"properties": {"config": config}}})
    item["oneOf"][1]["allOf"] = conds
    # each capability once, under any of its names (capabilities.packages is the feature apt-packages)
    caps["features"]["allOf"] = [{"contains": _named(names_of(n)), "minContains": 0, "maxContains": 1}
                                 for n in features]
    in_use: dict[str, dict] = {}
    default_runtime = attrs.fields_dict(Capabilities)["runtime"].default
    for n in runtimes:
        is_n = {"enum": names_of(n)}
        in_use[n] = ({"not": at(("capabilities", "runtime"), {"not": is_n}, required=True)} if n == default_runtime
                     else at(("capabilities", "runtime"), is_n, required=True))
    for n in features:
        in_use[n] = at(("capabilities", "features"), {"contains": _named(names_of(n))}, required=True)
    if "apt-packages" in in_use:
        packages = at(("capabilities", "packages"), {"minItems": 1}, required=True)
        root.setdefault("allOf", []).append({"if": packages, "then": {"not": in_use["apt-packages"]}})
        in_use["apt-packages"] = {"anyOf": [in_use["apt-packages"], packages]}
    default_image = attrs.fields_dict(LinodeDeploy)["image"].default
    for n, cond in in_use.items():
        images = catalog.by_name[n].capability.images
        if images is None:
            continue
        then = at(("deploy", "linode", "image"), {"enum": list(images)}, required=default_image not in images)
        root.setdefault("allOf", []).append({"if": cond, "then": then})


def template_schema(catalog=None) -> dict:
    defs: dict = {}
    root = object_schema(Template, defs)
    if catalog is not None:
        _catalog_rules(catalog, defs, root)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://lcai.dev/schema/template.json",
            "title": "lcai template", **root, "$defs": defs}
