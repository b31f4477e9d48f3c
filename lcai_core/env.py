""".env loading (python-dotenv's parser, no interpolation: values reach the container literally) and the
app environment: required/optional checks, defaults, ``${NAME}`` references in container.env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import InputError, Problem, ValidationError
from .template import ENV_NAME_RE, Template


def load_env_file(path: str | os.PathLike) -> dict[str, str]:
    """NAME → value, literally (``${HOME}``, ``$()``, quotes inside values are kept as written)."""
    from dotenv.parser import parse_stream

    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: not valid UTF-8") from None
    import io

    values = EnvValues()
    problems: list[Problem] = []
    for b in parse_stream(io.StringIO(text)):
        line = b.original.line
        if b.error:
            problems.append(Problem(name, line, "", "cannot parse this line; expected NAME=value"))
            continue
        if b.key is None:
            continue
        if not ENV_NAME_RE.match(b.key):
            problems.append(Problem(name, line, b.key, "not a valid environment variable name"))
            continue
        if b.value is None:
            problems.append(Problem(name, line, b.key, "has no value; write NAME=value (or NAME= for empty)"))
            continue
        if "\n" in b.value or "\r" in b.value or "\x00" in b.value:
            problems.append(Problem(name, line, b.key,
                                    "the value contains a newline or NUL, which docker's --env-file cannot carry"))
            continue
        values[b.key] = b.value
        at = b.original.string.find(b.key)  # the binding's text may start with blank lines before the name
        values.lines[b.key] = line + (b.original.string.count("\n", 0, at) if at > 0 else 0)
    if problems:
        raise ValidationError(problems)
    return values


class EnvValues(dict[str, str]):
    """NAME → value, with the line each name was set on (``lines``) for located errors."""

    def __init__(self, *a: Any, **kw: str) -> None:
        super().__init__(*a, **kw)
        self.lines: dict[str, int] = {}


def example_text(tpl: Template) -> str:
    out = [f"# Environment for {tpl.name} — copy to .env and fill in. Values are taken literally.", ""]
    for var in tpl.env.required:
        out.append(f"# {var.description or var.name} (required)")
        out.append(f"{var.name}=")
    for var in tpl.env.optional:
        out.append(f"# {var.description or var.name} (optional{', default: ' + var.default if var.default else ''})")
        out.append(f"# {var.name}={var.default or ''}")
    return "\n".join(out) + "\n"


def app_environment(tpl: Template, dotenv: dict[str, str], env_path: Path,
                    provided: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment. Precedence (low → high): capability-provided values, optional
    defaults, the template's container.env (with ``${NAME}`` resolved), the .env file."""
    from .envfile import interpolate

    from .convert import did_you_mean

    problems: list[Problem] = []
    lines = getattr(dotenv, "lines", {})
    known = {v.name for v in (*tpl.env.required, *tpl.env.optional)} | set(tpl.container.env)
    unknown = sorted(k for k in dotenv if k not in known)
    for var in tpl.env.required:
        if var.name not in dotenv:
            problems.append(Problem(str(env_path), None, var.name,
                                    f"required variable is not set ({var.description or 'see .env.example'})"
                                    f"{did_you_mean(var.name, unknown)}"))
        elif dotenv[var.name] == "":
            problems.append(Problem(str(env_path), lines.get(var.name), var.name, "required variable is empty"))
    if problems:
        example = Path(env_path).parent / ".env.example"
        raise ValidationError(problems, hint=f"set them in {env_path} (NAME=value; {example} lists every variable)")
    import difflib

    for k in unknown:  # a likely typo only (close to a known name), not every extra key
        near = difflib.get_close_matches(k, sorted(known), n=1, cutoff=0.85)
        if near:
            from . import ui

            where = f"{env_path}:{lines[k]}" if k in lines else str(env_path)
            ui.warning(f"{where}: {k} is not a variable of the template; did you mean '{near[0]}'?")
    env: dict[str, str] = dict(provided or {})
    for var in tpl.env.optional:
        if var.default is not None:
            env[var.name] = var.default
    lookup = {**env, **dotenv}
    for k, v in tpl.container.env.items():
        env[k] = interpolate(v, lookup, f"deploy.linode.container.env.{k}")
    env.update(dotenv)
    return env
