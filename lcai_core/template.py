"""The template format: attrs models, loading with located errors, and semantic checks.

``load_template(path, catalog)`` reports every problem of a file in one pass: YAML syntax, types (strict, no
coercion), unknown keys (did-you-mean), the constraints declared in ``lcai_core.constraints`` (the JSON Schema of
``lcai templates schema`` is generated from the same table), the few checks JSON Schema cannot express
(``constraints.BEYOND_SCHEMA``), unknown or uninstalled capabilities and their config errors — each as
``file:line: dotted.path: message``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import typing
from typing import TYPE_CHECKING, Any, Literal, Optional

import attrs
from attrs import define, field

from . import convert
from .constraints import CROSS, ENV_NAME, MAX_REPLICAS, VALUES, Rule, holds
from .errors import MissingPlugin, Problem, ValidationError
from .yamlfile import Document, load_file, load_text

if TYPE_CHECKING:
    from .capabilities import Catalog

ENV_NAME_RE = re.compile(ENV_NAME)
REF_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME}; $$ is a literal $


def references(text: str) -> list[str]:
    """The ``${NAME}`` references in ``text``, in order, once each (``$${X}`` is a literal, not a reference)."""
    return list(dict.fromkeys(m.group(1) for m in REF_RE.finditer(text) if m.group(1)))


@define(frozen=True)
class Feature:
    """A capability reference: ``- redis`` or ``- {name: buildwatch, config: {port: 9090}}``."""

    name: str
    config: Optional[dict[str, Any]] = None


@define(frozen=True)
class Capabilities:
    runtime: str = "docker"
    features: tuple[Feature, ...] = ()
    packages: tuple[str, ...] = ()


@define(frozen=True)
class Health:
    type: Literal["http", "tcp", "exec"] = "http"
    path: str = "/"
    port: Optional[int] = None
    command: Optional[str] = None
    success_codes: tuple[int, ...] = (200,)
    initial_delay_seconds: int = 0
    interval_seconds: int = 10
    timeout_seconds: int = 5
    max_retries: int = 60
    # app restarts (systemd NRestarts) during the wait before the app is reported unhealthy: a crash loop
    max_restarts: int = 5


@define(frozen=True)
class Container:
    image: Optional[str] = None
    internal_port: Optional[int] = None
    external_port: Optional[int] = None
    command: Optional[str] = None
    volumes: tuple[str, ...] = ()
    env: dict[str, str] = field(factory=dict)
    post_start_script: Optional[str] = None
    post_start_timeout_seconds: int = 1800
    health: Optional[Health] = None
    # native runtime: run the app as the dedicated user lcai-app with systemd sandboxing (false: as root, no
    # sandbox); writable_paths are the directories the sandboxed app may write besides /var/lib/lcai-app
    sandbox: bool = True
    writable_paths: tuple[str, ...] = ()


@define(frozen=True)
class Volume:
    """A Block Storage volume of the machine: kept through redeploys and destroy, formatted once (when it holds
    no filesystem), mounted at ``mount`` before the app starts."""

    name: str
    mount: str
    size_gb: int = 20


@define(frozen=True)
class LinodeDeploy:
    image: str = "linode/ubuntu24.04"
    region_default: str = "us-ord"
    type_default: str = "g6-standard-2"
    tags: tuple[str, ...] = ()
    container: Container = Container()
    # instances behind one NodeBalancer (docs/scaling.md); 1: a single instance, no NodeBalancer
    replicas: int = 1
    volumes: tuple[Volume, ...] = ()
    # USD per hour a deployment of this template may cost at most (`lcai deploy` refuses more); None: no ceiling
    max_hourly: Optional[float] = None


@define(frozen=True)
class Deploy:
    target: str = "linode"
    linode: LinodeDeploy = LinodeDeploy()


@define(frozen=True)
class SetupFile:
    path: str
    content: str = ""
    permissions: str = "0644"
    owner: str = "root:root"


@define(frozen=True)
class Setup:
    script: Optional[str] = None
    files: tuple[SetupFile, ...] = ()
    timeout_seconds: int = 1800


@define(frozen=True)
class EnvVar:
    name: str
    description: str = ""
    default: Optional[str] = None
    secret: bool = False


@define(frozen=True)
class EnvSpec:
    required: tuple[EnvVar, ...] = ()
    optional: tuple[EnvVar, ...] = ()


@define(frozen=True)
class Example:
    description: str
    command: str


@define(frozen=True)
class Guidance:
    summary: str = ""
    examples: tuple[Example, ...] = ()


@define(frozen=True)
class Template:
    name: str
    display_name: Optional[str] = None
    version: str = "0.1.0"
    description: str = ""
    capabilities: Capabilities = Capabilities()
    deploy: Deploy = Deploy()
    setup: Setup = Setup()
    env: EnvSpec = EnvSpec()
    guidance: Guidance = Guidance()

    @property
    def container(self) -> Container:
        return self.deploy.linode.container

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.capabilities.features]


def _structure_feature(value: Any, _t: Any) -> Feature:
    if isinstance(value, str):
        return Feature(name=value)
    if isinstance(value, dict):
        return _feature_from_dict(value)
    raise convert.StrictTypeError(
        f"expected a capability name or {{name: …, config: …}}, got {convert.describe(value)}")


def _feature_from_dict(value: dict) -> Feature:
    extra = sorted(set(value) - {"name", "config"})
    if extra:
        raise convert.StrictTypeError(f"unknown key '{extra[0]}' in a capability entry; expected name and config")
    if "name" not in value:
        raise convert.StrictTypeError("a capability entry needs 'name'")
    name = convert._strict_str(value["name"], str)
    config = value.get("config")
    if config is not None and not isinstance(config, dict):
        raise convert.StrictTypeError(f"config: expected a mapping, got {convert.describe(config)}")
    return Feature(name=name, config=config)


convert.converter.register_structure_hook(Feature, _structure_feature)


# ---------------------------------------------------------------- loading


def template_file_in(path: str | os.PathLike) -> str:
    """A template file, or a folder holding ``template.yml`` / ``deploy.yml``."""
    p = os.fspath(path)
    if os.path.isdir(p):
        for name in ("template.yml", "template.yaml", "deploy.yml", "deploy.yaml"):
            cand = os.path.join(p, name)
            if os.path.isfile(cand):
                return cand
        from .errors import InputError

        raise InputError(f"{p}: no template.yml or deploy.yml in this folder")
    return p


def load_template(path: str | os.PathLike, catalog: "Catalog | None" = None) -> Template:
    return parse_template(load_file(template_file_in(path)), catalog)


def load_template_text(text: str, file: str = "<input>", catalog: "Catalog | None" = None) -> Template:
    return parse_template(load_text(text, file), catalog)


def parse_template(doc: Document, catalog: "Catalog | None" = None) -> Template:
    tpl, problems = validate(doc, catalog)
    if problems or tpl is None:
        raise ValidationError(problems, hint=_hint_for(problems))
    return tpl


def validate(doc: Document, catalog: "Catalog | None" = None, *,
             beyond_schema: bool = True) -> tuple[Template | None, list[Problem]]:
    """The template in ``doc`` and every problem of it: types and unknown keys, the constraints of
    ``lcai_core.constraints``, then the installed capabilities (``catalog``). ``beyond_schema=False`` leaves out
    exactly the checks listed in ``constraints.BEYOND_SCHEMA`` (the capabilities' own ``check`` among them): what
    is left accepts the same documents as ``lcai templates schema`` (tests/core/test_schema_agreement.py)."""
    data = doc.data
    if not isinstance(data, dict):
        return None, [doc.problem((), f"the top level must be a mapping of keys, got {convert.describe(data)}")]
    tpl, problems = convert.structure(data, Template, doc)
    if tpl is not None:
        problems.extend(check(tpl, doc, beyond_schema=beyond_schema))
        if catalog is not None:
            problems.extend((catalog if beyond_schema else _without_checks(catalog)).check_template(tpl, doc))
            if beyond_schema:
                problems.extend(port_problems(tpl, catalog._resolve(tpl, doc)[0], doc))
    else:  # a type error elsewhere does not hide a value out of range: the constraints read the raw data
        typed = {p.path for p in problems}
        more: list[Problem] = []
        _constraints(Template, data, (), doc, more, cross=False)
        problems.extend(p for p in more if p.path not in typed)
    return tpl, problems


SSH_PORT = 22


def port_problems(t: Template, resolved: list, doc: Document) -> list[Problem]:
    """ports-distinct (``constraints.BEYOND_SCHEMA``): the ports the app takes on the instance (external_port;
    internal_port too unless the runtime publishes it as external_port), SSH's 22 and each capability's
    ``ports()`` are all different."""
    out: list[Problem] = []
    c = t.container
    cb = ("deploy", "linode", "container")
    runtime = next((r for r in resolved if r.capability.kind == "runtime"), None)
    publishes = runtime is None or getattr(runtime.capability, "publishes_ports", False)
    taken: dict[int, str] = {SSH_PORT: "SSH's (sshd listens on it on every instance)"}
    for key in ("external_port", "internal_port"):
        port = getattr(c, key)
        if port is None or (key == "internal_port" and publishes and c.external_port is not None):
            continue
        if port == SSH_PORT:
            out.append(doc.problem(cb + (key,), f"port {port} is {taken[port]}; pick another port for the app"))
        taken.setdefault(port, "the app's port")
    for r in resolved:
        for field_name, port in (r.capability.ports(r.config) if r.config is not None else {}).items():
            if port in taken:
                out.append(doc.problem(r.path, f"config.{field_name} {port} clashes with {taken[port]}"))
            else:
                taken[port] = f"capability '{r.name}' (its config.{field_name})"
    return out


def undeclared_references(t: Template, doc: Document, catalog: "Catalog") -> list[Problem]:
    """Every ``${NAME}`` in container.env and container.command is declared (env.required/env.optional),
    provided by a capability of the template (``Capability.provides_env``) or, in the command, set by
    container.env: what `lcai templates validate` checks of a template on its own. (plan and deploy also take
    a name the deployment's .env sets; without one they refuse the reference.)"""
    out: list[Problem] = []
    declared = {v.name for v in (*t.env.required, *t.env.optional)}
    resolved, _ = catalog._resolve(t, doc)
    provided = {n for r in resolved for n in getattr(r.capability, "provides_env", ())}
    cb = ("deploy", "linode", "container")
    fields: list[tuple[tuple, str, set[str]]] = [(cb + ("env", k), v, declared | provided)
                                                 for k, v in t.container.env.items()]
    if t.container.command:
        fields.append((cb + ("command",), t.container.command, declared | provided | set(t.container.env)))
    for path, text, known in fields:
        for name in references(text):
            if name not in known:
                from .convert import did_you_mean

                out.append(doc.problem(path, f"references ${{{name}}}, which the template does not declare: add it "
                                             f"under env.required or env.optional{did_you_mean(name, sorted(known))}"))
    return out


def _without_checks(catalog: "Catalog") -> "Catalog":
    """``catalog`` with every capability's own ``check`` switched off (BEYOND_SCHEMA "capability-checks")."""
    out = type(catalog)()
    for reg in catalog.by_name.values():
        cap = copy.copy(reg.capability)
        setattr(cap, "check", lambda config, template: [])  # noqa: B010 -- shadows the method on this copy only
        setattr(cap, "keeps_data", False)  # noqa: B010 -- its refusal of replicas is a capability check too
        out.add(cap, reg.plugin)
    return out


def _hint_for(problems: list[Problem]) -> str | None:
    if any(isinstance(p, MissingPlugin) for p in problems):
        return "install the plugin named above, then check with: lcai plugins"
    return "run `lcai templates schema` for the full field reference"


# ---------------------------------------------------------------- semantic checks


@functools.lru_cache(maxsize=None)
def _nested(cls: type) -> dict[str, Optional[type]]:
    """Per field of ``cls``: the attrs class its value (or each item of it) is, if any."""
    out: dict[str, Optional[type]] = {}
    for name, tp in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
        if typing.get_origin(tp) in (tuple, list, typing.Union) and len(args) == 1:
            tp = args[0]
        out[name] = tp if isinstance(tp, type) and attrs.has(tp) else None
    return out


def _apply(rules: tuple[Rule, ...], value: Any, path: tuple, doc: Document, out: list[Problem]) -> None:
    for rule in rules:
        if not holds(rule.schema, value):
            out.append(doc.problem(path, rule.explain(value)))
            return


def _constraints(cls: type, raw: dict, path: tuple, doc: Document, out: list[Problem], cross: bool = True) -> None:
    """Apply ``constraints.VALUES`` and ``constraints.CROSS`` to the data of an object of ``cls`` (structured:
    the types are right; or not, with ``cross=False``: the values only, rules between fields would be misled
    by a value of the wrong type), as JSON Schema would: to the keys that are there."""
    nested = _nested(cls)
    for f in attrs.fields(cls):
        if raw.get(f.name) is None:
            continue
        value, p, key = raw[f.name], path + (f.name,), f"{cls.__name__}.{f.name}"
        _apply(VALUES.get(key, ()), value, p, doc, out)
        inner = nested[f.name]
        if isinstance(value, list):
            for i, item in enumerate(value):
                _apply(VALUES.get(key + "[]", ()), item, p + (i,), doc, out)
                if inner is not None and isinstance(item, dict):
                    _constraints(inner, item, p + (i,), doc, out, cross)
        elif isinstance(value, dict) and inner is not None:
            _constraints(inner, value, p, doc, out, cross)
        elif isinstance(value, dict):
            for k, item in value.items():
                _apply(VALUES.get(key + ":key", ()), k, p + (k,), doc, out)
                _apply(VALUES.get(key + ":value", ()), item, p + (k,), doc, out)
    for rule in CROSS if cross else ():
        if rule.at != cls.__name__:
            continue
        items = raw.get(rule.each) if rule.each is not None else None
        objects = [(raw, path)] if rule.each is None else [
            (item, path + (rule.each, i)) for i, item in enumerate(items if isinstance(items, list) else ())]
        for obj, base in objects:
            if holds(rule.when, obj) and not holds(rule.then, obj):
                out.append(doc.problem(base + rule.report, rule.message))


def check(t: Template, doc: Document, *, beyond_schema: bool = True) -> list[Problem]:
    out: list[Problem] = []
    P = doc.problem
    _constraints(Template, doc.data, (), doc, out)
    # the schema says this with the installed capabilities' names (schema.template_schema)
    seen: dict[str, int] = {}
    for i, f in enumerate(t.capabilities.features):
        if f.name in seen:
            out.append(P(("capabilities", "features", i),
                         f"capability '{f.name}' is listed twice (also at index {seen[f.name]})"))
        seen.setdefault(f.name, i)
    if beyond_schema:
        out.extend(beyond_schema_problems(t, doc))
    return out


def beyond_schema_problems(t: Template, doc: Document) -> list[Problem]:
    """The checks of ``constraints.BEYOND_SCHEMA`` made here, by id (capability-checks is the catalog's,
    integral-floats the converter's)."""
    out: list[Problem] = []
    P = doc.problem
    c = t.container
    cb = ("deploy", "linode", "container")
    h = c.health
    # health-port-published
    if h is not None and h.type != "exec" and h.port is not None and c.internal_port is not None and h.port not in (
        c.internal_port, c.external_port
    ):
        out.append(P(cb + ("health", "port"), f"{h.port} is not published: use internal_port ({c.internal_port})"))
    # secret-in-command
    if c.command is not None:
        secret = {v.name for v in (*t.env.required, *t.env.optional) if v.secret}
        for name in references(c.command):
            if name in secret:
                out.append(P(cb + ("command",), f"uses the secret variable ${{{name}}}: a command line is visible "
                             "in ps, systemctl status, docker inspect and the 0644 unit file; pass it in "
                             f"container.env instead (e.g. env: {{API_KEY: \"${{{name}}}\"}}) and let the app read it "
                             "from its environment"))
    # setup-paths-unique
    paths = [f.path for f in t.setup.files]
    for i, p in enumerate(paths):
        if p in paths[:i]:
            out.append(P(("setup", "files", i, "path"), f"{p} is written twice"))
    # volumes-unique
    vb = ("deploy", "linode", "volumes")
    vols = t.deploy.linode.volumes
    for i, v in enumerate(vols):
        if v.name in [w.name for w in vols[:i]]:
            out.append(P(vb + (i, "name"), f"volume {v.name!r} is declared twice"))
        for w in vols[:i]:
            if v.mount == w.mount or v.mount.startswith(w.mount + "/") or w.mount.startswith(v.mount + "/"):
                out.append(P(vb + (i, "mount"), f"{v.mount} overlaps volume {w.name!r} mounted at {w.mount}"))
    # env-names-unique
    names: set[str] = set()
    for kind in ("required", "optional"):
        for i, var in enumerate(getattr(t.env, kind)):
            if var.name in names:
                out.append(P(("env", kind, i, "name"), f"{var.name} is declared twice"))
            names.add(var.name)
    return out


__all__ = ["ENV_NAME_RE", "MAX_REPLICAS", "Template", "load_template", "load_template_text", "parse_template",
           "references", "validate"]
