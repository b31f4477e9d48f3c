"""The plan step of `lcai deploy` (and `lcai plan`): ``DeployOptions`` -> ``DeployPlan``. Reads the deployment
directory once (its state, deploy.yml, .env), resolves the capabilities once, renders the user data, builds the
provider's ``Spec``, asks the provider's preflight (summary, price), and for a directory whose deployment is
live, says what a redeploy changes. Nothing is created, rebuilt or written to the registry here; every refusal
(a region that cannot change, replicas a provider lacks, a port a rollout cannot move) happens here, before the
user is asked anything.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from pathlib import Path
from typing import Any, Optional

from attrs import define, field

from ..errors import InputError
from ..project import Prepared
from ..conventions import volume_label
from ..providers import Preflight, Price, Provider, Spec, VolumeSpec


class Kind(str, enum.Enum):
    """What applying a deploy plan does."""

    CREATE = "create"          # a new deployment: the provider's create steps
    REBUILD = "rebuild"        # the live single instance rebuilt with the new user data (same address)
    ROLLOUT = "rollout"        # the live replicas rebuilt one at a time behind their load balancer
    FIREWALL = "firewall"      # only who may connect changed: the firewall updated in place, the machine untouched
    UNCHANGED = "unchanged"    # the live deployment already runs this user data: nothing to do


@define(frozen=True)
class DeployOptions:
    """`lcai deploy`'s options, as any front end gives them (``None``: the template's or the live one's)."""

    directory: Path = Path(".")
    target: Optional[str] = None
    new: bool = False
    app: Optional[str] = None
    env_name: Optional[str] = None
    region: Optional[str] = None
    type: Optional[str] = None
    image: Optional[str] = None
    ssh_from: tuple[str, ...] = ()
    app_from: tuple[str, ...] = ()
    replicas: Optional[int] = None
    wait: bool = False
    timeout: Optional[float] = None  # with wait: seconds (default: the health budget + 15 min)
    max_hourly: Optional[float] = None  # refuse a create that costs more per hour (default: the template's)


@define
class DeployPlan:
    """Everything apply needs, decided: what it will do (``kind``), to which machine, with which user data.
    ``lines`` is what to show the user before asking (``question``/``consequence``; none for ``UNCHANGED``)."""

    options: DeployOptions
    kind: Kind
    prepared: Prepared
    provider: Provider
    spec: Spec
    desired: dict[str, Any]
    live: Optional[dict[str, Any]] = None      # the live deployment's record (redeploys)
    changes: tuple[str, ...] = ()               # what a redeploy changes, one line each
    preflight: Optional[Preflight] = None      # creates: the provider's summary and price
    lines: tuple[str, ...] = ()
    question: str = ""
    consequence: str = ""
    warnings: tuple[str, ...] = field(factory=tuple)
    firewall: bool = False                      # redeploys: the firewall's rules change (applied in place first)
    settle: bool = False                        # UNCHANGED: record a rebuild that was accepted but not recorded
    restart: bool = False                       # CREATE of a stopped deployment (`lcai start`)

    @property
    def deployment_id(self) -> str:
        return self.spec.deployment_id

    @property
    def wait_seconds(self) -> float:
        from ..lifecycle import health_budget

        t = self.options.timeout
        return t if t is not None else health_budget(self.spec.health) + 900


# ---------------------------------------------------------------- the plan step


