"""`lcai deploy`: create a deployment with its provider, or redeploy (rebuild) the directory's live one.

Contract spellings: ``deploy --directory DIR --wait --yes``, ``--ssh-from CIDR``, ``--timeout S``,
``--app/--env/--region/--type``; added: ``--target NAME``, ``--new``, ``--app-from CIDR``, ``--replicas N``,
``--image ID``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import click

from ..errors import InputError, InterruptReported, LcaiError, TrackedError


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
def deploy(directory: Path, wait: bool, yes: bool, target, new: bool, app, env_name, region, type_, ssh_from,
           app_from, timeout, replicas=None, image=None) -> None:
    """Create the deployment (machine, firewall: SSH and the app's port only) and track it; in a directory
    whose deployment is live, show what changed and rebuild that machine with the new user data (same
    address). Renders the same user data as `lcai plan`."""
    from .. import ui

    import contextlib

    try:
        with ui.progress() as prog, contextlib.ExitStack() as held:  # held: the deployment's lock, once known
            _deploy(prog, directory, wait, yes, target, new, app, env_name, region, type_, ssh_from, app_from,
                    timeout, replicas, image, held=held)
    except KeyboardInterrupt as e:  # the step runner (or the wait) said what is left; before it, nothing exists
        if not isinstance(e, InterruptReported):
            click.echo("interrupted: nothing was created", err=True)
        raise click.exceptions.Exit(130) from None


def _deploy(prog, directory: Path, wait: bool, yes: bool, target: Optional[str], new: bool, app, env_name, region,
            type_, ssh_from, app_from, timeout, replicas: Optional[int] = None, image: Optional[str] = None,
            held=None) -> None:
    from .. import lifecycle as L
    from ..plugins import get_host
    from ..project import prepare
    from ..registry import Registry

    ssh_sources = L.parse_sources(ssh_from, "--ssh-from")
    app_sources = L.parse_sources(app_from, "--app-from")
    host = get_host()
    reg = Registry()
    live = None if new else L.read_state(directory)
    if live is not None:
        rec = reg.get(live["deployment_id"])
        if rec is None:
            raise InputError(f"{directory / L.STATE} names deployment {live['deployment_id']}, which this machine's "
                             "registry does not know",
                             hint="`lcai sync` adopts it (then deploy rebuilds it); "
                                  "`lcai deploy --new` creates another")
        if rec.get("status") == "vanished":
            raise InputError(f"deployment {rec['deployment_id']} of {directory} is gone from its provider",
                             hint=f"`lcai destroy {rec['deployment_id']} --yes` forgets it; then deploy again")
    p = prepare(directory, host, app=app, env_name=env_name, region=region, type_=type_, new=new, image=image,
                target=target or ((rec or {}).get("provider") if live is not None else None))
    ctx, tpl, c = p.ctx, p.template, p.template.container
    live_rec = reg.get(live["deployment_id"]) if live else None
    if live_rec and target and target != live_rec.get("provider"):
        raise InputError(f"{directory} is deployed on {live_rec.get('provider')} as {live_rec['deployment_id']}; "
                         f"--target {target} cannot rebuild it there",
                         hint=f"`lcai deploy --new --target {target}` creates another deployment")
    name = target or (live_rec or {}).get("provider") or tpl.deploy.target
    prov = L.provider_named(host, name)
    dep_id = ctx.deployment_id
    if held is not None:  # until deploy returns: a destroy (or another deploy) of dep_id meanwhile is refused
        from ..registry import deployment_lock

        held.enter_context(deployment_lock(dep_id, "deploy"))
    keys = L.ssh_public_keys()
    root_pass = L.random_root_password()
    health = health_of(c)
    n_replicas = _replicas_for(prov, live_rec, replicas, tpl, c, directory)
    spec = make_spec(p, host, directory, ssh_sources=ssh_sources, app_sources=app_sources, keys=keys,
                     root_pass=root_pass, replicas=n_replicas)
    deadline = time.monotonic() + (timeout if timeout is not None else L.health_budget(health) + 900)
    sizes = p.rendered.sizes()
    desired = {"template": tpl.name, "template_version": tpl.version, "image": ctx.image, "type": ctx.type,
               "region": ctx.region, "features": list(ctx.features), "runtime": tpl.capabilities.runtime,
               "container_image": c.image, "external_port": c.external_port, "internal_port": c.internal_port,
               "health": health, "rendered_sha256": L.sha256(p.rendered.text), "rendered_gzip_bytes": sizes["gzip"],
               "ssh_sources": list(ssh_sources), "app_sources": list(app_sources),
               "env_digest": env_digest(p.env, ctx.secret_seed)}

    if live is not None:
        rec = reg.get(dep_id)
        if rec is not None:
            _redeploy(prov, reg, rec, spec, desired, prog, wait, yes, deadline, directory, tpl,
                      _seed_of(Path(directory), dep_id, p))
            return

    from .. import ui

    for w in getattr(p.rendered, "warnings", ()):
        ui.warning(w)
    prog.say(f"preflight ({prov.name})")
    pre = prov.preflight(spec)
    click.echo(f"deploy {ctx.app_name} ({ctx.env}) as {spec.label} on {prov.name}: {pre.summary}, "
               f"{pre.price.describe()}", err=True)
    for note in pre.notes:
        click.echo(f"note: {note}", err=True)
    if prov.public_network:
        _exposure_warning(c, health, app_sources, spec.replicas)
    if not yes:
        prog.clear()
        L.confirm("create it?", "deploy creates billable resources")
    record = {"app": ctx.app_name, "env": ctx.env, "provider": prov.name, "label": spec.label, "status": "creating",
              "directory": str(directory.resolve()), "price_hourly": pre.price.hourly,
              "price_monthly": pre.price.monthly, "source": "deploy", "address": None, "provider_state": {},
              **desired, **({"replicas": spec.replicas} if spec.replicas > 1 else {})}
    reg.update(dep_id, create=True, **record)  # the intent, before anything is created
    prog.say(f"recorded deployment {dep_id} (creating)")
    # the runner's lines suggest commands (`lcai destroy ID`): spelt as the user runs lcai (linode-cli build)
    runner = L.StepRunner(reg, dep_id, lambda line: prog.say(ui.localize(line)), prov.name)
    runner.run(prov.create_steps(spec))
    rec = reg.update(dep_id, status=runner.record_fields.get("status") or "created")
    d = Path(directory)
    if not keys and prov.uses_root_password:
        from ..files import write_private

        write_private(d / L.ROOT_PASSWORD, root_pass + "\n")
    _write_directory(d, prov, rec, _seed_of(d, dep_id, p))
    if not keys and prov.uses_root_password:
        prog.say("no ~/.ssh/*.pub: root password saved to .linode/root-password (0600)")
    if wait:
        try:
            L.wait_ready(prov, reg, rec, prog, deadline)
        except LcaiError as e:
            raise _tracked(e, dep_id) from None
        except KeyboardInterrupt as e:
            click.echo(f"interrupted: deployment {dep_id} exists and is tracked "
                       f"(`{ui.cmd(f'status {dep_id}')}`, `{ui.cmd(f'destroy {dep_id}')}`)", err=True)
            raise InterruptReported() from e
        rec = reg.get(dep_id) or rec
    _summary(prov, rec, d, tpl)


def env_digest(env: dict, seed: bytes) -> list:
    """The app's environment as [NAME, digest] pairs, for the redeploy diff to name the variables that changed:
    each digest an HMAC of the value keyed with the deployment's secret seed (in the 0600 state file, never in
    the registry), so the registry holds no value nor anything that finds one. Pairs, not a mapping: the
    registry refuses keys that look like secrets (a variable may be called DB_PASSWORD)."""
    import hashlib
    import hmac

    return [[k, hmac.new(seed, f"{k}={v}".encode(), hashlib.sha256).hexdigest()[:16]] for k, v in sorted(env.items())]


def env_changes(old, new) -> Optional[str]:
    """``environment: A changed, B added, C removed`` between two ``env_digest`` lists (None: no change, or the
    old deployment did not record one)."""
    if not isinstance(old, list) or old == new:
        return None
    before, after = {k: d for k, d in old}, {k: d for k, d in new}
    words = ([f"{k} changed" for k in sorted(after) if k in before and before[k] != after[k]]
             + [f"{k} added" for k in sorted(set(after) - set(before))]
             + [f"{k} removed" for k in sorted(set(before) - set(after))])
    return f"environment: {', '.join(words)} (values not shown)" if words else None


def health_of(c) -> Optional[dict]:
    """The template's health settings as stored in the registry (and handed to providers in ``Spec.health``)."""
    if c.health is None:
        return None
    h = c.health
    return {"type": h.type, "path": h.path, "success_codes": list(h.success_codes),
            "timeout_seconds": h.timeout_seconds, "interval_seconds": h.interval_seconds,
            "initial_delay_seconds": h.initial_delay_seconds, "max_retries": h.max_retries}


