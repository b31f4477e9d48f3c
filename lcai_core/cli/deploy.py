"""`lcai deploy`: create a deployment with its provider, or redeploy (rebuild) the directory's live one.

Contract spellings: ``deploy --directory DIR --wait --yes``, ``--ssh-from CIDR``, ``--timeout S``,
``--app/--env/--region/--type``; added: ``--target NAME``, ``--new``, ``--app-from CIDR``, ``--replicas N``,
``--image ID``, ``--max-hourly USD``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InterruptReported


@click.command("deploy")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The deployment directory (deploy.yml, .env).")
@click.option("--wait", is_flag=True,
              help="Wait through boot, cloud-init and the health check; stop at the first failure the instance "
                   "records (image pull, GPU check, boot step, health) and name it.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before creating (or rebuilding) billable resources.")
@click.option("--target", help="Provider to deploy with (default: the template's deploy.target), e.g. local.")
@click.option("--new", "new", is_flag=True, help="Create another deployment even if this directory has a live one.")
@click.option("--app", help="App name (default: the template name).")
@click.option("--env", "env_name", help="Environment name (default: default).")
@click.option("--region", help="Override deploy.linode.region_default.")
@click.option("--type", "type_", help="Override deploy.linode.type_default.")
@click.option("--image", help="Override deploy.linode.image, e.g. linode/debian12 (for every provider).")
@click.option("--ssh-from", "ssh_from", multiple=True, metavar="CIDR",
              help="Sources allowed to SSH (repeatable; default: anywhere).")
@click.option("--app-from", "app_from", multiple=True, metavar="CIDR",
              help="Sources allowed to reach the app's public port (repeatable; default: anywhere).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="With --wait: give up after this many seconds (default: the template's health budget + 15 min).")
@click.option("--replicas", type=click.IntRange(1, 25), default=None,
              help="Instances behind a NodeBalancer (default: deploy.linode.replicas, 1). See docs/scaling.md.")
@click.option("--max-hourly", "max_hourly", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="USD", help="Refuse to create a deployment that costs more per hour than this (default: "
                                  "deploy.linode.max_hourly; none).")
def deploy(directory: Path, wait: bool, yes: bool, target, new: bool, app, env_name, region, type_, ssh_from,
           app_from, timeout, replicas=None, image=None, max_hourly=None) -> None:
    """Create the deployment (machine, firewall: SSH and the app's port only) and track it; in a directory
    whose deployment is live, show what changed and rebuild that machine with the new user data (same
    address). Renders the same user data as `lcai plan`."""
    from .. import ui
    from ..flow import DeployOptions

    opts = DeployOptions(directory=directory, target=target, new=new, app=app, env_name=env_name, region=region,
                         type=type_, image=image, ssh_from=tuple(ssh_from), app_from=tuple(app_from),
                         replicas=replicas, wait=wait, timeout=timeout, max_hourly=max_hourly)
    try:
        with ui.progress() as prog:
            _deploy(prog, opts, yes)
    except KeyboardInterrupt as e:  # the flow said what is left; before it, nothing exists
        if not isinstance(e, InterruptReported):
            click.echo("interrupted: nothing was created", err=True)
        raise click.exceptions.Exit(130) from None


class CliEvents:
    """The flow's events as the CLI shows them: the spinner line, stderr lines, commands spelt as the user
    runs lcai (``linode-cli build …`` under linode-cli)."""

    def __init__(self, prog) -> None:
        self.prog = prog

    def say(self, line: str) -> None:
        from .. import ui

        self.prog.say(ui.localize(line))

    def notice(self, line: str) -> None:
        from .. import ui

        click.echo(ui.localize(line), err=True)

    def clear(self) -> None:
        self.prog.clear()


def _deploy(prog, opts, yes: bool) -> None:
    from .. import flow, ui
    from ..lifecycle import confirm
    from ..plugins import get_host
    from ..registry import Registry

    host, reg, events = get_host(), Registry(), CliEvents(prog)
    plan = flow.plan_deploy(host, reg, opts, say=events.say)
    for w in plan.warnings:
        ui.warning(w)
    for line in plan.lines:
        events.notice(line)
    if plan.kind is not flow.Kind.UNCHANGED and not yes:
        prog.clear()
        confirm(plan.question, plan.consequence)
    outcome = flow.apply(plan, events, reg)
    _summary(plan.provider, outcome.record, Path(opts.directory), plan.prepared.template)


def _summary(prov, rec: dict, d: Path, tpl) -> None:
    from .. import ui

    dep_id = rec["deployment_id"]
    ep = prov.app_endpoint(rec)
    addr = rec.get("address")
    url = ep.url() if ep else None
    click.echo(f"deployment {dep_id} ({prov.name}) at {addr or 'an address not known yet'}"
               + (f", {url}" if url else ""))
    if rec.get("replicas") is not None:
        click.echo(f"  {rec['replicas']} replica(s) behind a NodeBalancer (`{ui.cmd(f'scale {dep_id} N')}` changes "
                   "the count; ssh and logs reach replica 1)")
    ssh = prov.ssh(rec)
    if ssh is not None:
        from ..lifecycle import ROOT_PASSWORD

        pw = (d / ROOT_PASSWORD).is_file()
        click.echo(f"  {ssh.describe()}   (or {d / 'connect.sh'})"
                   + (f"; no SSH key was sent: root's password is in {d / ROOT_PASSWORD} (logs and on-machine "
                      "health need a key: add one to ~/.ssh and deploy again)" if pw else ""))
    click.echo("  " + "   ·   ".join(ui.cmd(f"{c} {dep_id}") for c in ("status", "logs", "destroy")))
    host_port = (f"{ep.host}" if ep.port == 80 else f"{ep.host}:{ep.port}") if ep else str(addr)
    for ex in tpl.guidance.examples[:3]:
        click.echo(f"  # {ex.description}: {ex.command.replace('{host}', host_port)}")


@click.command("start")
@click.argument("deployment_id", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before creating the billable machine again.")
@click.option("--wait", is_flag=True, help="Wait through boot, cloud-init and the health check.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="With --wait: give up after S seconds.")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The deployment's directory (default: the current one, or the record's).")
def start(deployment_id, yes: bool, wait: bool, timeout, directory) -> None:
    """Start a deployment `lcai stop` stopped: its machine created again from its directory's deploy.yml and
    .env, with the same firewall and its volumes attached again (their data kept)."""
    from .. import lifecycle as L
    from .. import ui
    from ..errors import InputError
    from ..flow import DeployOptions
    from ..registry import Registry

    rec = L.resolve(Registry(), deployment_id, directory)
    if rec.get("status") != "stopped":
        raise InputError(f"deployment {rec['deployment_id']} is {rec.get('status')}, not stopped",
                         hint="`lcai deploy` in its directory redeploys a live one")
    d = directory or (Path(rec["directory"]) if rec.get("directory") else None)
    if d is None:
        raise InputError(f"deployment {rec['deployment_id']} has no directory on this machine",
                         hint="run `lcai start` inside its deployment directory")
    opts = DeployOptions(directory=d, wait=wait, timeout=timeout)
    try:
        with ui.progress() as prog:
            _deploy(prog, opts, yes)
    except KeyboardInterrupt as e:
        if not isinstance(e, InterruptReported):
            click.echo("interrupted: nothing was created", err=True)
        raise click.exceptions.Exit(130) from None
