"""The provider interface (implemented by plugins such as lcai-linode; registered via ``register_providers``).

lcai-core never imports a cloud SDK. The CLI commands a provider plugin adds and the TUI both work through
these methods, so a dashboard needs no knowledge of any particular cloud.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Optional


class Provider:
    """Base class for providers. ``name`` is the template's ``deploy.target`` it serves (e.g. ``linode``)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def deployment_rows(self, records: dict[str, dict]) -> tuple[list[dict], str]:
        """(rows, source): registry ``records`` merged with live cloud state in as few requests as possible;
        each row has ``live_status`` ("vanished" when the instance is gone) and ``untracked`` for instances the
        registry does not know. When the cloud is unreachable: the records, and a source saying so."""
        raise NotImplementedError(f"provider {self.name!r} does not list deployments")

    def destroy_deployment(self, record: dict, say: Callable[[str], None] = lambda m: None) -> None:
        """Delete everything the deployment created; already-deleted resources are fine."""
        raise NotImplementedError(f"provider {self.name!r} does not destroy deployments")

    def probe(self, record: dict) -> tuple[Optional[bool], str]:
        """(healthy?, detail) from the user's machine; None when it cannot be checked from here."""
        return None, "no health check for this provider"
