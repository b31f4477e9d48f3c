""".env loading (python-dotenv's parser, no interpolation: values reach the container literally) and the
app's environment: required/optional checks, defaults, the values capabilities provide, ``${NAME}`` references
in container.env and container.command (an unknown one is an error located in the template). The renderer
calls it after the capabilities' fragments (``lcai_core.cloudinit.document``); it never imports the renderer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import InputError, Problem, ValidationError
from .template import ENV_NAME_RE, Template


ENV_MAX_BYTES = 1 << 20  # a .env larger than 1 MiB is refused (a symlink to /dev/zero must not exhaust memory)


def load_env_file(path: str | os.PathLike) -> dict[str, str]:
    """NAME → value, literally (``${HOME}``, ``$()``, quotes inside values are kept as written)."""
    import stat

    from dotenv.parser import parse_stream

    name = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO in its place opens at once (then refused) instead of waiting for a writer
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{name}: not a regular file (a device, FIFO or socket): lcai reads .env from a file",
                             hint="write the variables into a plain .env file")
        chunks, size = [], 0
        while size <= ENV_MAX_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > ENV_MAX_BYTES:
        raise InputError(f"{name}: more than the {ENV_MAX_BYTES} bytes a .env may have",
                         hint="keep large values out of .env (the whole user data is at most 16 KiB gzipped)")
    try:
        text = b"".join(chunks).decode("utf-8")
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
                    provided: dict[str, str] | None = None,
                    template_file: str | os.PathLike | None = None) -> dict[str, str]:
    """The container's environment. Precedence (low → high): values the capabilities provide (``provided``:
    ``REDIS_URL``, ``DATABASE_URL``, …), optional defaults, the template's container.env (its ``${NAME}``
    resolved from all of these and .env), the .env file. A reference to a name none of them sets is an error
    located in ``template_file`` (file:line: field)."""
    import difflib

    from .envfile import interpolate

    problems: list[Problem] = []
    lines = getattr(dotenv, "lines", {})
    known = {v.name for v in (*tpl.env.required, *tpl.env.optional)} | set(tpl.container.env)
    unknown = sorted(k for k in dotenv if k not in known and k not in (provided or {}))
    for var in tpl.env.required:
        if var.name not in dotenv:
            problems.append(Problem(str(env_path), None, var.name,
                                    f"required variable is not set ({var.description or 'see .env.example'})"))
            # the name .env has instead (a likely typo of it) is the one to rename: point at that line
            for typo in difflib.get_close_matches(var.name, unknown, n=1, cutoff=0.6):
                problems.append(Problem(str(env_path), lines.get(typo), typo,
                                        f"is not a variable of the template; did you mean '{var.name}'?"))
        elif dotenv[var.name] == "":
            problems.append(Problem(str(env_path), lines.get(var.name), var.name, "required variable is empty"))
    if problems:
        example = Path(env_path).parent / ".env.example"
        raise ValidationError(problems, hint=f"set them in {env_path} (NAME=value; {example} lists every variable)")

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
    _check_references(((CONTAINER + ("env", k), v) for k, v in tpl.container.env.items()), lookup, template_file)
    for k, v in tpl.container.env.items():
        env[k] = interpolate(v, lookup, f"deploy.linode.container.env.{k}")
    env.update(dotenv)
    return env


CONTAINER = ("deploy", "linode", "container")


def app_command(tpl: Template, env: dict[str, str], template_file: str | os.PathLike | None = None) -> tuple[str, ...]:
    """container.command → argv: split first (shell-like quoting), then ``${NAME}`` in each argument from the
    app's environment (``app_environment``: capability values, defaults, container.env, .env), so a value with
    spaces or quotes stays one argument and is never parsed."""
    import shlex

    from .envfile import interpolate

    command = tpl.container.command
    if not command:
        return ()
    where = "deploy.linode.container.command"
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise InputError(f"{where}: cannot split into arguments: {e}") from None
    _check_references(((CONTAINER + ("command",), command),), env, template_file)
    return tuple(interpolate(w, env, where) for w in words)


def _check_references(fields, values: dict[str, str], template_file: str | os.PathLike | None) -> None:
    """Every ``${NAME}`` in the template's (path, text) ``fields`` is set in ``values``; else one located
    problem per field (``file:line: deploy.linode.container.env.X: references ${NAME}, …``)."""
    from .template import references
    from .yamlfile import dotted

    problems = []
    for path, text in fields:
        missing = [n for n in references(text) if n not in values]
        if missing:
            problems.append((path, missing[0]))
    if not problems:
        return
    doc = None
    if template_file is not None:
        from .yamlfile import load_file

        try:
            doc = load_file(os.fspath(template_file))
        except (InputError, OSError):  # changed or gone since it was loaded: the field is still named
            doc = None
    hint = f"add {problems[0][1]}=… to .env, or declare it under env.optional with a default"
    out = [(path, f"references ${{{name}}}, which is not set in .env, has no default and no capability of the "
                  "template provides it") for path, name in problems]
    if doc is None:  # rendered from text (tests): no file to point into
        raise InputError("; ".join(f"{dotted(path)}: {msg}" for path, msg in out), hint=hint)
    raise ValidationError([doc.problem(path, msg) for path, msg in out], hint=hint)


def overridden(dotenv: dict[str, str], provided_by: dict[str, str], env_path: Path) -> list[str]:
    """One warning per .env variable that replaces a value a capability provides (the .env value wins: it is
    how a deployment points the app elsewhere). ``provided_by``: NAME → the capability that provides it."""
    lines = getattr(dotenv, "lines", {})
    out = []
    for k in dotenv:
        if k in provided_by:
            where = f"{env_path}:{lines[k]}" if k in lines else str(env_path)
            out.append(f"{where}: {k} replaces the value capability '{provided_by[k]}' provides; the app gets the "
                       f".env value (remove it from .env to use the capability's)")
    return out
