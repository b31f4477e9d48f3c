"""Template sources: where templates come from, and how name clashes resolve (user > packs > bundled)."""

from __future__ import annotations

import os
from typing import Optional

from .errors import InputError

PRIORITY = {"user": 0, "pack": 1, "bundled": 2}
TEMPLATE_FILES = ("template.yml", "template.yaml")


class TemplateEntry:
    """One template found by a source. (Plain class: listing templates must not import attrs or yaml.)"""

    __slots__ = ("name", "path", "kind", "source", "shadowed")

    def __init__(self, name: str, path: str, kind: str, source: str):
        self.name = name
        self.path = path  # the template.yml
        self.kind = kind  # user | pack | bundled
        self.source = source  # "bundled (lcai-core 0.1.0)", "user (~/.config/…)", "pack lcai-templates-x 1.2"
        self.shadowed: list = []  # entries with the same name that lose to this one

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


class DirectorySource:
    """Every sub-folder of ``root`` holding a template.yml is one template named after the folder."""

    def __init__(self, kind: str, root, label: str = "", plugin: Optional[str] = None):
        if kind not in PRIORITY:
            raise ValueError(f"template source kind must be one of {', '.join(PRIORITY)}, got {kind!r}")
        self.kind, self.root, self.label, self.plugin = kind, os.fspath(root), label, plugin

    def entries(self) -> list[TemplateEntry]:
        out: list[TemplateEntry] = []
        try:
            children = sorted(os.scandir(self.root), key=lambda d: d.name)
        except (FileNotFoundError, NotADirectoryError):
            return out
        for d in children:
            if not d.is_dir() or d.name.startswith((".", "_")):
                continue
            for fname in TEMPLATE_FILES:
                p = os.path.join(d.path, fname)
                if os.path.isfile(p):
                    src = self.label or self.kind
                    if self.kind == "pack" and self.plugin:
                        src = f"pack {self.plugin}"
                    elif self.plugin and self.kind == "bundled":
                        src = f"bundled ({self.plugin})"
                    out.append(TemplateEntry(d.name, p, self.kind, src))
                    break
        return out


def discover(sources: list) -> dict[str, TemplateEntry]:
    """name → winning entry; losers are kept in ``shadowed`` so clashes can be shown."""
    found: dict[str, list[TemplateEntry]] = {}
    for src in sources:
        for e in src.entries():
            found.setdefault(e.name, []).append(e)
    result = {}
    for name, entries in found.items():
        entries.sort(key=lambda e: (PRIORITY.get(e.kind, 9), e.source))
        win = entries[0]
        win.shadowed = entries[1:]
        result[name] = win
    return dict(sorted(result.items()))


def from_path(path: str) -> Optional[TemplateEntry]:
    """A template given as a path (a folder holding template.yml/deploy.yml, or the file itself), for trying a
    template before installing it; None when ``path`` names no such file."""
    if os.path.isdir(path):
        for fname in (*TEMPLATE_FILES, "deploy.yml", "deploy.yaml"):
            f = os.path.join(path, fname)
            if os.path.isfile(f):
                name = os.path.basename(os.path.abspath(path))
                return TemplateEntry(name, f, "user", f"path {path}")
        raise InputError(f"{path}: a folder, but it holds no template.yml",
                         hint="give a template name (lcai templates list), or a folder with template.yml")
    if os.path.isfile(path) and path.endswith((".yml", ".yaml")):
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
        return TemplateEntry(name, path, "user", f"path {path}")
    return None


def find(sources: list, name: str) -> TemplateEntry:
    entries = discover(sources)
    if name in entries:
        return entries[name]
    if os.sep in name or name.startswith(".") or name.endswith((".yml", ".yaml")) or os.path.isdir(name):
        entry = from_path(name)
        if entry is not None:
            return entry
    from .convert import did_you_mean

    raise InputError(f"no template named '{name}'{did_you_mean(name, list(entries))}",
                     hint="list them with: lcai templates list; or give a template folder or file by path")
