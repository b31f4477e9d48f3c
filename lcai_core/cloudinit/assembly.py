"""Fragments merged in a deterministic order: identical pieces de-duplicated, conflicts named."""

from __future__ import annotations

from typing import Any

from attrs import define, field

from ..capabilities import Fragments
from ..errors import LcaiError


class ConflictError(LcaiError):
    exit_code = 2


@define
class Assembled:
    """Fragments merged in a deterministic order. Identical pieces are de-duplicated; two capabilities writing
    the same file, unit, apt source or env variable differently is a ConflictError naming both."""

    bootcmd: list = field(factory=list)
    apt_sources: dict = field(factory=dict)
    packages: list = field(factory=list)
    write_files: list = field(factory=list)
    runcmd: list = field(factory=list)
    units: list = field(factory=list)
    container_env: dict = field(factory=dict)
    docker_args: list = field(factory=list)
    app_requires: list = field(factory=list)
    gpu: bool = False
    reboot: bool = False
    boot_plan: list = field(factory=list)  # (who, line)
    _owners: dict = field(factory=dict, repr=False)  # (kind, key) -> (who, value)
    _arg_groups: list = field(factory=list, repr=False)

    def _claim(self, kind: str, key: str, value: Any, who: str) -> bool:
        """True if new; False if an identical piece is already there; raises on a conflict."""
        k = (kind, key)
        if k in self._owners:
            other, existing = self._owners[k]
            if existing == value:
                return False
            raise ConflictError(f"capabilities '{other}' and '{who}' both define {kind} {key} differently",
                                hint="remove one of them from capabilities.features, or configure them to agree")
        self._owners[k] = (who, value)
        return True

    def provider_of(self, name: str) -> str:
        """The capability that put ``name`` in the app's environment (``Fragments.container_env``)."""
        return self._owners[("container env", name)][0]

    def add(self, who: str, f: Fragments) -> "Assembled":
        for target, items in ((self.bootcmd, f.bootcmd), (self.runcmd, f.runcmd), (self.packages, f.packages),
                              (self.app_requires, f.app_requires)):
            target.extend(x for x in dict.fromkeys(items) if x not in target)
        for src in f.apt_sources:
            if self._claim("apt source", src.name, src, who):
                self.apt_sources[src.name] = src
        for w in f.write_files:
            if w.append or self._claim("file", w.path, w, who):
                self.write_files.append(w)
        for u in f.units:
            if self._claim("unit", u.name, u, who):
                self.units.append(u)
        for k, v in f.container_env.items():
            if self._claim("container env", k, v, who):
                self.container_env[k] = v
        if f.docker_args and tuple(f.docker_args) not in self._arg_groups:
            self._arg_groups.append(tuple(f.docker_args))
            self.docker_args.extend(f.docker_args)
        self.gpu = self.gpu or f.gpu
        self.reboot = self.reboot or f.reboot
        self.boot_plan.extend((who, line) for line in f.boot_plan)
        return self


def assemble(parts: list[tuple[str, Fragments]]) -> Assembled:
    """Merge fragments in the given (deterministic) order (see ``Assembled``)."""
    a = Assembled()
    for who, f in parts:
        a.add(who, f)
    return a
