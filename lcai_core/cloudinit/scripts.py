"""The template's own scripts (setup.script, post_start_script), made to stop at their first failure."""

from __future__ import annotations

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
