"""`lcai deploy`, `status`, `destroy`, `sync` (contract spellings: `deploy --directory DIR --wait --yes`,
`status --json`, `destroy ID --yes`, `sync`)."""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import click

from lcai_core.errors import InputError, LcaiError


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise InputError(f"{name}: expected a number of seconds") from None


class Progress:
    """Phases on stderr with elapsed time: `[ 12.3s] booting`."""

    def __init__(self, quiet: bool = False):
        self.t0 = time.monotonic()
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        if not self.quiet:
            click.echo(f"[{self.elapsed():6.1f}s] {msg}", err=True)


def _ssh_keys() -> list[str]:
    keys = []
    for p in sorted(glob.glob(os.path.expanduser("~/.ssh/*.pub"))):
        try:
            line = Path(p).read_text().strip()
        except OSError:
            continue
        if line.startswith(("ssh-", "ecdsa-sha2-nistp", "sk-")):
            keys.append(line)
    return keys


def _provider():
    from .provider import LinodeProvider

    return LinodeProvider()


def _registry():
    from lcai_core.registry import Registry

    return Registry()


# ---------------------------------------------------------------- deploy


@click.command("deploy")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The deployment directory (deploy.yml, .env).")
@click.option("--wait", is_flag=True, help="Wait through provisioning, boot and the health check.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before creating billable resources.")
@click.option("--app", help="App name (default: the template name).")
@click.option("--env", "env_name", help="Environment name (default: default).")
@click.option("--region", help="Override deploy.linode.region_default.")
@click.option("--type", "type_", help="Override deploy.linode.type_default.")
@click.option("--ssh-from", "ssh_from", multiple=True, metavar="CIDR",
              help="Sources allowed to SSH (repeatable; default: anywhere).")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds "
                                            "(default: the template's health budget + 15 min for boot).")
def deploy(directory: Path, wait: bool, yes: bool, app, env_name, region, type_, ssh_from, timeout) -> None:
    """Create the instance (with a Cloud Firewall: the app's port and SSH only) and track the deployment.
    Renders the same user data as `lcai plan`."""
    try:
        _deploy(directory, wait, yes, app, env_name, region, type_, ssh_from, timeout)
    except KeyboardInterrupt:  # before anything was recorded (later stages handle their own)
        click.echo("interrupted: nothing was created", err=True)
        raise click.exceptions.Exit(130) from None