def plan_deploy(host: Any, registry: Any, opts: DeployOptions, say: Any = None) -> DeployPlan:
    """Decide what `lcai deploy` does in ``opts.directory`` (see the module). ``say`` gets progress lines."""
    from .. import lifecycle as L
    from ..project import prepare

    ssh_sources = L.parse_sources(opts.ssh_from, "--ssh-from")
    app_sources = L.parse_sources(opts.app_from, "--app-from")
    directory = opts.directory
    state = None if opts.new else L.read_state(directory)
    live = _live_record(registry, state, directory) if state is not None else None
    if live is not None:  # a flag left out keeps what the live deployment lets in (not: open it to everyone)
        if not opts.ssh_from and live.get("ssh_sources"):
            ssh_sources = tuple(live["ssh_sources"])
        if not opts.app_from and live.get("app_sources"):
            app_sources = tuple(live["app_sources"])
    if live is not None and opts.target and opts.target != live.get("provider"):
        raise InputError(f"{directory} is deployed on {live.get('provider')} as {live['deployment_id']}; "
                         f"--target {opts.target} cannot rebuild it there",
                         hint=f"`lcai deploy --new --target {opts.target}` creates another deployment")
    p = prepare(directory, host, app=opts.app, env_name=opts.env_name, region=opts.region, type_=opts.type,
                new=opts.new, image=opts.image, target=opts.target or (live or {}).get("provider"), state=state)
    tpl, c = p.template, p.template.container
    prov = L.provider_named(host, opts.target or (live or {}).get("provider") or tpl.deploy.target)
    keys = L.ssh_public_keys()
    n_replicas = _replicas_for(prov, live, opts.replicas, tpl, c, directory, p.resolved)
    spec = make_spec(p, directory, ssh_sources=ssh_sources, app_sources=app_sources, keys=keys,
                     root_pass=L.random_root_password(), replicas=n_replicas)
    if spec.volumes and type(prov).delete_volumes is Provider.delete_volumes:
        raise InputError(f"provider {prov.name} has no volumes (deploy.linode.volumes)",
                         hint="deploy to linode, or remove deploy.linode.volumes to try it without them")
    desired = _desired(p, spec)
    if live is None:
        return _create_plan(opts, p, prov, spec, desired, say)
    if live.get("status") == "stopped":  # `lcai start`: the same deployment created again, its volumes attached
        return _create_plan(opts, p, prov, spec, desired, say, restart=True)
    return _redeploy_plan(opts, p, prov, spec, desired, live)


def _live_record(registry: Any, state: dict[str, Any], directory: Path) -> dict[str, Any]:
    from ..lifecycle import STATE

    dep = state["deployment_id"]
    rec = registry.get(dep)
    if rec is None:
        raise InputError(f"{directory / STATE} names deployment {dep}, which this machine's registry does not know",
                         hint="`lcai sync` adopts it (then deploy rebuilds it); `lcai deploy --new` creates another")
    if rec.get("status") == "vanished":
        raise InputError(f"deployment {dep} of {directory} is gone from its provider",
                         hint=f"`lcai destroy {dep} --yes` forgets it; then deploy again")
    return dict(rec)


def _desired(p: Prepared, spec: Spec) -> dict[str, Any]:
    """What the registry records of the deployment as rendered (the next redeploy compares against it)."""
    from ..lifecycle import sha256

    ctx, tpl, c = p.ctx, p.template, p.template.container
    return {"template": tpl.name, "template_version": tpl.version, "image": ctx.image, "type": ctx.type,
            "region": ctx.region, "features": list(ctx.features), "runtime": tpl.capabilities.runtime,
            "container_image": c.image, "external_port": c.external_port, "internal_port": c.internal_port,
            "health": spec.health, "rendered_sha256": sha256(p.rendered.text),
            "rendered_gzip_bytes": len(p.rendered.gzipped), "ssh_sources": list(spec.ssh_sources),
            "app_sources": list(spec.app_sources), "env_digest": env_digest(p.env, p.ctx.secret_seed),
            **({"volumes": [{"name": v.name, "label": v.label, "size_gb": v.size_gb, "mount": v.mount}
                            for v in spec.volumes]} if spec.volumes else {})}


