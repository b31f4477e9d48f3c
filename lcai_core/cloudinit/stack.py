"""A template's resolved capabilities as the renderer uses them: the runtime is a field of its own."""

from __future__ import annotations

from typing import Sequence, Union

from attrs import define

from ..capabilities import Resolved, Runtime
from ..errors import LcaiError


@define(frozen=True)
class Stack:
    """The runtime (which starts the app) and the features, in assembly order (``Catalog.resolve``'s order:
    by ``order``, then name)."""

    runtime: Resolved
    features: tuple[Resolved, ...] = ()

    @classmethod
    def of(cls, resolved: Union["Stack", Sequence[Resolved]]) -> "Stack":
        """From ``Catalog.resolve``'s list: the one capability of kind ``runtime`` and the rest, in order."""
        if isinstance(resolved, Stack):
            return resolved
        runtimes = [r for r in resolved if r.capability.kind == "runtime"]
        if len(runtimes) != 1 or not isinstance(runtimes[0].capability, Runtime):
            raise LcaiError(f"internal: a template resolves to one runtime, got {[r.name for r in runtimes]}")
        return cls(runtimes[0], tuple(r for r in resolved if r is not runtimes[0]))

    @property
    def runtime_capability(self) -> Runtime:
        rt = self.runtime.capability
        assert isinstance(rt, Runtime)
        return rt

    @property
    def all(self) -> tuple[Resolved, ...]:
        """The runtime, then the features: the order their fragments are assembled in."""
        return (self.runtime, *self.features)

    @property
    def requires_gpu(self) -> bool:
        return any(r.capability.requires_gpu for r in self.all)
