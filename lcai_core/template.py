"""The template format: attrs models, loading with located errors, and semantic checks.

``load_template(path, catalog)`` reports every problem of a file in one pass: YAML syntax, types (strict, no
coercion), unknown keys (did-you-mean), semantic checks, unknown or uninstalled capabilities and their
config errors — each as ``file:line: dotted.path: message``.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import TYPE_CHECKING, Any, Literal, Optional

from attrs import define, field

from . import convert
from .errors import Problem, ValidationError
from .yamlfile import Document, load_file, load_text

if TYPE_CHECKING:
    from .capabilities import Catalog

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REF_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME}; $$ is a literal $
APT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
IMAGE_RE = re.compile(r"^(linode|private)/[A-Za-z0-9._-]+$")
MAX_REPLICAS = 25  # deploy.linode.replicas (and `lcai deploy --replicas`, `lcai scale`): 1..MAX_REPLICAS
DOCKER_REF_RE = re.compile(
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
OWNER_RE = re.compile(r"^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$")
PERM_RE = re.compile(r"^0?[0-7]{3,4}$")
UNSAFE_PREFIXES = ("/proc", "/sys", "/dev", "/run/lcai", "/etc/lcai", "/var/lib/lcai", "/usr/local/lib/lcai",
                   "/var/lib/cloud", "/boot")


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
class LinodeDeploy:
    image: str = "linode/ubuntu24.04"
    region_default: str = "us-ord"
    type_default: str = "g6-standard-2"
    tags: tuple[str, ...] = ()
    container: Container = Container()
    # instances behind one NodeBalancer (docs/scaling.md); 1: a single instance, no NodeBalancer
    replicas: int = 1


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
    data = doc.data
    if not isinstance(data, dict):
        raise ValidationError(
            [doc.problem((), f"the top level must be a mapping of keys, got {convert.describe(data)}")])
    tpl, problems = convert.structure(data, Template, doc)
    if tpl is not None:
        problems.extend(check(tpl, doc))
        if catalog is not None:
            problems.extend(catalog.check_template(tpl, doc))
    if problems:
        raise ValidationError(problems, hint=_hint_for(problems))
    return tpl


def _hint_for(problems: list[Problem]) -> str | None:
    for p in problems:
        if "is not installed" in p.message:
            return "install the plugin named above, then check with: lcai plugins"
    return "run `lcai templates schema` for the full field reference"


# ---------------------------------------------------------------- semantic checks


def _port(value: Optional[int], path: tuple, doc: Document, out: list[Problem]) -> None:
    if value is not None and not 1 <= value <= 65535:
        out.append(doc.problem(path, f"port must be 1-65535, got {value}"))


def safe_abs_path(p: str) -> str | None:
    """Why ``p`` is not an acceptable absolute path on the instance, or None."""
    if not p.startswith("/"):
        return "must be an absolute path"
    if any(c in p for c in "\n\r\x00") or any(part in ("..", ".") for part in p.split("/")):
        return "must not contain '..', '.', newlines or NUL"
    if posixpath.normpath(p) != p or p == "/":
        return f"must be a normalised file path (did you mean {posixpath.normpath(p)!r}?)"
    for pre in UNSAFE_PREFIXES:
        if p == pre or p.startswith(pre + "/"):
            return f"may not be under {pre} (reserved)"
    return None


def check(t: Template, doc: Document) -> list[Problem]:
    out: list[Problem] = []
    P = doc.problem
    if not NAME_RE.match(t.name):
        out.append(P(("name",), "must be 3-63 lowercase letters, digits and dashes, starting with a letter"))
    if not re.match(r"^\d+\.\d+(\.\d+)?([.+-][0-9A-Za-z.-]+)?$", t.version):
        out.append(P(("version",), f"expected a version like 1.0.0, got {t.version!r}"))

    caps = t.capabilities
    seen: dict[str, int] = {}
    for i, f in enumerate(caps.features):
        if f.name in seen:
            out.append(P(("capabilities", "features", i),
                         f"capability '{f.name}' is listed twice (also at index {seen[f.name]})"))
        seen.setdefault(f.name, i)
    for i, pkg in enumerate(caps.packages):
        if not APT_NAME_RE.match(pkg):
            out.append(P(("capabilities", "packages", i), f"{pkg!r} is not a valid apt package name"))

    d = t.deploy
    if not re.match(r"^[a-z][a-z0-9-]{0,31}$", d.target):
        out.append(P(("deploy", "target"), f"expected a provider name like linode or local, got {d.target!r}"))
    lin = d.linode
    base = ("deploy", "linode")
    if not IMAGE_RE.match(lin.image):
        out.append(P(base + ("image",), f"expected a Linode image id like linode/ubuntu24.04, got {lin.image!r}"))
    for key in ("region_default", "type_default"):
        if not re.match(r"^[a-z0-9][a-z0-9-]{1,63}$", getattr(lin, key)):
            out.append(P(base + (key,), f"not a Linode id: {getattr(lin, key)!r}"))
    if not 1 <= lin.replicas <= MAX_REPLICAS:
        out.append(P(base + ("replicas",), f"replicas must be 1-{MAX_REPLICAS}, got {lin.replicas}"))
    elif lin.replicas > 1 and lin.container.external_port is None:
        out.append(P(base + ("replicas",), "replicas > 1 need container.external_port (the NodeBalancer's port)"))
    for i, tag in enumerate(lin.tags):
        if not 3 <= len(tag) <= 50 or any(c in tag for c in "\n\r\t"):
            out.append(P(base + ("tags", i), "tags must be 3-50 characters on one line (Linode's limit)"))
        elif tag == "lcai" or tag.startswith(("lcai-id:", "lcai-app:", "lcai-env:")):
            out.append(P(base + ("tags", i), f"{tag!r} is reserved for lcai's own deployment tags"))

    c = lin.container
    cb = base + ("container",)
    if c.image is not None and not DOCKER_REF_RE.match(c.image):
        out.append(P(cb + ("image",), f"not a valid container image reference: {c.image!r}"))
    _port(c.internal_port, cb + ("internal_port",), doc, out)
    _port(c.external_port, cb + ("external_port",), doc, out)
    if c.external_port is not None and c.internal_port is None:
        out.append(P(cb + ("external_port",), "set internal_port too: the port the container listens on"))
    for i, vol in enumerate(c.volumes):
        parts = vol.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            out.append(P(cb + ("volumes", i), f"expected HOST:CONTAINER[:ro|rw], got {vol!r}"))
            continue
        for side in parts[:2]:
            why = safe_abs_path(side) if side.startswith("/") else "must be an absolute path"
            if why:
                out.append(P(cb + ("volumes", i), f"{side!r} {why}"))
                break
    for k, v in c.env.items():
        if not ENV_NAME_RE.match(k):
            out.append(P(cb + ("env", k), "not a valid environment variable name"))
        if "\n" in v or "\x00" in v:
            out.append(P(cb + ("env", k), "values cannot contain newlines or NUL (docker --env-file format)"))
    if c.command is not None and not c.command.strip():
        out.append(P(cb + ("command",), "empty command; remove the key to use the image's default"))
    if c.command is not None:
        try:
            import shlex

            shlex.split(c.command)
        except ValueError as e:
            out.append(P(cb + ("command",), f"cannot split into arguments: {e}"))
        secret = {v.name for v in (*t.env.required, *t.env.optional) if v.secret}
        for name in references(c.command):
            if name in secret:
                out.append(P(cb + ("command",), f"uses the secret variable ${{{name}}}: a command line is visible "
                             "in ps, systemctl status, docker inspect and the 0644 unit file; pass it in "
                             f"container.env instead (e.g. env: {{API_KEY: \"${{{name}}}\"}}) and let the app read it "
                             "from its environment"))
    if not 0 < c.post_start_timeout_seconds <= 86400:
        out.append(P(cb + ("post_start_timeout_seconds",), "must be between 1 and 86400"))
    if t.capabilities.runtime != "native":
        if not c.sandbox:
            out.append(P(cb + ("sandbox",), "applies to the native runtime only (containers are isolated by Docker)"))
        if c.writable_paths:
            out.append(P(cb + ("writable_paths",), "applies to the native runtime only; use volumes with docker"))
    for i, wp in enumerate(c.writable_paths):
        why = safe_abs_path(wp)
        if why:
            out.append(P(cb + ("writable_paths", i), f"{wp!r} {why}"))

    h = c.health
    if h is not None:
        hb = cb + ("health",)
        if h.type == "http" and not h.path.startswith("/"):
            out.append(P(hb + ("path",), "must start with '/'"))
        if h.type == "exec" and not (h.command and h.command.strip()):
            out.append(P(hb + ("command",), "exec health checks need a command"))
        if h.type != "exec" and h.port is None and c.internal_port is None:
            out.append(P(hb + ("port",), "state the port to check, or set container.internal_port"))
        _port(h.port, hb + ("port",), doc, out)
        if h.type != "exec" and h.port is not None and c.internal_port is not None and h.port not in (
            c.internal_port, c.external_port
        ):
            out.append(P(hb + ("port",), f"{h.port} is not published: use internal_port ({c.internal_port})"))
        for i, code in enumerate(h.success_codes):
            if not 100 <= code <= 599:
                out.append(P(hb + ("success_codes", i), f"not an HTTP status code: {code}"))
        for key, lo, hi in (("initial_delay_seconds", 0, 86400), ("interval_seconds", 1, 3600),
                            ("timeout_seconds", 1, 3600), ("max_retries", 1, 100000), ("max_restarts", 1, 1000)):
            v = getattr(h, key)
            if not lo <= v <= hi:
                out.append(P(hb + (key,), f"must be between {lo} and {hi}, got {v}"))

    for i, fl in enumerate(t.setup.files):
        fb = ("setup", "files", i)
        why = safe_abs_path(fl.path)
        if why:
            out.append(P(fb + ("path",), f"{fl.path!r} {why}"))
        if not PERM_RE.match(fl.permissions):
            out.append(P(fb + ("permissions",), f"expected an octal string like '0644', got {fl.permissions!r}"))
        if not OWNER_RE.match(fl.owner):
            out.append(P(fb + ("owner",), f"expected user or user:group, got {fl.owner!r}"))
    if not 0 < t.setup.timeout_seconds <= 86400:
        out.append(P(("setup", "timeout_seconds"), "must be between 1 and 86400"))
    paths = [f.path for f in t.setup.files]
    for i, p in enumerate(paths):
        if p in paths[:i]:
            out.append(P(("setup", "files", i, "path"), f"{p} is written twice"))

    names: dict[str, tuple] = {}
    for kind in ("required", "optional"):
        for i, var in enumerate(getattr(t.env, kind)):
            vb = ("env", kind, i, "name")
            if not ENV_NAME_RE.match(var.name):
                out.append(P(vb, f"{var.name!r} is not a valid environment variable name"))
            if var.name in names:
                out.append(P(vb, f"{var.name} is declared twice"))
            names.setdefault(var.name, vb)
            if kind == "required" and var.default is not None:
                out.append(P(("env", kind, i, "default"), "a required variable has no default; move it to optional"))
    return out