def _create_plan(opts: DeployOptions, p: Prepared, prov: Provider, spec: Spec, desired: dict[str, Any],
                 say: Any, restart: bool = False) -> DeployPlan:
    from ..lifecycle import ANYWHERE

    if say is not None:
        say(f"preflight ({prov.name})")
    pre = prov.preflight(spec)
    _check_ceiling(pre.price, opts.max_hourly or p.template.deploy.linode.max_hourly,
                   "--max-hourly" if opts.max_hourly else "deploy.linode.max_hourly")
    ctx = p.ctx
    lines = [("start the stopped deployment " + spec.deployment_id + f" again ({ctx.app_name}, {ctx.env}) on "
              if restart else f"deploy {ctx.app_name} ({ctx.env}) as {spec.label} on ")
             + f"{prov.name}: {pre.summary}, {pre.price.describe()}"]
    lines += [f"note: {n}" for n in pre.notes]
    port = p.template.container.external_port
    if prov.public_network and port and tuple(spec.app_sources) == ANYWHERE:
        if spec.replicas > 1:  # the NodeBalancer serves everyone: --app-from is refused with replicas
            lines.append(f"note: port {port} (plain HTTP) will be open to the whole internet at the NodeBalancer "
                         "(replicas cannot limit who reaches it; one instance can, with --app-from)")
        else:
            lines.append(f"note: port {port} (plain HTTP) will be open to the whole internet; "
                         "--app-from CIDR limits who can reach it")
    return DeployPlan(opts, Kind.CREATE, p, prov, spec, desired, preflight=pre, lines=tuple(lines),
                      question="start it?" if restart else "create it?",
                      consequence="start creates billable resources" if restart else "deploy creates billable "
                                                                                     "resources",
                      warnings=tuple(getattr(p.rendered, "warnings", ())), restart=restart)


def _check_ceiling(price: Price, ceiling: Optional[float], source: str) -> None:
    """A price ceiling refuses a create that costs more per hour (or whose price the provider cannot tell)."""
    if ceiling is None:
        return
    if price.hourly is None:
        raise InputError(f"{source} {ceiling}: the provider does not say what this deployment costs, so the "
                         "ceiling cannot be checked", hint=f"remove {source} to deploy without it")
    if price.hourly > ceiling:
        raise InputError(f"this deployment costs ${price.hourly}/h, more than {source} ${ceiling}/h; nothing was "
                         "created", hint="pick a smaller --type, fewer replicas, or raise the ceiling")


REDEPLOY_LABELS = {"template_version": "template version", "container_image": "container image", "image": "image",
                   "features": "capabilities", "runtime": "runtime", "external_port": "public port",
                   "internal_port": "app port", "health": "health check", "ssh_sources": "--ssh-from",
                   "app_sources": "--app-from"}


#: record fields the firewall's rules are made of: a change of only these is applied in place
FIREWALL_KEYS = ("ssh_sources", "app_sources", "external_port")


def can_update_firewall(prov: Provider) -> bool:
    return type(prov).update_firewall is not Provider.update_firewall