def _deploy(directory: Path, wait: bool, yes: bool, app, env_name, region, type_, ssh_from, timeout) -> None:
    from lcai_core.plugins import get_host
    from lcai_core.files import write_private
    from lcai_core.project import PENDING, prepare
    from lcai_core.registry import now_iso

    from .provider import deployment_tags, instance_label, random_root_password

    prog = Progress()
    host = get_host()
    p = prepare(directory, host, app=app, env_name=env_name, region=region, type_=type_)
    ctx, tpl, c = p.ctx, p.template, p.template.container
    dep_id = ctx.deployment_id
    tags = deployment_tags(dep_id, ctx.app_name, ctx.env) + list(tpl.deploy.linode.tags)
    label = instance_label(ctx.app_name, ctx.env, dep_id)
    reg = _registry()
    existing = reg.get(dep_id)
    if existing and existing.get("linode_id"):
        raise InputError(f"deployment {dep_id} from {directory}/{PENDING} is already deployed "
                         f"(instance {existing['linode_id']})",
                         hint=f"`lcai status {dep_id}`; delete {directory}/{PENDING} to plan a new deployment")
    prov = _provider()
    prog.say(f"preflight: {ctx.type} in {ctx.region}, image {ctx.image}")
    pre = prov.preflight(ctx.region, ctx.type, ctx.image)
    price = pre["price"]
    cost = (f"${price['hourly']}/h, ${price['monthly']}/mo"
            f"{' (region price)' if price['region_price'] else ''}") if price["hourly"] is not None else "price unknown"
    click.echo(f"deploy {ctx.app_name} ({ctx.env}) as {label}: {pre['type'].get('label', ctx.type)}, {cost}", err=True)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("deploy creates billable resources; confirm with --yes when not on a terminal")
        click.confirm("create it?", abort=True, err=True)

    ports = [c.external_port] if c.external_port else []
    health = None
    if c.health is not None:
        h = c.health
        health = {"type": h.type, "path": h.path, "success_codes": list(h.success_codes),
                  "timeout_seconds": h.timeout_seconds, "interval_seconds": h.interval_seconds,
                  "initial_delay_seconds": h.initial_delay_seconds, "max_retries": h.max_retries}
    record = {"app": ctx.app_name, "env": ctx.env, "template": tpl.name, "template_version": tpl.version,
              "provider": "linode", "region": ctx.region, "type": ctx.type, "image": ctx.image, "label": label,
              "status": "creating", "directory": str(Path(directory).resolve()), "external_port": c.external_port,
              "internal_port": c.internal_port, "health": health, "price_hourly": price["hourly"],
              "price_monthly": price["monthly"], "source": "deploy", "features": list(ctx.features)}
    stage = "recorded"
    fw = inst = None
    try:
        # the intent is recorded before anything is created: an interrupted deploy is always findable
        reg.update(dep_id, create=True, **record)
        prog.say(f"recorded deployment {dep_id} (creating)")
        stage = "firewall"
        from .provider import firewall_label

        fw = prov.find_firewall(firewall_label(dep_id)) or prov.create_firewall(
            dep_id, tags, ports, list(ssh_from) or ["0.0.0.0/0", "::/0"])
        reg.update(dep_id, firewall_id=fw["id"])
        prog.say(f"firewall {fw['label']} ({fw['id']}): inbound {', '.join(['22'] + [str(x) for x in ports])}")
        stage = "instance"
        keys = _ssh_keys()
        root_pass = random_root_password()
        found = prov.list_instances(dep_id)
        inst = found[0] if found else prov.create_instance(
            deployment_id=dep_id, label=label, region=ctx.region, type_=ctx.type, image=ctx.image, tags=tags,
            firewall_id=fw["id"], user_data_b64=p.rendered.user_data_b64, authorized_keys=keys, root_pass=root_pass)
        stage = "created"
        ipv4 = (inst.get("ipv4") or [None])[0]
        reg.update(dep_id, linode_id=inst["id"], ipv4=ipv4, status=inst.get("status", "provisioning"),
                   created_at=now_iso())
        prog.say(f"instance {inst['id']} {inst.get('status')} at {ipv4}"
                 + ("" if keys else " (no ~/.ssh/*.pub: root password saved to .linode/root-password, 0600)"))
        d = Path(directory)
        if not keys:
            write_private(d / ".linode" / "root-password", root_pass + "\n")
        state = {"deployment_id": dep_id, "linode_id": inst["id"], "firewall_id": fw["id"], "label": label,
                 "app": ctx.app_name, "env": ctx.env, "region": ctx.region, "type": ctx.type, "ipv4": ipv4,
                 "external_port": c.external_port, "created_at": now_iso()}
        (d / ".linode").mkdir(parents=True, exist_ok=True)
        (d / ".linode" / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        connect = d / "connect.sh"
        connect.write_text(f"#!/bin/sh\n# ssh to {label} (deployment {dep_id})\nexec ssh root@{ipv4} \"$@\"\n")
        connect.chmod(0o755)
        try:
            (d / PENDING).unlink()
        except FileNotFoundError:
            pass
        if wait:
            stage = "wait"
            _wait(prov, reg, dep_id, inst["id"], health, ipv4, c.external_port, prog, timeout)
    except KeyboardInterrupt:
        _interrupted(prov, reg, dep_id, stage, fw)
        raise click.exceptions.Exit(130) from None
    url = f"http://{ipv4}{'' if c.external_port == 80 else f':{c.external_port}'}/" if c.external_port and ipv4 else None
    click.echo(f"deployment {dep_id}: instance {inst['id']} at {ipv4}" + (f", {url}" if url else ""))
    click.echo(f"  ssh root@{ipv4}   (or {Path(directory) / 'connect.sh'})")
    click.echo(f"  lcai status {dep_id}   ·   lcai destroy {dep_id}")
    for ex in tpl.guidance.examples[:3]:
        click.echo(f"  # {ex.description}: {ex.command.replace('{host}', str(ipv4))}")


def _wait(prov, reg, dep_id: str, linode_id: int, health: Optional[dict], ipv4: Optional[str],
          external_port: Optional[int], prog: Progress, timeout: Optional[float]) -> None:
    from .health import probe

    poll = _env_float("LCAI_POLL_INTERVAL", 5.0)
    budget = 0.0
    if health:
        budget = health["initial_delay_seconds"] + health["max_retries"] * (
            health["interval_seconds"] + health["timeout_seconds"])
    deadline = time.monotonic() + (timeout if timeout is not None else budget + 900)
    last = None
    while True:
        inst = prov.get_instance(linode_id)
        if inst is None:
            reg.update(dep_id, status="vanished")
            raise LcaiError(f"instance {linode_id} disappeared while booting", hint=f"lcai destroy {dep_id} --purge")
        status = inst.get("status")
        if status != last:
            prog.say(status)
            reg.update(dep_id, status=status)
            last = status
        if status == "running":
            break
        if time.monotonic() > deadline:
            raise LcaiError(f"timed out waiting for instance {linode_id} (still {status})",
                            hint=f"the deployment is tracked: lcai status {dep_id}")
        time.sleep(poll)
    if not health:
        prog.say("running (the template has no health check)")
        return
    record = {"health": health, "ipv4": ipv4, "external_port": external_port}
    ok, detail = probe(record)
    if ok is None:
        prog.say(f"health: {detail}")
        return
    where = f"{health['type']} {ipv4}:{external_port}{health['path'] if health['type'] == 'http' else ''}"
    prog.say(f"waiting for health ({where}) while cloud-init sets up the app")
    while True:
        ok, detail = probe(record)
        if ok:
            prog.say(f"healthy: {detail}")
            reg.update(dep_id, health_status="healthy", health_detail=detail)
            return
        if time.monotonic() > deadline:
            reg.update(dep_id, health_status="unhealthy", health_detail=detail)
            raise LcaiError(f"deployment {dep_id} did not become healthy in time: {detail}",
                            hint=f"it is tracked and running: `lcai status {dep_id}`, ssh in and read "
                                 "/var/log/cloud-init-output.log, or `lcai destroy {dep_id}`")
        time.sleep(min(poll, health["interval_seconds"]))


def _interrupted(prov, reg, dep_id: str, stage: str, fw: Optional[dict]) -> None:
    """Ctrl-C: leave either a tracked deployment or nothing, and say which."""
    from .provider import firewall_label

    say = lambda m: click.echo(m, err=True)  # noqa: E731
    if stage in ("created", "wait"):
        say(f"interrupted: deployment {dep_id} exists and is tracked (`lcai status {dep_id}`, `lcai destroy {dep_id}`)")
        return
    if stage == "recorded" and fw is None:
        reg.remove(dep_id)
        say("interrupted: nothing was created")
        return
    try:
        found = prov.list_instances(dep_id)
        if found:
            inst = found[0]
            reg.update(dep_id, linode_id=inst["id"], ipv4=(inst.get("ipv4") or [None])[0], status=inst.get("status"))
            say(f"interrupted: instance {inst['id']} was created; deployment {dep_id} is tracked "
                f"(`lcai destroy {dep_id}` removes it)")
            return
        fwx = fw or prov.find_firewall(firewall_label(dep_id))
        if fwx is not None:
            prov.delete_firewall(fwx["id"])
        reg.remove(dep_id)
        say("interrupted: nothing was created" + (" (the firewall was removed)" if fwx else ""))
    except Exception as e:  # cleanup must report, never hide, what is left
        say(f"interrupted: could not confirm what exists ({e}); deployment {dep_id} stays recorded as 'creating' — "
            "run `lcai sync` and `lcai status`")


# ---------------------------------------------------------------- status


@click.command("status")
@click.argument("deployment_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(deployment_id: Optional[str], as_json: bool) -> None:
    """All deployments, live from the API with ONE tag-filtered list call (vanished instances marked), or one
    deployment in detail with a live health check."""
    from lcai_core.registry import age

    reg = _registry()
    prov = _provider()
    rows, source = prov.deployment_rows(reg.all())
    if deployment_id:
        # an exact id (untracked ones included), else a unique prefix of a registry id
        exact = any(r["deployment_id"] == deployment_id for r in rows)
        key = deployment_id if exact else reg.find(deployment_id)["deployment_id"]
        row = next(r for r in rows if r["deployment_id"] == key)
        ok, detail = prov.probe(row) if row.get("live_status") == "running" else (None, f"instance is {row.get('live_status')}")
        row["health_live"] = {"ok": ok, "detail": detail}
        if ok is not None:
            reg.update(key, health_status="healthy" if ok else "unhealthy", health_detail=detail)
        if as_json:
            click.echo(json.dumps(row, indent=2, default=str))
            return
        for k in ("deployment_id", "app", "env", "template", "region", "type", "linode_id", "label", "ipv4",
                  "live_status", "created_at", "directory"):
            if row.get(k) is not None:
                click.echo(f"{k.replace('_', ' '):<14} {row[k]}")
        click.echo(f"{'health':<14} {'ok' if ok else ('failing' if ok is False else 'n/a')}: {detail}")
        if row.get("price_hourly") is not None:
            click.echo(f"{'cost':<14} ${row['price_hourly']}/h")
        if row.get("ipv4"):
            click.echo(f"{'ssh':<14} ssh root@{row['ipv4']}")
        click.echo(f"{'source':<14} {source}")
        from lcai_core.plugins import get_host

        for title, lines in get_host().deployment_sections(row):
            click.echo(f"{title}:")
            for line in lines:
                click.echo(f"  {line}")
        return
    if as_json:
        click.echo(json.dumps({"source": source, "deployments": rows}, indent=2, default=str))
        return
    if not rows:
        click.echo("no deployments (lcai deploy creates one; lcai sync adopts ones made elsewhere)")
        return
    head = f"{'ID':<9} {'APP':<18} {'ENV':<10} {'REGION':<10} {'TYPE':<20} {'STATUS':<13} {'HEALTH':<9} {'AGE':>5}  {'$/H':>6}"
    click.echo(head)
    for r in rows:
        st = r.get("live_status") or "-"
        if r.get("untracked"):
            st += " (untracked)"
        price = f"{r['price_hourly']:.3f}" if isinstance(r.get("price_hourly"), (int, float)) else "-"
        click.echo(f"{r['deployment_id']:<9} {str(r.get('app') or '-')[:18]:<18} {str(r.get('env') or '-')[:10]:<10} "
                   f"{str(r.get('region') or '-'):<10} {str(r.get('type') or '-')[:20]:<20} {st:<13} "
                   f"{str(r.get('health_status') or '-'):<9} {age(r.get('created_at')):>5}  {price:>6}")
    click.echo(f"source: {source}" + (" (one tag-filtered list request)" if source == "api" else ""), err=True)
    if any(r.get("live_status") == "vanished" for r in rows):
        click.echo("hint: vanished = tracked here but gone from the account; `lcai destroy --purge` forgets them", err=True)
    if any(r.get("untracked") for r in rows):
        click.echo("hint: untracked instances carry lcai tags but are not in this machine's registry; `lcai sync`",
                   err=True)


# ---------------------------------------------------------------- destroy


@click.command("destroy")
@click.argument("deployment_id", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--purge", is_flag=True, help="Forget registry entries whose instance is gone (no ID needed).")
def destroy(deployment_id: Optional[str], yes: bool, purge: bool) -> None:
    """Delete a deployment's instance, then its firewall (already-gone resources are fine), and forget it."""
    from .provider import firewall_label

    reg = _registry()
    prov = _provider()
    if not deployment_id:
        if not purge:
            raise InputError("give a deployment ID (see `lcai status`), or --purge to forget vanished ones")
        live = {i["id"] for i in prov.list_instances()}
        gone: list[str] = []

        def drop(deps: dict) -> None:
            for k in list(deps):
                r = deps[k]
                if r.get("linode_id") and r["linode_id"] not in live:
                    gone.append(k)
                    del deps[k]

        reg.transform(drop)
        click.echo(f"purged {len(gone)} vanished deployment(s)" + (f": {', '.join(sorted(gone))}" if gone else ""))
        return
    try:
        rec = reg.find(deployment_id)
    except InputError:
        found = prov.list_instances(deployment_id)
        if not found:
            raise
        inst = found[0]
        rec = {"deployment_id": deployment_id, "linode_id": inst["id"], "label": inst.get("label"), "untracked": True}
    dep_id = rec["deployment_id"]
    what = f"instance {rec.get('linode_id') or '?'} ({rec.get('label') or dep_id}) and firewall {firewall_label(dep_id)}"
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"destroy deletes {what}; confirm with --yes when not on a terminal")
        click.confirm(f"delete {what}?", abort=True, err=True)
    prov.destroy_deployment(rec, say=lambda m: click.echo(m, err=True))
    if not rec.get("untracked"):
        reg.remove(dep_id)
    if rec.get("directory"):
        state = Path(rec["directory"]) / ".linode" / "state.json"
        if state.is_file():
            state.unlink()
    click.echo(f"destroyed {dep_id}")


# ---------------------------------------------------------------- sync


@click.command("sync")
def sync() -> None:
    """Rebuild the registry from instance tags: adopt lcai instances this machine does not know, refresh known
    ones, mark vanished ones. A second machine sees the same deployments after a sync."""
    from lcai_core.registry import now_iso

    from .provider import by_deployment, firewall_label, parse_tags

    prov = _provider()
    live = prov.list_instances()
    counts = {"adopted": 0, "updated": 0, "vanished": 0}
    by_dep = by_deployment(live)
    firewalls = {}
    for dep in by_dep:
        fw = prov.find_firewall(firewall_label(dep))
        firewalls[dep] = fw["id"] if fw else None

    def apply(deps: dict) -> None:
        for dep, inst in by_dep.items():
            t = parse_tags(inst.get("tags") or [])
            fields = {"linode_id": inst["id"], "ipv4": (inst.get("ipv4") or [None])[0], "status": inst.get("status"),
                      "region": inst.get("region"), "type": inst.get("type"), "label": inst.get("label"),
                      "app": t.get("app"), "env": t.get("env"), "provider": "linode"}
            if firewalls.get(dep):
                fields["firewall_id"] = firewalls[dep]
            if dep in deps:
                deps[dep].update({k: v for k, v in fields.items() if v is not None}, updated_at=now_iso())
                counts["updated"] += 1
            else:
                deps[dep] = {"deployment_id": dep, "created_at": (inst.get("created") or now_iso()).rstrip("Z") + "Z",
                             "updated_at": now_iso(), "source": "sync", **fields}
                counts["adopted"] += 1
        for dep, rec in deps.items():
            if dep not in by_dep and rec.get("linode_id") and rec.get("status") != "vanished":
                rec["status"] = "vanished"
                rec["updated_at"] = now_iso()
                counts["vanished"] += 1

    _registry().transform(apply)
    click.echo(f"sync: {len(live)} instance(s) with lcai tags; adopted {counts['adopted']}, updated "
               f"{counts['updated']}, marked vanished {counts['vanished']}")
