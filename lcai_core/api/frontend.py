"""The API for plugins that drive lcai from outside the capability/provider contract: plugins that add
commands, the dashboard (lcai-tui), clients that reach a deployment (lcai-buildwatch), other CLIs that embed
lcai (linode-cli). Import it where it is used (inside the command or hook), never in a plugin's ``__init__``
at import time: names resolve on first use, and ``LazyCommand`` needs only click, already loaded when
``register_commands`` runs.

Commands
    ``LazyCommand(name, (module, attribute), help)``: a command whose module is imported only when it runs,
    so ``lcai --help`` stays fast. ``main(argv) -> int``: run lcai's CLI (exit status returned).
    ``prog()``/``set_prog(name)``: how the user invoked lcai (``lcai``, ``linode-cli build``), for hints.
    ``status_style(status) -> str``: the style name the CLI colours a status with.
    ``printable(value) -> str``: ``value`` as text safe for a terminal, control characters and bidi overrides
    (from labels and tags anyone with write access to the account sets) shown as ``\\xNN``/``\\uNNNN``.
    ``fit_widths(natural, priority, width, gap, minimum, keep) -> dict``: the table columns (key -> width) that
    fit ``width``, the last of ``priority`` giving way first (shrinking to ``minimum``, then hiding), as
    ``lcai status`` fits its table to the terminal.

Deployments
    ``get_host()``: the loaded plugin host (capabilities, providers, hooks). ``Registry()``: this machine's
    deployment records; ``age(iso) -> str`` formats a record's timestamp as ``5m``/``2h``/``3d``.
    ``provider_of(host, record)``: the provider serving a record. ``list_all(host, records, failures=None)``:
    every provider's deployments, each provider asked once (``failures`` collects the ``PluginError`` of each
    provider whose plugin failed; its deployments are then the registry's). ``provider_detail(host, provider,
    record, failures=None)``: the provider's ``detail`` lines, none when its plugin fails.
    ``destroy(host, registry, record, say) -> list[str]``: delete a deployment and the local files deploy wrote
    (the paths removed are returned).
    ``check_health(provider, record) -> Health``: one health answer, as ``lcai status`` gives it.
    ``run(ssh_endpoint, command, timeout=30.0) -> Result``: run a command on the machine over SSH.
    ``load_template(path)``: a validated template (``deploy.yml``).

The deploy flow (what ``lcai deploy``, ``lcai plan`` and ``lcai scale`` call; no click, no printing)
    ``DeployOptions(directory=..., yes=False, new=False, wait=False, ...)``: what ``lcai deploy`` is asked.
    ``plan_deploy(host, registry, options, say) -> DeployPlan``: what a deploy would do, nothing sent to the
    cloud: ``plan.kind`` (a ``Kind``: CREATE, REBUILD, ROLLOUT or UNCHANGED), ``plan.lines`` (what changes),
    ``plan.question``/``plan.consequence`` (what to confirm and what it loses), ``plan.warnings``.
    ``apply(plan, events, registry) -> Outcome``: carry it out under the deployment's lock (a plan made stale
    by another deploy meanwhile is refused); progress goes to ``events`` (``say(line)``, ``notice(line)``,
    ``clear()``; ``Quiet()`` drops it). ``Outcome.record`` is the saved deployment record.
    ``preview(host, options) -> Preview``: what ``lcai plan`` shows (price, user data, spec).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..cli import LazyCommand, main
    from ..health import check as check_health
    from ..lifecycle import destroy, list_all, provider_of
    from ..lifecycle import detail as provider_detail
    from ..plugins import get_host
    from ..registry import Registry, age
    from ..remote import Result, run
    from ..template import load_template
    from ..flow import DeployOptions, DeployPlan, Kind, Outcome, Quiet, apply, plan_deploy, preview
    from ..ui import fit_widths, printable, prog, set_prog, status_style

_FROM = {  # name -> (module, attribute)
    "LazyCommand": ("lcai_core.cli", "LazyCommand"),
    "main": ("lcai_core.cli", "main"),
    "prog": ("lcai_core.ui", "prog"),
    "set_prog": ("lcai_core.ui", "set_prog"),
    "status_style": ("lcai_core.ui", "status_style"),
    "fit_widths": ("lcai_core.ui", "fit_widths"),
    "printable": ("lcai_core.ui", "printable"),
    "get_host": ("lcai_core.plugins", "get_host"),
    "Registry": ("lcai_core.registry", "Registry"),
    "age": ("lcai_core.registry", "age"),
    "provider_of": ("lcai_core.lifecycle", "provider_of"),
    "list_all": ("lcai_core.lifecycle", "list_all"),
    "provider_detail": ("lcai_core.lifecycle", "detail"),
    "destroy": ("lcai_core.lifecycle", "destroy"),
    "check_health": ("lcai_core.health", "check"),
    "run": ("lcai_core.remote", "run"),
    "Result": ("lcai_core.remote", "Result"),
    "load_template": ("lcai_core.template", "load_template"),
    "DeployOptions": ("lcai_core.flow", "DeployOptions"),
    "DeployPlan": ("lcai_core.flow", "DeployPlan"),
    "Kind": ("lcai_core.flow", "Kind"),
    "Outcome": ("lcai_core.flow", "Outcome"),
    "Quiet": ("lcai_core.flow", "Quiet"),
    "apply": ("lcai_core.flow", "apply"),
    "plan_deploy": ("lcai_core.flow", "plan_deploy"),
    "preview": ("lcai_core.flow", "preview"),
}

__all__ = ["LazyCommand", "main", "prog", "set_prog", "status_style", "fit_widths", "printable", "get_host", "Registry",
           "age",
           "provider_of", "list_all", "provider_detail", "destroy", "check_health", "run", "Result", "load_template",
           "DeployOptions", "DeployPlan", "Kind", "Outcome", "Quiet", "apply", "plan_deploy", "preview"]


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module 'lcai_core.api.frontend' has no attribute {name!r}")
    mod, attr = _FROM[name]
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