def redeploy_changes(rec: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """What differs between the live record and the new rendering, one line each (values of the environment
    never shown); refuses what a rebuild cannot change (region, type)."""
    dep_id = rec["deployment_id"]
    changes = [f"{label}: {_fmt(rec.get(key))} -> {_fmt(desired.get(key))}"
               for key, label in REDEPLOY_LABELS.items() if key in rec and rec.get(key) != desired.get(key)]
    env_line = env_changes(rec.get("env_digest"), desired.get("env_digest"))
    if env_line:
        changes.append(env_line)
    if rec.get("template") and rec["template"] != desired["template"]:
        changes.insert(0, f"template: {rec['template']} -> {desired['template']}")
    old_vols = {v.get("name"): v for v in rec.get("volumes") or []}
    new_vols = {v["name"]: v for v in desired.get("volumes") or []}
    for name, v in old_vols.items():
        if name not in new_vols:
            raise InputError(f"deployment {dep_id} has volume {name!r} ({v.get('size_gb')} GB), which deploy.yml no "
                             "longer lists: a redeploy never drops a volume",
                             hint=f"keep it in deploy.linode.volumes; `lcai destroy {dep_id} --volumes` deletes "
                                  "the deployment and its volumes")
        if new_vols[name]["mount"] != v.get("mount"):
            raise InputError(f"volume {name!r} of deployment {dep_id} is mounted at {v.get('mount')}; a redeploy "
                             f"cannot move it to {new_vols[name]['mount']}", hint="keep its mount")
        old_size, new_size = v.get("size_gb") or 0, new_vols[name]["size_gb"]
        if new_size < old_size:
            raise InputError(f"volume {name!r} of deployment {dep_id} is {old_size} GB; a volume never shrinks "
                             f"({new_size} GB asked)", hint=f"keep size_gb: {old_size} (or more, to grow it)")
        if new_size > old_size:
            changes.append(f"volume {name}: {old_size} GB -> {new_size} GB (grown before the machine boots; its "
                           "filesystem grows at boot, the data kept; it can never shrink again)")
    added = [f"{n} ({v['size_gb']} GB at {v['mount']})" for n, v in new_vols.items() if n not in old_vols]
    if added:
        changes.append("volumes: new " + ", ".join(added))
    for key in ("region", "type"):
        if rec.get(key) and rec[key] != desired[key]:
            raise InputError(f"deployment {dep_id} runs in {key} {rec[key]}; a rebuild cannot change it to "
                             f"{desired[key]}", hint="`lcai deploy --new` creates another deployment there")
    return changes


def _redeploy_plan(opts: DeployOptions, p: Prepared, prov: Provider, spec: Spec, desired: dict[str, Any],
                   rec: dict[str, Any]) -> DeployPlan:
    import attrs

    from ..lifecycle import ROOT_PASSWORD

    dep_id = rec["deployment_id"]
    changes = redeploy_changes(rec, desired)
    same = rec.get("rendered_sha256") == desired["rendered_sha256"]
    if same and not changes:
        return DeployPlan(opts, Kind.UNCHANGED, p, prov, spec, desired, live=rec,
                          lines=(f"deployment {dep_id}: nothing changed (same user data); nothing to do",))
    if rec.get("status") == "rebuilding" and rec.get("rebuild_sha256") == desired["rendered_sha256"]:
        return DeployPlan(opts, Kind.UNCHANGED, p, prov, spec, desired, live=rec, settle=True, lines=(
            f"deployment {dep_id}: a rebuild with this user data was accepted before, but its record was not "
            "written; recording it now (no second rebuild: its disk is not wiped again)",))
    firewall = any(k in rec and rec.get(k) != desired.get(k) for k in FIREWALL_KEYS)
    if firewall and not can_update_firewall(prov):
        raise InputError(f"provider {prov.name} cannot change the firewall of deployment {dep_id} in place "
                         "(--ssh-from, --app-from or the public port changed)",
                         hint="keep them as they are, or `lcai deploy --new` creates another deployment")
    only_firewall = same and all(c.startswith(tuple(f"{REDEPLOY_LABELS[k]}:" for k in FIREWALL_KEYS))
                                 for c in changes)
    if only_firewall:
        head = (f"redeploy {dep_id} ({prov.name}, {rec.get('label')}) at {rec.get('address')}: same user data; "
                "update its firewall in place (the machine is not rebuilt, nothing on it is lost)")
        return DeployPlan(opts, Kind.FIREWALL, p, prov, spec, desired, live=rec, changes=tuple(changes),
                          lines=(head, *(f"  {c}" for c in changes)), question="update the firewall?",
                          consequence="redeploy changes who can reach the machine", firewall=True)
    if not same:
        changes.append(f"user data: {rec.get('rendered_gzip_bytes', '?')} -> {desired['rendered_gzip_bytes']} "
                       "bytes gzip, content changed")
    if not (rec.get("replicas") is not None and getattr(prov, "supports_replicas", False)):
        kept = ", ".join(f"volume {v.get('name')}, {v.get('size_gb')} GB" for v in rec.get("volumes") or [])
        head = (f"redeploy {dep_id} ({prov.name}, {rec.get('label')}) at {rec.get('address')}: rebuild the same "
                "machine with the new user data (its disk is replaced; address and firewall stay"
                + (f"; kept: {kept}" if kept else "") + ")")
        return DeployPlan(opts, Kind.REBUILD, p, prov, spec, desired, live=rec, changes=tuple(changes),
                          lines=(head, *(f"  {c}" for c in changes)), question="rebuild it?",
                          consequence="redeploy rebuilds the machine (its disk is replaced)", firewall=firewall)
    if rec.get("external_port") and desired.get("external_port") != rec.get("external_port"):
        raise InputError(f"deployment {dep_id} serves port {rec['external_port']} through its NodeBalancer; a rolling "
                         f"redeploy cannot move it to {desired.get('external_port')}",
                         hint="keep external_port, or `lcai deploy --new` (then destroy the old deployment)")
    n = len((rec.get("provider_state") or {}).get("replicas") or [])
    head = (f"redeploy {dep_id} ({prov.name}) at {rec.get('address')}: rolling, one replica of {n} at a time "
            "(drain at the NodeBalancer, rebuild with the new user data, wait until healthy, accept again); the "
            "others keep serving")
    pw_file = Path(opts.directory) / ROOT_PASSWORD
    if not spec.ssh_keys and pw_file.is_file():  # one root password for every replica
        spec = attrs.evolve(spec, root_password=pw_file.read_text().strip())
    return DeployPlan(opts, Kind.ROLLOUT, p, prov, spec, desired, live=rec, changes=tuple(changes),
                      lines=(head, *(f"  {c}" for c in changes)), question="roll it out?",
                      consequence="a redeploy rebuilds each replica (its disk is replaced)", firewall=firewall)


# ---------------------------------------------------------------- the provider's Spec


def make_spec(p: Prepared, directory: Path, *, ssh_sources: Any, app_sources: Any, keys: Any, root_pass: str,
              replicas: int = 1) -> Spec:
    """The provider's ``Spec`` for a prepared deployment directory (deploy, redeploy, `lcai scale`)."""
    from .. import lifecycle as L

    ctx, tpl, c = p.ctx, p.template, p.template.container
    dep_id = ctx.deployment_id
    gpu = any(getattr(r.capability, "requires_gpu", False) for r in p.resolved)
    return Spec(
        deployment_id=dep_id, app=ctx.app_name, env=ctx.env,
        label=L.instance_label(ctx.app_name, ctx.env, dep_id),
        tags=tuple(L.deployment_tags(dep_id, ctx.app_name, ctx.env) + list(tpl.deploy.linode.tags)),
        region=ctx.region, type=ctx.type, image=ctx.image, user_data=p.rendered.text,
        user_data_b64=p.rendered.user_data_b64, app_ports=(c.external_port,) if c.external_port else (),
        ssh_sources=tuple(ssh_sources), app_sources=tuple(app_sources), ssh_keys=tuple(keys), root_password=root_pass,
        features=tuple(ctx.features), gpu=gpu, external_port=c.external_port, directory=str(Path(directory).resolve()),
        replicas=replicas, health=health_of(c), supported_images=supported_images(p.resolved),
        volumes=tuple(VolumeSpec(v.name, volume_label(ctx.app_name, ctx.env, v.name), v.size_gb, v.mount)
                      for v in tpl.deploy.linode.volumes))


def health_of(c: Any) -> Optional[dict[str, Any]]:
    """The template's health settings as stored in the registry (and handed to providers in ``Spec.health``)."""
    if c.health is None:
        return None
    h = c.health
    return {"type": h.type, "path": h.path, "success_codes": list(h.success_codes),
            "timeout_seconds": h.timeout_seconds, "interval_seconds": h.interval_seconds,
            "initial_delay_seconds": h.initial_delay_seconds, "max_retries": h.max_retries}


def supported_images(resolved: Any) -> Optional[tuple[str, ...]]:
    """The Linode images every capability of the template supports (None: no capability limits them)."""
    out: Optional[list[str]] = None
    for r in resolved:
        if r.capability.images is not None:
            out = [i for i in (out if out is not None else r.capability.images) if i in r.capability.images]
    return tuple(out) if out is not None else None


def _replicas_for(prov: Provider, live_rec: Optional[dict[str, Any]], flag: Optional[int], tpl: Any, c: Any,
                  directory: Path, resolved: Any = ()) -> int:
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
    n: int = flag or tpl.deploy.linode.replicas
    if n > 1:
        from ..capabilities import replicas_refusal

        for r in resolved:
            if getattr(r.capability, "keeps_data", False):
                raise InputError(f"--replicas {n}: " + replicas_refusal(r.name, n))
    if n > 1 and not getattr(prov, "supports_replicas", False):
        raise InputError(f"provider {prov.name} cannot run replicas ({n} asked)",
                         hint="deploy one replica (--replicas 1), or use a provider that supports them (linode)")
    if n > 1 and not c.external_port:
        raise InputError(f"--replicas {n}: replicas need a public port (deploy.linode.container.external_port) "
                         "for the NodeBalancer to serve")
    return n


# ---------------------------------------------------------------- the environment, compared without values


def env_digest(env: dict[str, str], seed: bytes) -> list[list[str]]:
    """The app's environment as [NAME, digest] pairs, for the redeploy diff to name the variables that changed:
    each digest an HMAC of the value keyed with the deployment's secret seed (in the 0600 state file, never in
    the registry), so the registry holds no value nor anything that finds one. Pairs, not a mapping: the
    registry refuses keys that look like secrets (a variable may be called DB_PASSWORD)."""
    return [[k, hmac.new(seed, f"{k}={v}".encode(), hashlib.sha256).hexdigest()[:16]] for k, v in sorted(env.items())]


def env_changes(old: Any, new: Any) -> Optional[str]:
    """``environment: A changed, B added, C removed`` between two ``env_digest`` lists (None: no change, or the
    old deployment did not record one)."""
    if not isinstance(old, list) or old == new:
        return None
    before, after = {k: d for k, d in old}, {k: d for k, d in new}
    words = ([f"{k} changed" for k in sorted(after) if k in before and before[k] != after[k]]
             + [f"{k} added" for k in sorted(set(after) - set(before))]
             + [f"{k} removed" for k in sorted(set(before) - set(after))])
    return f"environment: {', '.join(words)} (values not shown)" if words else None


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "(none)"
    if isinstance(v, dict):
        return ", ".join(f"{k}={v[k]}" for k in sorted(v) if v[k] is not None)
    return str(v)


# ---------------------------------------------------------------- `lcai plan`: the same plan step, offline


@define
class Preview:
    """What `lcai plan` shows: the rendering deploy would send, the target and, when the provider is configured,
    its price."""

    prepared: Prepared
    target: str
    replicas: int
    price: Optional[Price]
    notes: tuple[str, ...] = ()  # the provider's preflight notes (when it ran)


def preview(host: Any, opts: DeployOptions) -> Preview:
    """The plan step as `lcai plan` runs it: the same directory reading, resolution and rendering as deploy, no
    registry; the price from the provider's preflight only when the provider is configured (a token is set),
    so plan stays offline otherwise; a failed preflight is not plan's error."""
    from .. import lifecycle as L
    from ..project import prepare

    p = prepare(opts.directory, host, app=opts.app, env_name=opts.env_name, region=opts.region, type_=opts.type,
                image=opts.image)
    tpl = p.template
    target, replicas = tpl.deploy.target, tpl.deploy.linode.replicas
    prov = L.providers(host).get(target)
    price: Optional[Price] = None
    notes: tuple[str, ...] = ()
    if prov is not None and L.configured(host, prov):
        try:
            spec = make_spec(p, opts.directory, ssh_sources=L.ANYWHERE, app_sources=L.ANYWHERE, keys=[],
                             root_pass="", replicas=replicas)
            pre = prov.preflight(spec)
            price, notes = pre.price, tuple(pre.notes)
        except Exception:  # plan never fails because a price could not be looked up
            price = None
    return Preview(p, target, replicas, price, notes)
