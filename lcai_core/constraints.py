"""Template constraints, declared once as data.

The loader (``template.check``) applies them with ``holds`` and the schema generator (``schema.template_schema``)
writes the very same keywords into the JSON Schema, so ``lcai templates validate`` and ``lcai templates schema``
accept the same documents. Three tables:

- ``VALUES``: rules on one field's value, as JSON Schema keywords plus the message the loader prints. Keys are
  ``Class.field`` (the value), ``Class.field[]`` (each item of a list), ``Class.field:key`` (each key of a
  mapping) and ``Class.field:value`` (each value of a mapping). Rules of one key are tried in order; the loader
  reports the first that fails.
- ``CROSS``: rules between fields, as a JSON Schema ``if``/``then`` on one object (a ``$defs`` class, or
  ``Template`` for the document root).
- ``BEYOND_SCHEMA``: what the loader checks and JSON Schema cannot say. docs/templates.md lists them too.

Patterns end in ``$(?!\\n)``: Python's ``$`` also matches before a final newline, ECMAScript's does not; with
the lookahead both mean "end of the string" (editors validate with ECMAScript; tests/core/test_schema_agreement.py
checks that every pattern matches the same strings in both).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any, Callable, Union

from attrs import define

Message = Union[str, Callable[[Any], str]]


def line(body: str) -> str:
    """A pattern matching exactly ``body``, on one line, in Python's ``re`` and in ECMAScript alike."""
    return f"^(?:{body})$(?!\\n)"


@define(frozen=True)
class Rule:
    """One constraint on a value: JSON Schema keywords (the subset ``holds`` knows) and the loader's message, a
    ``str.format`` string (with ``value``) or a function of the value."""

    schema: dict[str, Any]
    message: Message

    def explain(self, value: Any) -> str:
        if callable(self.message):
            return self.message(value)
        return self.message.format(value=value, **self.schema)


@define(frozen=True)
class Cross:
    """A rule between fields: an object of class ``at`` that matches ``when`` must match ``then``; the loader
    reports ``message`` at ``report`` (a path relative to the object). With ``each``, the rule applies to every
    item of that list field of the object instead."""

    at: str
    when: dict[str, Any]
    then: dict[str, Any]
    report: tuple[str, ...]
    message: str
    each: str | None = None


@define(frozen=True)
class Beyond:
    """A check the loader makes that the JSON Schema cannot express, and why."""

    id: str
    what: str
    why: str


# ------------------------------------------------------------------------------------------------ building blocks

