"""The cloud-config's YAML: multi-line strings as literal blocks, commands in flow style on one line.

The document is emitted by libyaml (PyYAML's ``CSafeDumper``) when PyYAML was built with it, else by PyYAML's
pure-Python emitter; both take the same representers and give the same bytes for every bundled template
(tests/core/test_yamldump.py compares them; ``python bench/startup.py`` prints the render time).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class Flow(list):
    """A command in list form, rendered on one line: [systemctl, enable, x]."""


def _str_rep(dumper: Any, data: str):
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")) and "\t" not in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _flow_rep(dumper: Any, data: Flow):
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


class PyDumper(yaml.SafeDumper):
    """The pure-Python emitter (the fallback without libyaml)."""


PyDumper.add_representer(str, _str_rep)
PyDumper.add_representer(Flow, _flow_rep)

_CSafe = getattr(yaml, "CSafeDumper", None)
if _CSafe is not None:
    class CDumper(_CSafe):  # type: ignore[misc,valid-type]
        """libyaml's emitter with the same representers (about 20 times faster than PyDumper)."""

    CDumper.add_representer(str, _str_rep)
    CDumper.add_representer(Flow, _flow_rep)
    DUMPER: type = CDumper
else:  # PyYAML built without libyaml
    DUMPER = PyDumper


# Characters both emitters write the same way. Outside them (C0/C1 control characters other than tab and line
# feed, NEL, U+2028/U+2029, the BOM, U+FFFE/U+FFFF, anything beyond the BMP such as emoji) libyaml and PyYAML quote
# or escape differently, and after a block scalar kept with "|+" (a string that is "\n" or ends in a blank line)
# libyaml ends the document with "..." where PyYAML does not: a document holding either is emitted by the
# pure-Python emitter.
_SAME = re.compile("[\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]*")


def _emits_the_same(node: Any) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, str):
            if not _SAME.fullmatch(n) or n == "\n" or n.endswith("\n\n"):
                return False
        elif isinstance(n, dict):
            stack.extend(n.keys())
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return True


def dump_yaml(doc: Any, dumper: type | None = None) -> str:
    """``doc`` as YAML; the same text whichever emitter writes it (tests/core/test_yamldump.py)."""
    if dumper is None:
        dumper = DUMPER if DUMPER is PyDumper or _emits_the_same(doc) else PyDumper
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)
