"""Scripts: the template's own (setup.script, post_start_script), made to stop at their first failure, and
lcai's (the health wait, the image pull): a data file of the package behind a header of values."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Sequence

_SHELLS = {"bash": "bash", "sh": "sh", "dash": "sh"}


def strict_script(text: str, step: str) -> str:
    """The template's script, stopping at the first failing command (``set -euo pipefail``) and naming the
    failure on stderr (the unit's journal). No shebang: bash. A non-shell shebang (python, …) is kept as is."""
    first, _, rest = text.partition("\n")
    offset = 1  # lines the prelude adds before the script's own line numbers
    if not first.startswith("#!"):
        first, rest, offset = "#!/bin/bash", text, 2
    parts = first[2:].split()
    interp = parts[0].rsplit("/", 1)[-1] if parts else ""
    if interp == "env" and len(parts) > 1:
        interp = parts[1].rsplit("/", 1)[-1]
    shell = _SHELLS.get(interp)
    if shell == "bash":
        prelude = (f"set -euo pipefail; trap 'echo \"lcai: step {step} failed (exit $?) at line "
                   f"$((LINENO - {offset})): $BASH_COMMAND\" >&2' ERR")
    elif shell == "sh":  # dash has no ERR trap and (before 0.5.13) no pipefail
        prelude = ("# shellcheck disable=SC3040\n"
                   "set -eu; if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi; "
                   f"lcai_exit() {{ st=$?; [ \"$st\" -eq 0 ] || echo \"lcai: step {step} failed (exit $st)\" >&2; }}; "
                   "trap lcai_exit EXIT")
    else:
        return text
    return f"{first}\n{prelude}\n{rest}"


# ---------------------------------------------------------------- lcai's own scripts


@lru_cache(maxsize=None)
def data_file(name: str) -> str:
    """A script shipped in the package (``lcai_core/data/<name>``): plain shell, no templating."""
    return (files("lcai_core") / "data" / name).read_text(encoding="utf-8")


def script_header(shebang: str, comment: Sequence[str], settings: dict[str, str], *extra: str) -> str:
    """The head of one of lcai's scripts: the shebang, comment lines, ``set -u``, the values as shell variables
    (``NAME=value``, quoted by the caller where needed), then ``extra`` lines."""
    lines = [shebang, *(f"# {c}" for c in comment), "set -u", *(f"{k}={v}" for k, v in settings.items()), *extra]
    return "".join(line + "\n" for line in lines)
