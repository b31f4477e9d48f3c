"""The apply step: ``apply(plan, events, registry) -> Outcome`` carries out a ``DeployPlan`` the user agreed to
(a create, a rebuild, a rollout, or nothing), under the deployment's lock, keeping it tracked whatever happens.

Registry writes of a create, and why each: the intent, before anything exists (a crash leaves a record that
`lcai destroy` can clear); one after each create step, holding what that step made (a crash after it leaves
the resource findable); the last step's write also marks the deployment created. Then the wait records what
it learns (address, health). A rebuild writes twice (``rebuilding`` before the request: an interrupted
rebuild stays visible; the result after it); a rollout once before and once per replica the provider saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attrs import define

from ..errors import InputError, InterruptReported, LcaiError, TrackedError
from .directory import keep_previous, restore_previous, save_root_password, write_directory
from .events import Events
from .plan import DeployPlan, Kind


@define
class Outcome:
    """What apply did: the deployment's record as stored, and whether the wait ran."""

    plan: DeployPlan
    record: dict[str, Any]
    waited: bool = False


def apply(plan: DeployPlan, events: Events, registry: Any) -> Outcome:
    """Carry out ``plan`` (see the module). Raises ``registry.Busy`` when another lcai process works on the
    deployment, ``InputError`` when the plan went stale meanwhile (nothing is then changed)."""
    import time

    from ..registry import deployment_lock

    with deployment_lock(plan.deployment_id, "deploy"):  # a destroy (or another deploy) meanwhile is refused
        _still_current(plan, registry)
        deadline = time.monotonic() + plan.wait_seconds  # the rollout and the wait share it
        rec = dict(plan.live or {})  # UNCHANGED
        if plan.settle:  # a rebuild with this user data was accepted before and not recorded: record it now
            from ..registry import now_iso

            rec = dict(registry.update(plan.deployment_id, rebuild_sha256=None, rebuilt_at=now_iso(),
                                       **plan.desired))
        if plan.firewall:  # FIREWALL, and before a rebuild: who may connect changes even if the rebuild fails
            rec = _firewall(plan, events, registry)
        if plan.kind is Kind.CREATE:
            rec = _create(plan, events, registry)
        elif plan.kind is Kind.REBUILD:
            rec = _rebuild(plan, events, registry)
        elif plan.kind is Kind.ROLLOUT:
            rec = _rollout(plan, events, registry, deadline)
        if plan.options.wait:
            rec = _wait(plan, events, registry, rec, deadline)
        return Outcome(plan, rec, plan.options.wait)


def _still_current(plan: DeployPlan, registry: Any) -> None:
    """The plan was made before the lock was taken (and the user asked): refuse it when the deployment
    appeared, went away or changed meanwhile (a concurrent deploy or destroy)."""
    rec = registry.get(plan.deployment_id)
    here = rec is not None and rec.get("directory") == str(Path(plan.options.directory).resolve())
    resuming = here and (rec or {}).get("status") == "creating"  # an interrupted create of this directory: go on
    resuming = resuming or (plan.restart and (rec or {}).get("status") == "stopped")  # `lcai start`
    if plan.kind is Kind.CREATE and rec is not None and not resuming:
        raise InputError(f"deployment {plan.deployment_id} was created meanwhile (by another lcai process)",
                         hint="run `lcai deploy` again: it redeploys it")
    if plan.kind is not Kind.CREATE and (rec is None or rec.get("rendered_sha256") !=
                                         (plan.live or {}).get("rendered_sha256")):
        raise InputError(f"deployment {plan.deployment_id} changed meanwhile (another lcai process deployed or "
                         "destroyed it)", hint="run `lcai deploy` again to see what it would do now")


# ---------------------------------------------------------------- create