MAX_REPLICAS = 25  # deploy.linode.replicas (and `lcai deploy --replicas`, `lcai scale`): 1..MAX_REPLICAS
NAME = line(r"[a-z][a-z0-9-]{1,61}[a-z0-9]")
ENV_NAME = line(r"[A-Za-z_][A-Za-z0-9_]*")
APT_NAME = line(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?")
IMAGE = line(r"(linode|private)/[A-Za-z0-9._-]+")
DOCKER_REF = line(
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?")
OWNER = line(r"[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?")
PERM = line(r"0?[0-7]{3,4}")
VERSION = line(r"[0-9]+\.[0-9]+(\.[0-9]+)?([.+-][0-9A-Za-z.-]+)?")
UNSAFE_PREFIXES = ("/proc", "/sys", "/dev", "/run/lcai", "/etc/lcai", "/var/lib/lcai", "/usr/local/lib/lcai",
                   "/var/lib/cloud", "/boot")
# what shlex.split accepts: quotes closed, no backslash at the very end (tests/core/test_schema_agreement.py
# compares the two on generated strings)
SHLEX = line(r"""(?:[^'"\\]|\\[\s\S]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")*""")


def safe_path(forbidden: str = "") -> str:
    """An absolute, normalised path (no ``.``/``..`` segment, no ``//``, no trailing ``/``, not ``/``), without
    newline, CR or NUL (nor the characters in ``forbidden``), not under a reserved prefix; unanchored."""
    seg = rf"[^/\n\r\u0000{forbidden}]"
    end = rf"(?:/|$|[{forbidden}])" if forbidden else "(?:/|$)"
    reserved = "|".join(re.escape(p) for p in UNSAFE_PREFIXES)
    return rf"(?!(?:{reserved}){end})(?:/(?!\.\.?{end}){seg}+)+"


SAFE_PATH = line(safe_path())
# setup.files targets that decide who gets in or runs as root, and lcai's own units
# (every /etc/sudoers* name; an lcai-* or lcai.* name anywhere systemd reads units and drop-ins, /run's
# included, which outranks /etc; lcai-* in /etc/cron*)
PROTECTED_FILES = (r"(?:^|/)authorized_keys2?$(?!\n)|^/etc/ssh(?:/|$(?!\n))|^/etc/sudoers|"
                   r"^/etc/(?:passwd|shadow|group|gshadow)$(?!\n)|"
                   r"^/(?:etc|run|lib|usr/lib|usr/local/lib)/systemd/(?:[^/]+/)*lcai(?:[-.][^/]*)?(?:/|$(?!\n))|"
                   r"^/etc/cron[^/]*/lcai(?:[-.][^/]*)?$(?!\n)")
# a volume's mount point: not a directory the system or a package owns (nor one of their parents)
SYSTEM_DIRS = ("/bin", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/sbin", "/usr", "/tmp", "/run", "/root",
               "/var/log", "/var/tmp", "/var/cache", "/var/spool", "/var/lib/apt", "/var/lib/dpkg",
               "/var/lib/docker", "/var/lib/containerd", "/var/lib/systemd", "/snap")
SYSTEM_PARENTS = ("/var", "/var/lib", "/home", "/opt", "/srv", "/mnt", "/media")
SYSTEM_MOUNT = ("^(?:" + "|".join(re.escape(d) for d in SYSTEM_DIRS) + ")(?:/|$(?!\n))|^(?:"
                + "|".join(re.escape(d) for d in SYSTEM_PARENTS) + ")$(?!\n)")
VOLUME_NAME = line(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,15}")
MAX_VOLUMES = 8  # Linode: at most 8 volumes attached to an instance's config
VOLUME = line(f"{safe_path(':')}:{safe_path(':')}(?::(?:ro|rw))?")


def unsafe_path_reason(p: str) -> str | None:
    """Why ``p`` is not an acceptable absolute path on the instance (the message for ``SAFE_PATH``), or None."""
    if not p.startswith("/"):
        return "must be an absolute path"
    if any(c in p for c in "\n\r\x00") or any(part in ("..", ".") for part in p.split("/")):
        return "must not contain '..', '.', newlines or NUL"
    if posixpath.normpath(p) != p or p == "/" or p.startswith("//"):
        return f"must be a normalised file path (did you mean {posixpath.normpath(p).replace('//', '/')!r}?)"
    for pre in UNSAFE_PREFIXES:
        if p == pre or p.startswith(pre + "/"):
            return f"may not be under {pre} (reserved)"
    return None


def _path_message(p: str) -> str:
    return f"{p!r} {unsafe_path_reason(p) or 'is not an acceptable absolute path'}"


def _volume_message(vol: str) -> str:
    parts = vol.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        return f"expected HOST:CONTAINER[:ro|rw], got {vol!r}"
    for side in parts[:2]:
        if not re.search(SAFE_PATH, side):
            return _path_message(side)
    return f"expected HOST:CONTAINER[:ro|rw], got {vol!r}"


def _shlex_message(command: str) -> str:
    try:
        shlex.split(command)
    except ValueError as e:
        return f"cannot split into arguments: {e}"
    return "cannot split into arguments"


PORT = Rule({"minimum": 1, "maximum": 65535}, "port must be 1-65535, got {value}")


def between(lo: int, hi: int) -> Rule:
    return Rule({"minimum": lo, "maximum": hi}, "must be between {minimum} and {maximum}, got {value}")


def timeout() -> Rule:
    return Rule({"minimum": 1, "maximum": 86400}, "must be between 1 and 86400")


# ------------------------------------------------------------------------------------------------ the tables

VALUES: dict[str, tuple[Rule, ...]] = {
    "Template.name": (Rule({"pattern": NAME},
                           "must be 3-63 lowercase letters, digits and dashes, starting with a letter"),),
    "Template.version": (Rule({"pattern": VERSION}, "expected a version like 1.0.0, got {value!r}"),),
    "Capabilities.packages[]": (Rule({"pattern": APT_NAME}, "{value!r} is not a valid apt package name"),),
    "Deploy.target": (Rule({"pattern": line("[a-z][a-z0-9-]{0,31}")},
                           "expected a provider name like linode or local, got {value!r}"),),
    "LinodeDeploy.image": (Rule({"pattern": IMAGE},
                                "expected a Linode image id like linode/ubuntu24.04, got {value!r}"),),
    "LinodeDeploy.region_default": (Rule({"pattern": line("[a-z0-9][a-z0-9-]{1,63}")}, "not a Linode id: {value!r}"),),
    "LinodeDeploy.type_default": (Rule({"pattern": line("[a-z0-9][a-z0-9-]{1,63}")}, "not a Linode id: {value!r}"),),
    "LinodeDeploy.replicas": (Rule({"minimum": 1, "maximum": MAX_REPLICAS},
                                   "replicas must be 1-{maximum}, got {value}"),),
    "LinodeDeploy.tags[]": (
        Rule({"minLength": 3, "maxLength": 50, "not": {"pattern": "[\\n\\r\\t]"}},
             "tags must be 3-50 characters on one line (Linode's limit)"),
        Rule({"not": {"pattern": "^(?:lcai$(?!\\n)|lcai-id:|lcai-app:|lcai-env:)"}},
             "{value!r} is reserved for lcai's own deployment tags"),
    ),
    "LinodeDeploy.max_hourly": (Rule({"minimum": 0.001, "maximum": 1000},
                                     "must be a price per hour in USD, 0.001-1000, got {value}"),),
    "LinodeDeploy.volumes": (Rule({"maxItems": MAX_VOLUMES},
                                  f"at most {MAX_VOLUMES} volumes per instance (Linode's limit)"),),
    "Volume.name": (Rule({"pattern": VOLUME_NAME},
                         "must be 1-16 lowercase letters, digits and single dashes, starting with a letter, got "
                         "{value!r}"),),
    "Volume.size_gb": (Rule({"minimum": 10, "maximum": 10240},
                            "must be 10-10240 GB (Linode Block Storage), got {value}"),),
    "Volume.mount": (
        Rule({"pattern": SAFE_PATH}, _path_message),
        Rule({"pattern": line(r"[A-Za-z0-9/._-]+")},
             "{value!r}: a mount point of letters, digits, '/', '.', '_' and '-' only (systemd lists them "
             "space-separated)"),
        Rule({"not": {"pattern": SYSTEM_MOUNT}},
             "{value!r} is a system directory (or holds one): mount a volume at a directory of its own, e.g. "
             "/var/lib/lcai-data"),
    ),
    "Container.image": (Rule({"pattern": DOCKER_REF}, "not a valid container image reference: {value!r}"),),
    "Container.internal_port": (PORT,),
    "Container.external_port": (PORT,),
    "Container.volumes[]": (Rule({"pattern": VOLUME}, _volume_message),),
    "Container.env:key": (Rule({"pattern": ENV_NAME}, "not a valid environment variable name"),),
    "Container.env:value": (Rule({"not": {"pattern": "[\\n\\u0000]"}},
                             "values cannot contain newlines or NUL (docker --env-file format)"),),
    "Container.command": (
        Rule({"pattern": "\\S"}, "empty command; remove the key to use the image's default"),
        Rule({"pattern": SHLEX}, _shlex_message),
    ),
    "Container.post_start_timeout_seconds": (timeout(),),
    "Container.writable_paths[]": (Rule({"pattern": SAFE_PATH}, _path_message),),
    "Health.port": (PORT,),
    "Health.success_codes[]": (Rule({"minimum": 100, "maximum": 599}, "not an HTTP status code: {value}"),),
    "Health.initial_delay_seconds": (between(0, 86400),),
    "Health.interval_seconds": (between(1, 3600),),
    "Health.timeout_seconds": (between(1, 3600),),
    "Health.max_retries": (between(1, 100000),),
    "Health.max_restarts": (between(1, 1000),),
    "SetupFile.path": (
        Rule({"pattern": SAFE_PATH}, _path_message),
        Rule({"not": {"pattern": PROTECTED_FILES}},
             "{value!r} is a file that controls who may log in or run as root (SSH keys and config, sudoers, "
             "accounts) or one of lcai's units or files: setup.files does not write it"),
    ),
    "SetupFile.permissions": (
        Rule({"pattern": PERM}, "expected an octal string like '0644', got {value!r}"),
        Rule({"not": {"pattern": "^0?[1-7][0-7]{3}$(?!\\n)"}},
             "{value!r} sets setuid, setgid or sticky bits: use a plain mode like '0755'"),
        Rule({"not": {"pattern": "[2367]$(?!\\n)"}},
             "{value!r} lets every user write the file: use a mode without the others' write bit, like '0644'"),
    ),
    "SetupFile.owner": (Rule({"pattern": OWNER}, "expected user or user:group, got {value!r}"),),
    "Setup.timeout_seconds": (timeout(),),
    "EnvVar.name": (Rule({"pattern": ENV_NAME}, "{value!r} is not a valid environment variable name"),),
}


def at(path: tuple[str, ...], leaf: dict[str, Any], required: bool = False) -> dict[str, Any]:
    """A schema applying ``leaf`` to the value at ``path`` (absent: no constraint, unless ``required``)."""
    out = leaf
    for key in reversed(path):
        out = {"properties": {key: out}, **({"required": [key]} if required else {})}
    return out


def present(key: str, type_: str) -> dict[str, Any]:
    """``key`` is set to a value of ``type_`` (absent and null count as unset)."""
    return {"required": [key], "properties": {key: {"type": type_}}}


NATIVE = at(("capabilities", "runtime"), {"const": "native"}, required=True)

CROSS: tuple[Cross, ...] = (
    Cross("Health", {"properties": {"type": {"const": "http"}}}, {"properties": {"path": {"pattern": "^/"}}},
          ("path",), "must start with '/'"),
    Cross("Health", {"required": ["type"], "properties": {"type": {"const": "exec"}}},
          {"required": ["command"], "properties": {"command": {"type": "string", "pattern": "\\S"}}},
          ("command",), "exec health checks need a command"),
    Cross("Container", present("external_port", "integer"), present("internal_port", "integer"),
          ("external_port",), "set internal_port too: the port the container listens on"),
    Cross("Container",
          {"required": ["health"], "properties": {"health": {"type": "object",
                                                             "properties": {"type": {"not": {"const": "exec"}}}}}},
          {"anyOf": [present("internal_port", "integer"), {"properties": {"health": present("port", "integer")}}]},
          ("health", "port"), "state the port to check, or set container.internal_port"),
    Cross("LinodeDeploy",
          {"required": ["replicas"], "properties": {"replicas": {"minimum": 2, "maximum": MAX_REPLICAS}}},
          {"required": ["container"], "properties": {"container": present("external_port", "integer")}},
          ("replicas",), "replicas > 1 need container.external_port (the NodeBalancer's port)"),
    Cross("Template", {"not": NATIVE}, at(("deploy", "linode", "container", "sandbox"), {"const": True}),
          ("deploy", "linode", "container", "sandbox"),
          "applies to the native runtime only (containers are isolated by Docker)"),
    Cross("Template", {"not": NATIVE}, at(("deploy", "linode", "container", "writable_paths"), {"maxItems": 0}),
          ("deploy", "linode", "container", "writable_paths"),
          "applies to the native runtime only; use volumes with docker"),
    Cross("EnvSpec", {}, {"properties": {"default": {"type": "null"}}}, ("default",),
          "a required variable has no default; move it to optional", each="required"),
)

BEYOND_SCHEMA: tuple[Beyond, ...] = (
    Beyond("capability-checks", "each capability's own check (e.g. the docker runtime needs container.image, the "
           "native runtime a command; a capability's config ranges such as redis config.port 1024-65535; no "
           "replicas with a capability that keeps its data on the machine, such as redis or postgresql)",
           "plugin code, run by validate; the schema has each capability's config fields and types only"),
    Beyond("health-port-published", "health.port is container.internal_port or external_port",
           "JSON Schema cannot compare two values of a document"),
    Beyond("secret-in-command", "container.command does not reference a `secret: true` variable",
           "it depends on the names declared in env.required/env.optional"),
    Beyond("setup-paths-unique", "no two setup.files have the same path",
           "JSON Schema's uniqueItems compares whole items, not one field of them"),
    Beyond("volumes-unique", "no two volumes have the same name, or mounts one inside the other",
           "uniqueness of one field, and a prefix relation between two values"),
    Beyond("env-names-unique", "no variable is declared twice across env.required and env.optional",
           "the same: uniqueness of one field across two lists"),
    Beyond("ports-distinct", "the app's ports on the instance, SSH's 22 and each capability's ports (redis, "
           "postgresql, buildwatch config.port) are all different",
           "it compares values across the document and the capabilities' configs"),
    Beyond("integral-floats", "integers are written without a fraction (80, not 80.0)",
           "YAML 80.0 is a float and lcai never coerces; JSON Schema counts 80.0 as an integer"),
)


# ------------------------------------------------------------------------------------------------ the interpreter

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, (list, tuple)),
    "null": lambda v: v is None,
}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def holds(schema: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` matches ``schema``, for the keywords the tables above use (JSON Schema 2020-12
    semantics: ``pattern`` searches, ``properties``/``items`` constrain only what is there)."""
    for key, arg in schema.items():
        if key == "type":
            if not any(_TYPES[t](value) for t in ([arg] if isinstance(arg, str) else arg)):
                return False
        elif key == "const":
            if not _same(value, arg):
                return False
        elif key == "enum":
            if not any(_same(value, a) for a in arg):
                return False
        elif key == "pattern":
            if isinstance(value, str) and not re.search(arg, value):
                return False
        elif key in ("minimum", "maximum"):
            if _TYPES["number"](value) and (value < arg if key == "minimum" else value > arg):
                return False
        elif key in ("minLength", "maxLength"):
            if isinstance(value, str) and (len(value) < arg if key == "minLength" else len(value) > arg):
                return False
        elif key == "maxItems":
            if isinstance(value, (list, tuple)) and len(value) > arg:
                return False
        elif key == "required":
            if isinstance(value, dict) and any(k not in value for k in arg):
                return False
        elif key == "properties":
            if isinstance(value, dict) and not all(holds(s, value[k]) for k, s in arg.items() if k in value):
                return False
        elif key == "not":
            if holds(arg, value):
                return False
        elif key == "anyOf":
            if not any(holds(s, value) for s in arg):
                return False
        elif key == "allOf":
            if not all(holds(s, value) for s in arg):
                return False
        else:
            raise ValueError(f"constraints: keyword {key!r} is not supported by holds()")
    return True


def value_schema(rules: tuple[Rule, ...]) -> dict[str, Any]:
    """The JSON Schema keywords of a key's rules (one rule: its keywords; several: ``allOf``)."""
    if len(rules) == 1:
        return dict(rules[0].schema)
    return {"allOf": [dict(r.schema) for r in rules]}


def cross_schema(rule: Cross) -> dict[str, Any]:
    return {"if": rule.when, "then": rule.then}


__all__ = ["VALUES", "CROSS", "BEYOND_SCHEMA", "Rule", "Cross", "Beyond", "holds", "line", "MAX_REPLICAS"]
