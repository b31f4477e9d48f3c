"""Environment formats and ``${NAME}`` substitution: the env file a runtime reads (docker's --env-file, systemd's
EnvironmentFile=) and the template's references to .env and capability-provided values. Imports nothing else
from lcai-core but its errors, so the capability API and the renderer can both use it."""

from __future__ import annotations

import re

from typing import Callable

from .errors import InputError


def _env_file(env: dict[str, str], line: Callable[[str, str], str]) -> str:
    for k, v in env.items():
        if "\n" in v or "\r" in v or "\x00" in v:
            raise InputError(f"{k}: the value contains a newline or NUL, which the env-file format cannot carry")
    return "".join(line(k, v) + "\n" for k, v in env.items())


def docker_env_file(env: dict[str, str]) -> str:
    """docker --env-file format: one NAME=value line, taken literally (no quotes, no expansion)."""
    return _env_file(env, lambda k, v: f"{k}={v}")


def systemd_env_file(env: dict[str, str]) -> str:
    """systemd EnvironmentFile= format: double-quoted values with \\ and \" escaped (no expansion)."""
    return _env_file(env, lambda k, v: f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')


def interpolate(value: str, values: dict[str, str], where: str) -> str:
    """Replace ``${NAME}`` from ``values``; ``$$`` is a literal ``$``. Unknown names are errors."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name not in values:
            raise InputError(f"{where}: references ${{{name}}}, which is not set in .env and has no default",
                             hint=f"add {name}=… to .env, or declare it under env.optional with a default")
        return values[name]

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)