def _create(plan: DeployPlan, events: Events, registry: Any) -> dict[str, Any]:
    from ..lifecycle import StepRunner

    p, prov, spec = plan.prepared, plan.provider, plan.spec
    ctx, dep_id, price = p.ctx, plan.deployment_id, (plan.preflight.price if plan.preflight else None)
    record = {"app": ctx.app_name, "env": ctx.env, "provider": prov.name, "label": spec.label, "status": "creating",
              "directory": str(Path(plan.options.directory).resolve()),
              "price_hourly": price.hourly if price else None, "price_monthly": price.monthly if price else None,
              "source": "deploy", "address": None, "provider_state": {},
              **plan.desired, **({"replicas": spec.replicas} if spec.replicas > 1 else {})}
    import attrs

    from ..lifecycle import ROOT_PASSWORD

    d = Path(plan.options.directory)
    resumed = registry.get(dep_id) is not None  # an interrupted create of this directory (_still_current)
    previous = keep_previous(d, dep_id) if plan.options.new else None
    password = not spec.ssh_keys and prov.uses_root_password
    pw_file = d / ROOT_PASSWORD
    if password:
        if resumed and pw_file.is_file():  # the machine the interrupted create made may have this one already
            spec = attrs.evolve(spec, root_password=pw_file.read_text().strip())
        else:  # saved before the steps: after Ctrl-C behind a lost reply the file still matches the machine
            save_root_password(d, spec.root_password)
    registry.update(dep_id, create=True, **record)  # the intent, before anything is created
    events.say(f"recorded deployment {dep_id} "
               + ("(creating again: what the interrupted create made is reused)" if resumed else "(creating)"))
    runner = StepRunner(registry, dep_id, events.say, prov.name, done_status="created")
    try:
        runner.run(prov.create_steps(spec))
    except BaseException:
        left = registry.get(dep_id)
        if left is None:  # undone: nothing uses the password; the previous deployment is back
            if password:
                pw_file.unlink(missing_ok=True)
            if previous:
                restore_previous(d, previous)
        elif left.get("status") != "creating":  # it all happened (Ctrl-C hid the last reply): link the directory
            write_directory(d, prov, left, p.seed)
        raise
    _absorb_kept_volumes(plan, events, registry)
    rec = registry.get(dep_id) or dict(record, deployment_id=dep_id)
    if previous:
        events.say(f"{d} tracks {dep_id} now; {previous}'s state and root password are kept in "
                   f".linode/previous/{previous}/ (`lcai destroy {previous}` removes them)")
    write_directory(d, prov, rec, p.seed)
    if not spec.ssh_keys and prov.uses_root_password:
        events.say("no ~/.ssh/*.pub: root password saved to .linode/root-password (0600)")
    return rec


def _absorb_kept_volumes(plan: DeployPlan, events: Events, registry: Any) -> None:
    """A destroyed deployment of the same app and env whose kept volumes this one attached: its record (status
    ``volumes kept``) is forgotten, the volumes are this deployment's now."""
    from ..conventions import VOLUMES_KEPT

    labels = {v.label for v in plan.spec.volumes}
    if not labels:
        return
    for dep, rec in registry.all().items():
        theirs = {v.get("label") for v in rec.get("volumes") or []}
        if dep != plan.deployment_id and rec.get("status") == VOLUMES_KEPT and \
                rec.get("provider") == plan.provider.name and labels & theirs:
            registry.remove(dep)
            events.say(f"the volumes deployment {dep} kept are attached to {plan.deployment_id} now, with their data")


# ---------------------------------------------------------------- redeploy: rebuild, rollout


def _firewall(plan: DeployPlan, events: Events, registry: Any) -> dict[str, Any]:
    """The firewall's rules made what the plan asks, in place, read back by the provider; recorded only then."""
    from ..lifecycle import RECORD_FIELDS

    rec, dep_id = dict(plan.live or {}), plan.deployment_id
    events.say(f"updating the firewall of deployment {dep_id}")
    try:
        fields = plan.provider.update_firewall(rec, plan.spec, events.say) or {}
    except LcaiError as e:
        raise LcaiError(f"the firewall of deployment {dep_id} was not changed: {e.message}",
                        hint=e.hint or "run `lcai deploy` again") from None
    state = dict(rec.get("provider_state") or {})
    state.update({k: v for k, v in fields.items() if k not in RECORD_FIELDS})
    return dict(registry.update(dep_id, provider_state=state, ssh_sources=plan.desired["ssh_sources"],
                                app_sources=plan.desired["app_sources"]))


def _rebuild(plan: DeployPlan, events: Events, registry: Any) -> dict[str, Any]:
    from ..lifecycle import RECORD_FIELDS
    from ..registry import now_iso

    prov, spec, rec, dep_id = plan.provider, plan.spec, dict(plan.live or {}), plan.deployment_id
    events.say(f"rebuilding deployment {dep_id}")
    # the user data being sent, recorded first: if the record of an accepted rebuild cannot be written (a full
    # disk), the next deploy knows the machine has it and does not wipe the disk a second time
    registry.update(dep_id, status="rebuilding", rebuild_sha256=plan.desired["rendered_sha256"])
    try:
        fields = prov.rebuild(rec, spec, events.say) or {}
    except KeyboardInterrupt as e:
        events.notice(f"interrupted: deployment {dep_id} is tracked; the rebuild may or may not have started — "
                      "run `lcai deploy` again to rebuild it")
        registry.update(dep_id, status="rebuild interrupted", rebuild_sha256=None)
        raise InterruptReported() from e
    except LcaiError as e:
        registry.update(dep_id, status="rebuild failed", rebuild_sha256=None)
        raise LcaiError(f"rebuild of deployment {dep_id} failed: {e.message}",
                        hint=f"it is still tracked (`lcai status {dep_id}`); "
                             "run `lcai deploy` again to retry") from None
    d = Path(plan.options.directory)
    if not spec.ssh_keys and prov.uses_root_password:
        save_root_password(d, spec.root_password)
        events.say("no ~/.ssh/*.pub: the new root password is in .linode/root-password (0600)")
    state = dict(rec.get("provider_state") or {})
    state.update({k: v for k, v in fields.items() if k not in RECORD_FIELDS})
    rec = registry.update(dep_id, provider_state=state, status=fields.get("status") or "rebuilding",
                          health_status=None, health_detail=None, rebuilt_at=now_iso(), rebuild_sha256=None,
                          **{k: v for k, v in fields.items() if k == "address"}, **plan.desired)
    n = len(plan.changes)
    events.say(f"rebuild started ({n} change{'s' if n != 1 else ''})")
    write_directory(d, prov, rec, plan.prepared.seed)
    return dict(rec)


