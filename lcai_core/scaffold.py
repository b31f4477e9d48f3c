"""`lcai templates scaffold`: a new template folder that validates as-is, and (``--llm-assist``) instructions
for an assistant generated from the live plugin registry and the JSON Schema — never hand-kept text."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Optional

import attrs

from .errors import InputError

TEMPLATE = """\
# {name}: an lcai template. Check it with: lcai templates validate {folder}
# Field reference: lcai templates schema (JSON Schema), or docs/templates.md.
name: {name}
display_name: {display_name}
version: 0.1.0
description: {description}

capabilities:
  runtime: {runtime}                 # docker (a container) or native (a host process)
  features:{features}
  # packages: [ffmpeg]              # extra apt packages

deploy:
  target: linode
  linode:
    image: {image}    # must support cloud-init
    region_default: {region}           # must offer Metadata (and GPU Linodes for GPU plans)
    type_default: {type}
    container:
{container}
      health:
        type: http                  # http | tcp | exec
        path: {health_path}
        initial_delay_seconds: {initial_delay}   # failures before this do not count (model downloads take time)
        interval_seconds: 10
        max_retries: 30

env:
  required: []
  # required:
  #   - name: API_KEY
  #     description: Key clients must send
  #     secret: true
  optional: []

guidance:
  summary: {description}
  examples:
    - description: Health check
      command: curl http://{{host}}{health_path}
"""


def _slug(name: str) -> str:
    if not re.match(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$", name):
        raise InputError(f"template name {name!r}: "
                         "use 3-63 lowercase letters, digits and dashes, starting with a letter")
    return name


DEFAULT_IMAGE = "nginx:1.27"


def default_port(image: Optional[str], runtime: str = "docker") -> int:
    """The defaults must become healthy as written: nginx listens on 80; a native ``http.server`` or an image
    we know nothing about gets 8000 (a guess the author is told to check)."""
    return 80 if runtime == "docker" and (image or DEFAULT_IMAGE) == DEFAULT_IMAGE else 8000


def default_health_path(image: Optional[str], runtime: str = "docker") -> str:
    """``/`` for the defaults (nginx's welcome page, http.server's listing answer 200 there; neither serves
    ``/health``); ``/health`` for the author's own image."""
    return "/" if runtime == "native" or (image or DEFAULT_IMAGE) == DEFAULT_IMAGE else "/health"


def scaffold(name: str, directory: Path, *, image: str = DEFAULT_IMAGE, port: Optional[int] = None,
             external_port: int = 80, runtime: str = "docker", features: tuple[str, ...] = (), description: str = "",
             linode_image: str = "linode/ubuntu24.04", region: str = "us-ord", type_: str = "g6-standard-2",
             health_path: Optional[str] = None, initial_delay: int = 60, from_template: Optional[Path] = None,
             force: bool = False) -> list[Path]:
    """Write DIR/template.yml, README.md, .env.example; returns the files written. Without ``port`` and
    ``health_path`` the defaults for the image apply (:func:`default_port`, :func:`default_health_path`)."""
    _slug(name)
    port = port or default_port(image, runtime)
    health_path = health_path or default_health_path(image, runtime)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "template.yml"
    if target.exists() and not force:
        raise InputError(f"{target} already exists", hint="use --force to overwrite it, or another --directory")
    if from_template is not None:
        text = from_template.read_text(encoding="utf-8")
        text, n = re.subn(r"(?m)^name:.*$", f"name: {name}", text, count=1)
        if n != 1:
            raise InputError(f"{from_template}: no top-level 'name:' line to replace")
    else:
        feats = "".join(f"\n    - {f}" for f in features) or " []          # e.g. [gpu-nvidia, redis, buildwatch]"
        if runtime == "native":
            container = f"      command: /usr/bin/python3 -m http.server {port}\n      internal_port: {port}\n" \
                        f"      external_port: {port}"
        else:
            container = (f"      image: {image}\n"
                         f"      internal_port: {port}           # the port the container listens on\n"
                         f"      external_port: {external_port}           # the public port (opened in the firewall)\n"
                         "      # command: --flag value        # arguments after the image; ${NAME} comes from .env\n"
                         "      # volumes: [/var/lib/app:/data]\n"
                         "      env: {}\n")
            container = container.rstrip("\n")
        text = TEMPLATE.format(name=name, folder=directory, display_name=json.dumps(name.replace("-", " ").title()),
                               description=json.dumps(description or f"{name} on Linode"), runtime=runtime,
                               features=feats, image=linode_image, region=region, type=type_, container=container,
                               health_path=health_path, initial_delay=initial_delay)
    target.write_text(text, encoding="utf-8")
    from .env import example_text
    from .template import load_template

    tpl = load_template(target)
    (directory / ".env.example").write_text(example_text(tpl), encoding="utf-8")
    readme = directory / "README.md"
    if not readme.exists() or force:
        readme.write_text(f"# {tpl.display_name or tpl.name}\n\n{tpl.description}\n\n"
                          f"- Validate: `lcai templates validate {directory}`\n"
                          f"- Try it: `lcai templates install {directory}`, "
                          f"then `lcai init {tpl.name} --directory svc`\n"
                          f"- Plan: `lcai plan --directory <deployment dir>` shows the exact cloud-init\n",
                          encoding="utf-8")
    return [target, directory / ".env.example", readme]


