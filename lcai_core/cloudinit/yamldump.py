"""The cloud-config's YAML: multi-line strings as literal blocks, commands in flow style on one line."""

from __future__ import annotations

from typing import Any

import yaml


class Flow(list):
    """A command in list form, rendered on one line: [systemctl, enable, x]."""


class _Dumper(yaml.SafeDumper):
    pass


def _str_rep(dumper: yaml.SafeDumper, data: str):
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")) and "\t" not in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_rep)
_Dumper.add_representer(Flow, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)