def _rollout(plan: DeployPlan, events: Events, registry: Any, deadline: float) -> dict[str, Any]:
    """Rolling redeploy of a replicated deployment: the provider takes one replica at a time out of rotation,
    rebuilds it, waits until healthy and puts it back; a replica that fails stops the rollout."""
    from ..lifecycle import RECORD_FIELDS, ROOT_PASSWORD
    from ..registry import now_iso

    prov, spec, rec, dep_id = plan.provider, plan.spec, dict(plan.live or {}), plan.deployment_id
    n = len((rec.get("provider_state") or {}).get("replicas") or [])
    registry.update(dep_id, status="rolling out")
    state = dict(rec.get("provider_state") or {})

    def save(fields: dict[str, Any]) -> None:
        state.update(fields)
        registry.update(dep_id, provider_state=dict(state))

    try:
        fields = prov.rollout(rec, spec, events.say, deadline, save) or {}
    except KeyboardInterrupt as e:
        events.notice(f"interrupted: deployment {dep_id} is tracked; run `lcai deploy` again to resume the "
                      "rollout (replicas already healthy on the new version are skipped)")
        registry.update(dep_id, status="rollout interrupted", rendered_sha256=None)  # replicas may differ now
        raise InterruptReported() from e
    except LcaiError as e:
        registry.update(dep_id, status="rollout stopped", health_status=None, health_detail=None,
                        rendered_sha256=None)  # replicas run different versions: the next deploy rolls out again
        _record_balancer_health(prov, registry, dep_id)
        if not isinstance(e, TrackedError):  # the provider's own error says how to resume or roll back
            e.hint = (f"{e.hint}; " if e.hint else "") + (
                f"deployment {dep_id} is tracked; run `lcai deploy` again to resume the rollout, or put the "
                "previous deploy.yml back and run `lcai deploy` to roll back")
        raise
    d = Path(plan.options.directory)
    if not spec.ssh_keys and not (d / ROOT_PASSWORD).is_file():
        save_root_password(d, spec.root_password)
    state.update({k: v for k, v in fields.items() if k not in RECORD_FIELDS})
    rec = registry.update(dep_id, provider_state=dict(state), status="running", health_status="healthy",
                          health_detail=f"healthy {n}/{n} (each UP at the NodeBalancer after its rebuild)",
                          health_source="nodebalancer", replicas_healthy=n, rebuilt_at=now_iso(), **plan.desired)
    events.say(f"rollout done: {n} replica(s) on the new version")
    write_directory(d, prov, rec, plan.prepared.seed)
    return dict(rec)


def _record_balancer_health(prov: Any, registry: Any, dep_id: str) -> None:
    """Best effort: the load balancer's view (``healthy k/N``) into the registry, for `lcai status`."""
    rec = registry.get(dep_id)
    if rec is None:
        return
    try:
        res = prov.health(rec)
    except Exception:  # reporting the failure that stopped the rollout matters more
        return
    if res is not None:
        registry.update(dep_id, health_status=res.word(), health_detail=res.detail, health_source=res.source,
                        replicas_healthy=rec.get("replicas_healthy"))


# ---------------------------------------------------------------- wait


_INTERRUPTED = {Kind.CREATE: "interrupted: deployment {d} exists and is tracked "
                             "(`lcai status {d}`, `lcai destroy {d}`)",
                Kind.REBUILD: "interrupted: deployment {d} is rebuilding and tracked (`lcai status {d}`)",
                Kind.ROLLOUT: "interrupted: deployment {d} is tracked (`lcai status {d}`)",
                Kind.UNCHANGED: "interrupted: deployment {d} is tracked (`lcai status {d}`)"}


def _wait(plan: DeployPlan, events: Events, registry: Any, rec: dict[str, Any], deadline: float) -> dict[str, Any]:
    """``deploy --wait``: until healthy, the instance's first failure or the deadline (lcai_core.waiting)."""
    from ..lifecycle import wait_ready

    dep_id = plan.deployment_id
    try:
        wait_ready(plan.provider, registry, dict(rec), events, deadline)
    except LcaiError as e:
        raise (e if plan.kind is Kind.UNCHANGED else tracked(e, dep_id)) from None
    except KeyboardInterrupt as e:
        events.notice(_INTERRUPTED[plan.kind].format(d=dep_id))
        raise InterruptReported() from e
    return dict(registry.get(dep_id) or rec)


def tracked(e: LcaiError, dep_id: str) -> LcaiError:
    """A failure after the deployment exists: say it is still tracked and how to go on."""
    if not isinstance(e, TrackedError):
        e.hint = (f"{e.hint}; " if e.hint else "") + (f"deployment {dep_id} is tracked: `lcai status {dep_id}`; "
                                                      "run `lcai deploy` again to retry (it rebuilds the machine)")
    return e