# ---------------------------------------------------------------- LLM_INSTRUCTIONS.md


def _type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " | ".join(_type_name(a) for a in inner) + (" (optional)" if len(inner) < len(args) else "")
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}"
    names = {int: "integer", str: "string", bool: "true/false", float: "number"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _config_fields(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in attrs.fields(cls):
        default = "" if f.default is attrs.NOTHING else f" (default: {json.dumps(f.default, default=list)})"
        out.append(f"  - `{f.name}`: {_type_name(hints[f.name])}{default}")
    return out


def _schema_fields(schema: dict, node: dict, prefix: str, out: list[str], seen: set) -> None:
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        if name in seen:
            return
        node = schema["$defs"][name]
        seen = seen | {name}
    for key, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        target = sub
        for alt in sub.get("anyOf", []):
            if alt.get("type") != "null":
                target = alt
        kind = target.get("type") or ("object" if "$ref" in target else "")
        if "enum" in target:
            kind = " | ".join(map(str, target["enum"]))
        if kind == "array":
            items = target.get("items", {})
            kind = f"list of {items.get('type') or ('object' if '$ref' in items else 'string or {name, config}')}"
        req = " (required)" if key in (node.get("required") or []) else ""
        default = f" (default: {json.dumps(sub['default'])})" if "default" in sub else ""
        desc = f" — {sub['description']}" if sub.get("description") else ""
        out.append(f"- `{path}`: {kind}{req}{default}{desc}")
        if "$ref" in target:
            _schema_fields(schema, target, path, out, seen)
        elif target.get("type") == "array" and "$ref" in target.get("items", {}):
            _schema_fields(schema, target["items"], f"{path}[]", out, seen)


def llm_instructions(host, name: str, directory: Path) -> str:
    """Instructions for an assistant completing the template, from the live registry and schema."""
    from . import __version__
    from .schema import template_schema
    from .sources import discover

    cat = host.catalog
    lines = [
        f"# Completing the lcai template `{name}`",
        "",
        f"Generated by lcai {__version__} from the installed plugins and the template JSON Schema. Regenerate it",
        f"(`lcai templates scaffold {name} --directory {directory} --llm-assist --force`) after installing plugins.",
        "",
        "## Your task",
        f"Edit `{directory}/template.yml` so it deploys the user's service. Keep every key you do not need out.",
        "Then run the validation commands at the end and fix every error they report (each names file, line, field).",
        "",
        "## Rules the validator enforces",
        "- No type coercion: ports and counts are integers; booleans are true/false; quote strings that look like",
        "  numbers or booleans (`\"8000\"` is a string, `yes` is a boolean). "
        "File permissions are quoted octal strings.",
        "- Unknown keys are errors. Capability names must be installed (listed below).",
        "- Container env values may reference `${NAME}` from `.env` or `env.optional` defaults; secrets belong in",
        "  `env.required` (with `secret: true`), never in the template.",
        "",
        "## Installed capabilities",
    ]
    for n in cat.names():
        reg = cat.by_name[n]
        cap = reg.capability
        aliases = ", ".join(cap.aliases) if cap.aliases else ""
        lines.append(f"### `{n}` ({cap.kind}, from {reg.plugin})")
        lines.append(cap.summary or "")
        if cap.images:
            lines.append(f"Images: {', '.join(cap.images)}")
        if aliases:
            lines.append(f"Aliases: {aliases}")
        if cap.config_class is not None:
            lines.append(f"Config (`- name: {n}` with `config:`):")
            lines += _config_fields(cap.config_class)
        lines.append("")
    lines += ["## Field reference (from the JSON Schema)", ""]
    schema = template_schema(cat)
    _schema_fields(schema, schema, "", lines, set())
    lines += ["", "## Examples: the bundled templates", ""]
    for entry in discover(host.template_sources).values():
        if entry.kind != "bundled":
            continue
        lines += [f"### {entry.name}", "```yaml", Path(entry.path).read_text(encoding="utf-8").rstrip(), "```", ""]
    lines += ["## Validate", "```sh", f"lcai templates validate {directory}",
              f"lcai templates install {directory} && lcai init {name} --directory /tmp/{name}-try",
              f"lcai plan --directory /tmp/{name}-try --cloud-config /tmp/{name}-try/user-data.yaml", "```", ""]
    return "\n".join(lines)