def make_spec(p, host, directory: Path, *, ssh_sources, app_sources, keys, root_pass: str, replicas: int = 1):
    """The provider's ``Spec`` for a prepared deployment directory (deploy, redeploy, `lcai scale`)."""
    from .. import lifecycle as L
    from ..providers import Spec

    ctx, tpl, c = p.ctx, p.template, p.template.container
    dep_id = ctx.deployment_id
    resolved = host.catalog.resolve(tpl)
    gpu = any(getattr(r.capability, "requires_gpu", False) for r in resolved)
    return Spec(
        deployment_id=dep_id, app=ctx.app_name, env=ctx.env,
        label=L.instance_label(ctx.app_name, ctx.env, dep_id),
        tags=tuple(L.deployment_tags(dep_id, ctx.app_name, ctx.env) + list(tpl.deploy.linode.tags)),
        region=ctx.region, type=ctx.type, image=ctx.image, user_data=p.rendered.text,
        user_data_b64=p.rendered.user_data_b64, app_ports=(c.external_port,) if c.external_port else (),
        ssh_sources=tuple(ssh_sources), app_sources=tuple(app_sources), ssh_keys=tuple(keys), root_password=root_pass,
        features=tuple(ctx.features), gpu=gpu, external_port=c.external_port, directory=str(Path(directory).resolve()),
        replicas=replicas, health=health_of(c), supported_images=_supported_images(resolved))


