"""`lcai scale [ID] N`: change how many replicas a replicated deployment runs (docs/scaling.md).

Adding: each new replica is created from the deployment directory's user data (the same as the running ones:
a changed deploy.yml is refused until `lcai deploy` rolled it out), checked by the load balancer without
traffic, and put in rotation once healthy. Removing: the replicas to remove are drained, then deleted;
healthy replicas are kept first, so the healthy capacity never drops below N. Inside a deployment directory
the ID may be left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..errors import InputError, InterruptReported


@click.command("scale")
@click.argument("args", nargs=-1, metavar="[ID] N")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before creating or deleting replicas.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Give up waiting for a new replica after this many seconds (default: the health budget + 15 min).")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The deployment directory (default: the current one, or the deployment's own).")
def scale(args: tuple, yes: bool, timeout: Optional[float], directory: Optional[Path]) -> None:
    """Run N replicas behind the deployment's NodeBalancer: new ones are created, waited healthy, then put in
    rotation; removed ones are drained first. Inside a deployment directory the ID may be left out."""
    from .. import ui

    try:
        with ui.progress() as prog:
            _scale(prog, args, yes, timeout, directory)
    except KeyboardInterrupt as e:
        if not isinstance(e, InterruptReported):
            click.echo("interrupted: nothing was changed", err=True)
        raise click.exceptions.Exit(130) from None


def _scale(prog, args: tuple, yes: bool, timeout: Optional[float], directory: Optional[Path]) -> None:
    from ..flow import apply_scale, plan_scale
    from ..lifecycle import confirm
    from ..plugins import get_host
    from ..registry import Registry
    from .deploy import CliEvents

    if len(args) not in (1, 2):
        raise InputError("usage: lcai scale [ID] N (the ID may be left out inside a deployment directory)")
    dep_key, count = (None, args[0]) if len(args) == 1 else args
    reg = Registry()
    plan = plan_scale(get_host(), reg, dep_key, count, directory)
    events = CliEvents(prog)
    for line in plan.lines:
        events.notice(line)
    if plan.changes_nothing:
        return
    if not yes:
        prog.clear()
        confirm(plan.question, plan.consequence)
    click.echo(apply_scale(plan, events, reg, timeout))
