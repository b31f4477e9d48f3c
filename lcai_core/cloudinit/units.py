"""systemd units from data: a unit is a list of sections, a section a list of ``(key, value)`` directives.

``unit_text`` writes them: ``[Section]`` then ``Key=value`` lines, a blank line between sections. A value is a
string (written as is, even empty: ``CapabilityBoundingSet=`` means "none"), a sequence of names (de-duplicated
in order and joined with spaces; an empty sequence leaves the directive out) or None (left out)."""

from __future__ import annotations

import re
from typing import Optional, Sequence, Union

from ..errors import InputError, LcaiError

Value = Union[str, Sequence[str], None]
Directives = list[tuple[str, Value]]
Section = tuple[str, Directives]

_SAFE_SYSTEMD = re.compile(r"^[A-Za-z0-9_./:=@+,-]+$")


def systemd_quote(arg: str) -> str:
    """One argv element for ExecStart=: quoted so systemd neither splits, unescapes nor expands it."""
    if "\n" in arg or "\x00" in arg:
        raise InputError(f"argument {arg!r} contains a newline or NUL")
    if _SAFE_SYSTEMD.match(arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(systemd_quote(a) for a in argv)


def names(*groups: Sequence[str]) -> list[str]:
    """Unit names from several groups, each once, in order of first appearance."""
    return list(dict.fromkeys(n for g in groups for n in g))


def _line(key: str, value: Value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return f"{key}={value}"
    joined = " ".join(names(value))
    return f"{key}={joined}" if joined else None


def unit_text(sections: Sequence[Section]) -> str:
    blocks = []
    for name, directives in sections:
        lines = [f"[{name}]"] + [x for k, v in directives if (x := _line(k, v)) is not None]
        blocks.append("".join(line + "\n" for line in lines))
    return "\n".join(blocks)


def directives_of(text: str, who: str) -> Directives:
    """``Key=value`` lines (what ``Runtime.service_lines`` returns) as directives."""
    out: Directives = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise LcaiError(f"{who}: expected Key=value lines for the app unit's [Service] section, got {line!r}")
        out.append((key, value))
    return out


INSTALL: Section = ("Install", [("WantedBy", "multi-user.target")])


def oneshot_unit(description: str, script: str, after: Sequence[str], marker: str, timeout: int,
                 network: bool = False) -> str:
    """A script run once per instance (a marker file records it), after multi-user.target and ``after``
    (which it also requires); ``network``: after the network is online."""
    online = ["network-online.target"] if network else []
    return unit_text([
        ("Unit", [("Description", description), ("After", [*online, "multi-user.target", *after]),
                  ("Wants", online), ("Requires", after), ("ConditionPathExists", f"!{marker}")]),
        ("Service", [("Type", "oneshot"), ("RemainAfterExit", "yes"), ("Environment", "HOME=/root"),
                     ("ExecStart", script), ("ExecStartPost", f"/usr/bin/touch {marker}"),
                     ("TimeoutStartSec", str(timeout))]),
        INSTALL,
    ])