def _supported_images(resolved) -> Optional[tuple[str, ...]]:
    """The Linode images every capability of the template supports (None: no capability limits them)."""
    out: Optional[list[str]] = None
    for r in resolved:
        if r.capability.images is not None:
            out = [i for i in (out if out is not None else r.capability.images) if i in r.capability.images]
    return tuple(out) if out is not None else None


def _replicas_for(prov, live_rec: Optional[dict], flag: Optional[int], tpl, c, directory: Path) -> int:
    """How many replicas a create asks for (``--replicas``, else ``deploy.linode.replicas``); a redeploy keeps
    what runs (`lcai scale` changes it) and refuses to turn one instance into replicas."""
    if live_rec is not None:
        running = live_rec.get("replicas")
        wanted = flag or tpl.deploy.linode.replicas
        if running is None and wanted > 1:
            raise InputError(f"deployment {live_rec['deployment_id']} of {directory} is one instance; replicas run "
                             "behind a NodeBalancer at a new address, which a redeploy cannot add",
                             hint="`lcai deploy --new` creates the replicated deployment (then destroy the old "
                                  "one), or set replicas: 1 to redeploy this one")
        if running is not None and flag is not None and flag != running:
            raise InputError(f"deployment {live_rec['deployment_id']} runs {running} replicas; a redeploy keeps "
                             "the count", hint=f"`lcai scale {live_rec['deployment_id']} {flag}` changes it")
        return int(running or 1)
    n = flag or tpl.deploy.linode.replicas
    if n > 1 and not getattr(prov, "supports_replicas", False):
        raise InputError(f"provider {prov.name} cannot run replicas ({n} asked)",
                         hint="deploy one replica (--replicas 1), or use a provider that supports them (linode)")
    if n > 1 and not c.external_port:
        raise InputError(f"--replicas {n}: replicas need a public port (deploy.linode.container.external_port) "
                         "for the NodeBalancer to serve")
    return n


