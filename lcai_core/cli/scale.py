"""`lcai scale [ID] N`: change how many replicas a replicated deployment runs (docs/scaling.md).

Adding: each new replica is created from the deployment directory's user data (the same as the running ones:
a changed deploy.yml is refused until `lcai deploy` rolled it out), checked by the load balancer without
traffic, and put in rotation once healthy. Removing: the replicas to remove are drained, then deleted;
healthy replicas are kept first, so the healthy capacity never drops below N. Inside a deployment directory
the ID may be left out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import click

from ..errors import InputError, InterruptReported, LcaiError


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
    from .. import lifecycle as L
    from .. import ui
    from ..plugins import get_host
    from ..registry import Registry
    from ..template import MAX_REPLICAS

    if len(args) not in (1, 2):
        raise InputError("usage: lcai scale [ID] N (the ID may be left out inside a deployment directory)")
    dep_key, count = (None, args[0]) if len(args) == 1 else args
    try:
        n = int(count)
    except ValueError:
        raise InputError(f"N must be a whole number of replicas, got {count!r}") from None
    if not 1 <= n <= MAX_REPLICAS:
        raise InputError(f"N must be 1-{MAX_REPLICAS}, got {n}")
    host, reg = get_host(), Registry()
    rec = L.resolve(reg, dep_key, directory)
    dep_id = rec["deployment_id"]
    prov = L.provider_of(host, rec)
    if not getattr(prov, "supports_replicas", False):
        raise InputError(f"provider {prov.name} cannot scale deployments")
    if rec.get("replicas") is None:
        raise InputError(f"deployment {dep_id} is one instance without a NodeBalancer; scaling it would move its "
                         "address to a new NodeBalancer, which lcai does not do in place",
                         hint="set deploy.linode.replicas: N (or `lcai deploy --new --replicas N`) to create a "
                              f"replicated deployment, then `lcai destroy {dep_id}`")
    if str(rec.get("status")).startswith(("creating", "vanished")):
        raise InputError(f"deployment {dep_id} is {rec.get('status')}", hint=f"lcai status {dep_id}")
    current = len((rec.get("provider_state") or {}).get("replicas") or [])
    if n == current:
        click.echo(f"deployment {dep_id} already runs {n} replica(s); nothing to do", err=True)
        return
    spec = _spec_for_new_replicas(host, rec, directory, n) if n > current else None
    verb = (f"add {n - current} replica(s) ({current} -> {n}): each created, checked by the NodeBalancer without "
            "traffic, then put in rotation") if n > current else \
        (f"remove {current - n} replica(s) ({current} -> {n}): drained at the NodeBalancer, then deleted; healthy "
         "replicas are kept first")
    click.echo(f"scale {dep_id} ({prov.name}, {rec.get('label')}): {verb}; each replica is a {rec.get('type')} "
               f"in {rec.get('region')}"
               + (f" (now ${rec['price_hourly']}/h for all, NodeBalancer included)"
                  if isinstance(rec.get("price_hourly"), (int, float)) else ""), err=True)
    if not yes:
        prog.clear()
        L.confirm("scale it?", f"scale {'creates billable resources' if n > current else 'deletes replicas'}")
    budget = L.health_budget(rec.get("health")) + 900
    deadline = time.monotonic() + (timeout if timeout is not None else budget)
    state = dict(rec.get("provider_state") or {})

    def save(fields: dict) -> None:
        state.update(fields)
        reg.update(dep_id, provider_state=dict(state), replicas=max(1, len(state.get("replicas") or [])))

    reg.update(dep_id, status="scaling")
    try:
        fields = prov.scale(rec, n, spec, prog.say, deadline, save) or {}
    except KeyboardInterrupt as e:
        reg.update(dep_id, status="running")
        click.echo(f"interrupted: deployment {dep_id} is tracked with "
                   f"{len(state.get('replicas') or [])} replica(s); `{ui.cmd(f'scale {dep_id} {n}')}` continues",
                   err=True)
        raise InterruptReported() from e
    except LcaiError as e:
        reg.update(dep_id, status="running")
        e.hint = (f"{e.hint}; " if e.hint else "") + (
            f"deployment {dep_id} is tracked with {len(state.get('replicas') or [])} replica(s): "
            f"`lcai status {dep_id}`; `lcai scale {dep_id} {n}` tries again")
        raise
    price = {k: fields.pop(k) for k in ("price_hourly", "price_monthly") if k in fields}
    state.update(fields)
    reps = len(state.get("replicas") or [])
    rec = reg.update(dep_id, provider_state=dict(state), replicas=reps, status="running", **price)
    probe = dict(rec)
    res = prov.health(probe)
    if res is not None:
        reg.update(dep_id, health_status=res.word(), health_detail=res.detail, health_source=res.source,
                   replicas_healthy=probe.get("replicas_healthy"))
    click.echo(f"deployment {dep_id}: {reps} replica(s)" + (f", {res.detail}" if res is not None else "")
               + (f"; ${price['price_hourly']}/h" if price.get("price_hourly") is not None else ""))


def _spec_for_new_replicas(host, rec: dict, directory: Optional[Path], n: int):
    """The Spec new replicas boot from: the deployment directory rendered exactly as the running replicas were
    (refused when deploy.yml changed since the last deploy: new replicas would run another version)."""
    from .. import lifecycle as L
    from ..project import prepare
    from .deploy import make_spec

    dep_id = rec["deployment_id"]
    d = directory or (Path(rec["directory"]) if rec.get("directory") else None)
    st = L.read_state(d) if d is not None and d.is_dir() else None
    if d is None or st is None or st.get("deployment_id") != dep_id or not st.get("secret_seed"):
        raise InputError(f"adding replicas to {dep_id} needs its deployment directory with this machine's state "
                         f"({L.STATE}): the new replicas boot from its user data",
                         hint=f"run it inside the directory deploy used (or -d DIR); `lcai scale {dep_id} N` with a "
                              "smaller N works anywhere")
    p = prepare(d, host, app=rec.get("app"), env_name=rec.get("env"), region=rec.get("region"),
                type_=rec.get("type"), image=rec.get("image"))
    if not rec.get("rendered_sha256"):
        raise InputError(f"deployment {dep_id}'s replicas may run different versions (a rollout did not finish)",
                         hint="run `lcai deploy` in its directory to finish (or roll back) the rollout, then scale")
    if L.sha256(p.rendered.text) != rec["rendered_sha256"]:
        raise InputError(f"{d}: deploy.yml (or .env) changed since deployment {dep_id} was last deployed; new "
                         "replicas would run a different version than the others",
                         hint="run `lcai deploy` first (a rolling redeploy), then scale; or restore the files")
    keys = L.ssh_public_keys()
    pw = d / L.ROOT_PASSWORD
    root_pass = pw.read_text().strip() if not keys and pw.is_file() else L.random_root_password()
    return make_spec(p, host, d, ssh_sources=rec.get("ssh_sources") or L.ANYWHERE,
                     app_sources=rec.get("app_sources") or L.ANYWHERE, keys=keys, root_pass=root_pass, replicas=n)
