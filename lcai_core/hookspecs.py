"""Hook specifications of lcai. Contributing hooks take a ``register`` callback so the core owns validation,
duplicate names and provenance (which distribution provided what)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("lcai")
hookimpl = pluggy.HookimplMarker("lcai")


@hookspec
def register_capabilities(register: Callable[[Any], None]) -> None:
    """register(Capability) for each capability this plugin provides"""


@hookspec
def register_template_sources(register: Callable[[Any], None]) -> None:
    """register(TemplateSource) for each place this plugin ships templates from (bundled, user dir, packs)"""


@hookspec
def register_providers(register: Callable[[Any], None]) -> None:
    """register(Provider) for each cloud provider this plugin implements (e.g. linode)"""


@hookspec
def register_commands(cli: click.Group) -> None:
    """attach click commands to the root group ``cli``"""


@hookspec
def deployment_sections(deployment: dict[str, Any]) -> Optional[list[tuple[str, list[str]]]]:
    """return [(title, [lines])] to show for one deployment (a registry record) in `lcai status ID`"""


@hookspec
def deployment_events(deployment: dict[str, Any], run: Callable[[str], Any], limit: int,
                      since: Optional[Any]) -> Optional[tuple[str, list[str], Any]]:
    """return (title, [lines], cursor) of events for `lcai logs` (``run(cmd)`` runs a command on the machine over
    SSH and returns a result with ``ok``/``out``), only those after ``since`` when it is not None; None when this
    plugin has nothing for the deployment"""