def _seed_of(d: Path, dep_id: str, p) -> str:
    """The secret seed the user data was rendered with (from the pending plan or the live state)."""
    import json

    from ..lifecycle import read_state
    from ..project import PENDING

    for path in (d / PENDING,):
        try:
            data = json.loads(path.read_text())
            if data.get("deployment_id") == dep_id:
                return data["secret_seed"]
        except (OSError, ValueError):
            pass
    st = read_state(d)
    if st and st.get("deployment_id") == dep_id and st.get("secret_seed"):
        return st["secret_seed"]
    raise LcaiError(f"internal: the secret seed of deployment {dep_id} was lost")


def _write_directory(d: Path, prov, rec: dict, seed: str) -> None:
    """What a deployment directory keeps of its deployment: the state (0600, with the secret seed), the link
    (no secrets), connect.sh; the pending plan is used up."""
    from .. import lifecycle as L
    from ..project import PENDING

    L.write_state(d, {"deployment_id": rec["deployment_id"], "provider": prov.name, "secret_seed": seed,
                      "label": rec.get("label"), "app": rec.get("app"), "env": rec.get("env"),
                      "region": rec.get("region"), "type": rec.get("type"), "address": rec.get("address"),
                      "external_port": rec.get("external_port"), "created_at": rec.get("created_at")})
    try:
        (d / PENDING).unlink()
    except FileNotFoundError:
        pass
    _write_connect(d, prov, rec)


def _write_connect(d: Path, prov, rec: dict) -> None:
    ssh = prov.ssh(rec)
    if ssh is None:
        return
    import shlex

    argv = ssh.argv("", connect_timeout=10)[:-1]
    connect = d / "connect.sh"
    connect.write_text(f"#!/bin/sh\n# ssh to {rec.get('label')} (deployment {rec['deployment_id']})\n"
                       f"exec {' '.join(shlex.quote(a) for a in argv)} \"$@\"\n")
    connect.chmod(0o755)


def _exposure_warning(c, health, app_sources, replicas: int = 1) -> None:
    from ..lifecycle import ANYWHERE

    if c.external_port and tuple(app_sources) == ANYWHERE:
        if replicas > 1:  # the NodeBalancer serves everyone: --app-from is refused with replicas
            click.echo(f"note: port {c.external_port} (plain HTTP) will be open to the whole internet at the "
                       "NodeBalancer (replicas cannot limit who reaches it; one instance can, with --app-from)",
                       err=True)
            return
        click.echo(f"note: port {c.external_port} (plain HTTP) will be open to the whole internet; "
                   "--app-from CIDR limits who can reach it", err=True)


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
        click.echo(f"  {ssh.describe()}   (or {d / 'connect.sh'})")
    click.echo("  " + "   ·   ".join(ui.cmd(f"{c} {dep_id}") for c in ("status", "logs", "destroy")))
    host_port = (f"{ep.host}" if ep.port == 80 else f"{ep.host}:{ep.port}") if ep else str(addr)
    for ex in tpl.guidance.examples[:3]:
        click.echo(f"  # {ex.description}: {ex.command.replace('{host}', host_port)}")


# ---------------------------------------------------------------- redeploy = rebuild


