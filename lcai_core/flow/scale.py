"""`lcai scale [ID] N` as a flow: ``plan_scale`` decides (and refuses) without changing anything,
``apply_scale`` asks the provider to add or remove replicas and records the result.

Adding: each new replica is created from the deployment directory's user data (the same as the running ones:
a changed deploy.yml is refused until `lcai deploy` rolled it out). Removing: the replicas to remove are
drained, then deleted; healthy replicas are kept first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from attrs import define

from ..errors import InputError, InterruptReported, LcaiError
from ..providers import Provider, Spec
from .events import Events


@define
class ScalePlan:
    record: dict[str, Any]
    provider: Provider
    replicas: int                  # asked
    current: int                   # running now
    spec: Optional[Spec] = None    # what new replicas boot from (adding only)
    lines: tuple[str, ...] = ()
    question: str = "scale it?"
    consequence: str = ""

    @property
    def deployment_id(self) -> str:
        return str(self.record["deployment_id"])

    @property
    def changes_nothing(self) -> bool:
        return self.replicas == self.current


def plan_scale(host: Any, registry: Any, dep_key: Optional[str], count: str,
               directory: Optional[Path]) -> ScalePlan:
    from .. import lifecycle as L
    from ..template import MAX_REPLICAS

    try:
        n = int(count)
    except ValueError:
        raise InputError(f"N must be a whole number of replicas, got {count!r}") from None
    if not 1 <= n <= MAX_REPLICAS:
        raise InputError(f"N must be 1-{MAX_REPLICAS}, got {n}")
    rec = L.resolve(registry, dep_key, directory)
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
        return ScalePlan(rec, prov, n, current,
                         lines=(f"deployment {dep_id} already runs {n} replica(s); nothing to do",))
    keeping = _data_keepers(host, rec)
    if keeping and n > current:
        from ..capabilities import replicas_refusal

        raise InputError(f"scale {dep_id} to {n}: " + replicas_refusal(keeping[0], n))
    spec = _spec_for_new_replicas(host, rec, directory, n) if n > current else None
    verb = (f"add {n - current} replica(s) ({current} -> {n}): each created, checked by the NodeBalancer without "
            "traffic, then put in rotation") if n > current else \
        (f"remove {current - n} replica(s) ({current} -> {n}): drained at the NodeBalancer, then deleted; healthy "
         "replicas are kept first")
    line = (f"scale {dep_id} ({prov.name}, {rec.get('label')}): {verb}; each replica is a {rec.get('type')} "
            f"in {rec.get('region')}"
            + (f" (now ${rec['price_hourly']}/h for all, NodeBalancer included)"
               if isinstance(rec.get("price_hourly"), (int, float)) else ""))
    lines: tuple[str, ...] = (line,)
    if keeping and n < current:
        lines += (f"  data lost: each replica holds its own {', '.join(keeping)} data; what the removed replica(s) "
                  "hold is deleted with them",)
    return ScalePlan(rec, prov, n, current, spec, lines,
                     consequence=f"scale {'creates billable resources' if n > current else 'deletes replicas'}"
                     + (f" and their {', '.join(keeping)} data" if keeping and n < current else ""))


def _data_keepers(host: Any, rec: dict[str, Any]) -> list[str]:
    """The deployment's capabilities that keep data on each machine (``Capability.keeps_data``)."""
    out = []
    for name in rec.get("features") or []:
        found = host.catalog.lookup(name) if isinstance(name, str) else None
        if found is not None and getattr(found[0].capability, "keeps_data", False):
            out.append(name)
    return out


def apply_scale(plan: ScalePlan, events: Events, registry: Any, timeout: Optional[float] = None) -> str:
    """Add or remove replicas; returns the line that says how many run now (and their health, price)."""
    from ..lifecycle import health_budget

    rec, prov, n, dep_id = plan.record, plan.provider, plan.replicas, plan.deployment_id
    budget = health_budget(rec.get("health")) + 900
    deadline = time.monotonic() + (timeout if timeout is not None else budget)
    state = dict(rec.get("provider_state") or {})

    def save(fields: dict[str, Any]) -> None:
        state.update(fields)
        registry.update(dep_id, provider_state=dict(state), replicas=max(1, len(state.get("replicas") or [])))

    registry.update(dep_id, status="scaling")
    try:
        fields = prov.scale(rec, n, plan.spec, events.say, deadline, save) or {}
    except KeyboardInterrupt as e:
        registry.update(dep_id, status="running")
        events.notice(f"interrupted: deployment {dep_id} is tracked with {len(state.get('replicas') or [])} "
                      f"replica(s); `lcai scale {dep_id} {n}` continues")
        raise InterruptReported() from e
    except LcaiError as e:
        registry.update(dep_id, status="running")
        e.hint = (f"{e.hint}; " if e.hint else "") + (
            f"deployment {dep_id} is tracked with {len(state.get('replicas') or [])} replica(s): "
            f"`lcai status {dep_id}`; `lcai scale {dep_id} {n}` tries again")
        raise
    price = {k: fields.pop(k) for k in ("price_hourly", "price_monthly") if k in fields}
    state.update(fields)
    reps = len(state.get("replicas") or [])
    rec = registry.update(dep_id, provider_state=dict(state), replicas=reps, status="running", **price)
    probe = dict(rec)
    res = prov.health(probe)
    if res is not None:
        registry.update(dep_id, health_status=res.word(), health_detail=res.detail, health_source=res.source,
                        replicas_healthy=probe.get("replicas_healthy"))
    return (f"deployment {dep_id}: {reps} replica(s)" + (f", {res.detail}" if res is not None else "")
            + (f"; ${price['price_hourly']}/h" if price.get("price_hourly") is not None else ""))


def _spec_for_new_replicas(host: Any, rec: dict[str, Any], directory: Optional[Path], n: int) -> Spec:
    """The Spec new replicas boot from: the deployment directory rendered exactly as the running replicas were
    (refused when deploy.yml changed since the last deploy: new replicas would run another version)."""
    from .. import lifecycle as L
    from ..project import prepare
    from .plan import make_spec

    dep_id = rec["deployment_id"]
    d = directory or (Path(rec["directory"]) if rec.get("directory") else None)
    st = L.read_state(d) if d is not None and d.is_dir() else None
    if d is None or st is None or st.get("deployment_id") != dep_id or not st.get("secret_seed"):
        raise InputError(f"adding replicas to {dep_id} needs its deployment directory with this machine's state "
                         f"({L.STATE}): the new replicas boot from its user data",
                         hint=f"run it inside the directory deploy used (or -d DIR); `lcai scale {dep_id} N` with a "
                              "smaller N works anywhere")
    p = prepare(d, host, app=rec.get("app"), env_name=rec.get("env"), region=rec.get("region"),
                type_=rec.get("type"), image=rec.get("image"), state=st)
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
    return make_spec(p, d, ssh_sources=rec.get("ssh_sources") or L.ANYWHERE,
                     app_sources=rec.get("app_sources") or L.ANYWHERE, keys=keys, root_pass=root_pass, replicas=n)