def _redeploy(prov, reg, rec: dict, spec, desired: dict, prog, wait: bool, yes: bool, deadline: float,
              directory: Path, tpl, seed: str) -> None:
    from .. import lifecycle as L
    from .. import ui

    dep_id = rec["deployment_id"]
    changes = []
    labels = {"template_version": "template version", "container_image": "container image", "image": "image",
              "features": "capabilities", "runtime": "runtime", "external_port": "public port",
              "internal_port": "app port", "health": "health check", "ssh_sources": "--ssh-from",
              "app_sources": "--app-from"}
    for key, label in labels.items():
        if key in rec and rec.get(key) != desired.get(key):
            changes.append(f"{label}: {_fmt(rec.get(key))} -> {_fmt(desired.get(key))}")
    env_line = env_changes(rec.get("env_digest"), desired.get("env_digest"))
    if env_line:
        changes.append(env_line)
    if rec.get("template") and rec["template"] != desired["template"]:
        changes.insert(0, f"template: {rec['template']} -> {desired['template']}")
    for key in ("region", "type"):
        if rec.get(key) and rec[key] != desired[key]:
            raise InputError(f"deployment {dep_id} runs in {key} {rec[key]}; a rebuild cannot change it to "
                             f"{desired[key]}", hint="`lcai deploy --new` creates another deployment there")
    same = rec.get("rendered_sha256") == desired["rendered_sha256"]
    if same and not changes:
        click.echo(f"deployment {dep_id}: nothing changed (same user data); nothing to do", err=True)
        if wait:
            L.wait_ready(prov, reg, dict(rec), prog, deadline)
        _summary(prov, reg.get(dep_id) or rec, Path(directory), tpl)
        return
    if not same:
        changes.append(f"user data: {rec.get('rendered_gzip_bytes', '?')} -> {desired['rendered_gzip_bytes']} "
                       "bytes gzip, content changed")
    if rec.get("replicas") is not None and getattr(prov, "supports_replicas", False):
        _rollout(prov, reg, rec, spec, desired, changes, prog, wait, yes, deadline, directory, tpl, seed)
        return
    click.echo(f"redeploy {dep_id} ({prov.name}, {rec.get('label')}) at {rec.get('address')}: rebuild the same "
               "machine with the new user data (its disk is replaced; address and firewall stay)", err=True)
    for line in changes:
        click.echo(f"  {line}", err=True)
    if not yes:
        prog.clear()
        L.confirm("rebuild it?", "redeploy rebuilds the machine (its disk is replaced)")
    prog.say(f"rebuilding deployment {dep_id}")
    reg.update(dep_id, status="rebuilding")
    try:
        fields = prov.rebuild(rec, spec, prog.say) or {}
    except KeyboardInterrupt as e:
        click.echo(f"interrupted: deployment {dep_id} is tracked; the rebuild may or may not have started — "
                   f"run `{ui.cmd('deploy')}` again to rebuild it", err=True)
        reg.update(dep_id, status="rebuild interrupted")
        raise InterruptReported() from e
    except LcaiError as e:
        reg.update(dep_id, status="rebuild failed")
        raise LcaiError(f"rebuild of deployment {dep_id} failed: {e.message}",
                        hint=f"it is still tracked (`lcai status {dep_id}`); "
                             "run `lcai deploy` again to retry") from None
    if not spec.ssh_keys and prov.uses_root_password:
        from ..files import write_private

        write_private(Path(directory) / L.ROOT_PASSWORD, spec.root_password + "\n")
        prog.say("no ~/.ssh/*.pub: the new root password is in .linode/root-password (0600)")
    state = dict(rec.get("provider_state") or {})
    state.update({k: v for k, v in fields.items() if k not in L.RECORD_FIELDS})
    rec = reg.update(dep_id, provider_state=state, status=fields.get("status") or "rebuilding",
                     health_status=None, health_detail=None, rebuilt_at=_now(),
                     **{k: v for k, v in fields.items() if k == "address"}, **desired)
    prog.say(f"rebuild started ({len(changes)} change{'s' if len(changes) != 1 else ''})")
    _write_directory(Path(directory), prov, rec, seed)
    if wait:
        try:
            L.wait_ready(prov, reg, dict(rec), prog, deadline)
        except LcaiError as e:
            raise _tracked(e, dep_id) from None
        except KeyboardInterrupt as e:
            click.echo(f"interrupted: deployment {dep_id} is rebuilding and tracked (`{ui.cmd(f'status {dep_id}')}`)",
                       err=True)
            raise InterruptReported() from e
        rec = reg.get(dep_id) or rec
    _summary(prov, rec, Path(directory), tpl)


def _rollout(prov, reg, rec: dict, spec, desired: dict, changes: list, prog, wait: bool, yes: bool,
             deadline: float, directory: Path, tpl, seed: str) -> None:
    """Rolling redeploy of a replicated deployment: the provider takes one replica at a time out of rotation,
    rebuilds it, waits until healthy and puts it back; a replica that fails stops the rollout."""
    import attrs

    from .. import lifecycle as L
    from .. import ui

    dep_id = rec["deployment_id"]
    n = len((rec.get("provider_state") or {}).get("replicas") or [])
    if rec.get("external_port") and desired.get("external_port") != rec.get("external_port"):
        raise InputError(f"deployment {dep_id} serves port {rec['external_port']} through its NodeBalancer; a rolling "
                         f"redeploy cannot move it to {desired.get('external_port')}",
                         hint="keep external_port, or `lcai deploy --new` (then destroy the old deployment)")
    click.echo(f"redeploy {dep_id} ({prov.name}) at {rec.get('address')}: rolling, one replica of {n} at a time "
               "(drain at the NodeBalancer, rebuild with the new user data, wait until healthy, accept again); the "
               "others keep serving", err=True)
    for line in changes:
        click.echo(f"  {line}", err=True)
    if not yes:
        prog.clear()
        L.confirm("roll it out?", "a redeploy rebuilds each replica (its disk is replaced)")
    pw_file = Path(directory) / L.ROOT_PASSWORD
    if not spec.ssh_keys and pw_file.is_file():  # one root password for every replica
        spec = attrs.evolve(spec, root_password=pw_file.read_text().strip())
    reg.update(dep_id, status="rolling out")
    state = dict(rec.get("provider_state") or {})

    def save(fields: dict) -> None:
        state.update(fields)
        reg.update(dep_id, provider_state=dict(state))

    try:
        fields = prov.rollout(rec, spec, prog.say, deadline, save) or {}
    except KeyboardInterrupt as e:
        click.echo(f"interrupted: deployment {dep_id} is tracked; run `{ui.cmd('deploy')}` again to resume the "
                   "rollout (replicas already healthy on the new version are skipped)", err=True)
        reg.update(dep_id, status="rollout interrupted", rendered_sha256=None)  # replicas may differ now
        raise InterruptReported() from e
    except LcaiError as e:
        reg.update(dep_id, status="rollout stopped", health_status=None, health_detail=None,
                   rendered_sha256=None)  # replicas run different versions: the next deploy rolls out again
        _record_balancer_health(prov, reg, dep_id)
        if not isinstance(e, TrackedError):  # the provider's own error says how to resume or roll back
            e.hint = (f"{e.hint}; " if e.hint else "") + (
                f"deployment {dep_id} is tracked; run `lcai deploy` again to resume the rollout, or put the "
                "previous deploy.yml back and run `lcai deploy` to roll back")
        raise
    if not spec.ssh_keys and not pw_file.is_file():
        from ..files import write_private

        write_private(pw_file, spec.root_password + "\n")
    state.update({k: v for k, v in fields.items() if k not in L.RECORD_FIELDS})
    rec = reg.update(dep_id, provider_state=dict(state), status="running", health_status="healthy",
                     health_detail=f"healthy {n}/{n} (each UP at the NodeBalancer after its rebuild)",
                     health_source="nodebalancer", replicas_healthy=n, rebuilt_at=_now(), **desired)
    prog.say(f"rollout done: {n} replica(s) on the new version")
    _write_directory(Path(directory), prov, rec, seed)
    if wait:
        try:
            L.wait_ready(prov, reg, dict(rec), prog, deadline)
        except LcaiError as e:
            raise _tracked(e, dep_id) from None
        rec = reg.get(dep_id) or rec
    _summary(prov, rec, Path(directory), tpl)


def _record_balancer_health(prov, reg, dep_id: str) -> None:
    """Best effort: the load balancer's view (``healthy k/N``) into the registry, for `lcai status`."""
    rec = reg.get(dep_id)
    if rec is None:
        return
    try:
        res = prov.health(rec)
    except Exception:  # reporting the failure that stopped the rollout matters more
        return
    if res is not None:
        reg.update(dep_id, health_status=res.word(), health_detail=res.detail, health_source=res.source,
                   replicas_healthy=rec.get("replicas_healthy"))


def _tracked(e: LcaiError, dep_id: str) -> LcaiError:
    """A failure after the deployment exists: say it is still tracked and how to go on."""
    if not isinstance(e, TrackedError):
        e.hint = (f"{e.hint}; " if e.hint else "") + (f"deployment {dep_id} is tracked: `lcai status {dep_id}`; "
                                                      "run `lcai deploy` again to retry (it rebuilds the machine)")
    return e


def _fmt(v) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "(none)"
    if isinstance(v, dict):
        return ", ".join(f"{k}={v[k]}" for k in sorted(v) if v[k] is not None)
    return str(v)


def _now() -> str:
    from ..registry import now_iso

    return now_iso()
