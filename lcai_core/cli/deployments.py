"""`lcai status`, `destroy`, `sync`, `logs`: every provider's deployments through the provider contract.

Contract spellings: ``status [ID] [--json]``, ``destroy ID --yes``, ``destroy --purge``, ``sync``,
``logs ID [-n N] [--follow]``. Inside a deployment directory the ID may be left out (``--all`` lists all).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import click

from ..errors import InputError, LcaiError, PluginError
from ..providers import Provider

DIR_OPTION = click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="A deployment directory (default: the current one) to take the ID from.")


def _host_and_registry():
    from ..plugins import get_host
    from ..registry import Registry

    return get_host(), Registry()


def _in_directory(directory: Optional[Path]) -> bool:
    from ..lifecycle import read_state

    try:
        return read_state(directory or Path(".")) is not None
    except InputError:
        return True


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _find_row(rows: list[dict], registry, key: str) -> dict:
    """A row by exact id (untracked ones too), unique registry prefix, or a provider's own id (with a hint)."""
    for r in rows:
        if r["deployment_id"] == key:
            return r
    try:
        rec = registry.find(key)
    except InputError:
        for r in rows:
            if key in {str(v) for v in (r.get("provider_state") or {}).values()}:
                raise InputError(f"{key!r} is the {r.get('provider')} id of deployment {r['deployment_id']}, "
                                 "not a deployment ID",
                                 hint=f"use `{r['deployment_id']}` (lcai status lists deployment IDs)") from None
        raise
    return next((r for r in rows if r["deployment_id"] == rec["deployment_id"]),
                dict(rec, live_status=rec.get("status")))


# ---------------------------------------------------------------- status


@click.command("status")
@click.argument("deployment_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "-a", "show_all", is_flag=True,
              help="List every deployment, even inside a deployment directory.")
@DIR_OPTION
def status(deployment_id: Optional[str], as_json: bool, show_all: bool, directory: Optional[Path]) -> None:
    """All deployments with their live state (each provider asked once: one API request for Linode), or one
    deployment in detail with a health check. Inside a deployment directory: that deployment."""
    from .. import lifecycle as L
    from .. import ui

    host, reg = _host_and_registry()
    if not deployment_id and not show_all and (directory is not None or _in_directory(directory)):
        deployment_id = L.resolve(reg, None, directory)["deployment_id"]
    failures: list[PluginError] = []
    rows, listings = L.list_all(host, reg.all(), failures)
    if deployment_id:
        _status_one(host, reg, rows, listings, deployment_id, as_json, failures)
        _raise_refused(listings)
        _raise_failures(failures)
        return
    unreached = [(n, lst) for n, lst in listings if not lst.reached]
    if as_json:
        click.echo(json.dumps({"source": _source_text(listings), "reached": not unreached,
                               "sources": {n: {"source": lst.source, "reached": lst.reached,
                                               **({"refused": True} if lst.refused else {})}
                                           for n, lst in listings},
                               "deployments": [dict(r, cost_so_far=cost_so_far(r)) for r in rows],
                               **({"plugin_errors": [e.message for e in failures]} if failures else {})},
                              indent=2, default=str))
        _raise_refused(listings)
        _raise_failures(failures)
        return
    if not rows:
        click.echo(ui.localize("no deployments (lcai deploy creates one; lcai sync adopts ones made elsewhere)"))
    else:
        _table(rows)
    click.echo(f"source: {_source_text(listings)}", err=True)
    for n, lst in unreached:
        click.echo(f"warning: {n} was not reached ({lst.source}); deployments made elsewhere are not shown and "
                   "states are the registry's", err=True)
    if any(r.get("live_status") == "vanished" for r in rows):
        _say(ui.localize("hint: vanished = tracked here but gone from the provider; `lcai destroy --purge` removes "
                         "what is left and forgets them"))
    if any(r.get("untracked") for r in rows):
        _say(ui.localize("hint: untracked deployments carry lcai tags but are not in this machine's registry; "
                         "`lcai sync`"))
    _raise_refused(listings)
    _raise_failures(failures)


def _raise_refused(listings) -> None:
    """After the rows and warnings: a provider that refused the credentials is an error (exit 2), not a state
    the registry can stand in for."""
    refused = [n for n, lst in listings if lst.refused]
    if refused:
        raise InputError(f"{', '.join(refused)} refused the credentials: the states above are the registry's, "
                         "not live", hint="fix the token (see the warning above) and run `lcai status` again")


def _raise_failures(failures: list[PluginError]) -> None:
    """After everything else was listed: one error line per plugin that failed, exit 1."""
    from .. import ui

    seen: list[PluginError] = []
    for e in failures:
        if all(e.message != s.message for s in seen):
            seen.append(e)
    for e in seen[:-1]:
        ui.error(ui.localize(e.message))
    if seen:
        raise seen[-1]


def _source_text(listings) -> str:
    if not listings:
        return "registry (no provider installed or configured)"
    return "; ".join(f"{n}: {lst.source}" for n, lst in listings)


# `lcai status`'s columns in the order a user reads them: on a narrow terminal the last one gives way first (it
# shrinks to TABLE_MIN, its cells ending in "…", then hides); ID, STATUS, HEALTH and APP always show, and
# STATUS, HEALTH (`healthy 2/3`), $/H and AGE are never cut
TABLE_COLUMNS = ["ID", "APP", "ENV", "PROVIDER", "REGION", "TYPE", "STATUS", "HEALTH", "AGE", "$/H"]
TABLE_PRIORITY = ["ID", "STATUS", "HEALTH", "APP", "$/H", "AGE", "ENV", "PROVIDER", "REGION", "TYPE"]
TABLE_KEEP = ("ID", "STATUS", "HEALTH", "APP")
TABLE_MIN = {"APP": 10, "ENV": 5, "REGION": 6, "TYPE": 10}
TABLE_MAX = {"APP": 24, "ENV": 12, "TYPE": 24}  # even on a wide terminal: longer names end in "…"


def _table(rows: list[dict]) -> None:
    from .. import ui
    from ..registry import age

    now = time.time()
    cols = TABLE_COLUMNS
    table = []
    for r in rows:
        st = r.get("live_status") or "-"
        if r.get("untracked"):
            st += " (untracked)"
        price = f"{r['price_hourly']:.3f}" if isinstance(r.get("price_hourly"), (int, float)) else "-"
        table.append([ui.printable(c) for c in (
            r["deployment_id"], r.get("app") or "-", r.get("env") or "-", r.get("provider") or "-",
            r.get("region") or "-", r.get("type") or "-", st, _health_cell(r), age(r.get("created_at"), now), price)])
    natural = {c: min(TABLE_MAX.get(c, 1 << 30), max(len(c), *(len(row[i]) for row in table)))
               for i, c in enumerate(cols)}
    fit = ui.fit_widths(natural, TABLE_PRIORITY, ui.table_width(sys.stdout), gap=2,
                        minimum={c: max(len(c), m) for c, m in TABLE_MIN.items()}, keep=TABLE_KEEP)
    shown = [i for i, c in enumerate(cols) if c in fit]
    widths = {i: fit[cols[i]] for i in shown}
    right = {"AGE", "$/H"}
    colour = {cols.index("STATUS"), cols.index("HEALTH")}

    def line(cells: list[str], header: bool = False) -> str:
        out = []
        for i in shown:
            c, w = ui.ellipsize(cells[i], widths[i]), widths[i]
            if cols[i] in right:
                out.append(c.rjust(w))
            elif i in colour and not header:
                out.append(ui.style_status(c, width=w, stream=sys.stdout))
            else:
                out.append(c.ljust(w))
        return "  ".join(out).rstrip()

    click.echo(line(cols, header=True))
    for row in table:
        click.echo(line(row))


def cost_so_far(row: dict, now: Optional[float] = None) -> Optional[float]:
    """The hourly price times the hours since the deployment was created (None when either is unknown)."""
    from ..registry import _epoch

    price, t0 = row.get("price_hourly"), _epoch(row.get("created_at")) if row.get("created_at") else None
    if not isinstance(price, (int, float)) or t0 is None:
        return None
    return round(price * max(0.0, (now or time.time()) - t0) / 3600, 2)


def _cost_text(row: dict) -> Optional[str]:
    if row.get("price_hourly") is None:
        return None
    so_far = cost_so_far(row)
    return f"${row['price_hourly']}/h" + (f", about ${so_far:.2f} so far (the hourly price times the hours since it "
                                          "was created; transfer and volumes not counted)"
                                          if so_far is not None else "")


def _health_cell(r: dict) -> str:
    """The HEALTH column: the last check's word; for replicas ``healthy k/N``: the load balancer's view now
    when the provider read it for the list (Linode: one request per NodeBalancer), else at the last `status
    ID`, deploy, scale or rollout; ``(j drained)`` when fewer accept traffic than are UP."""
    if r.get("replicas") is None:
        return str(r.get("health_status") or "-")
    n = len((r.get("provider_state") or {}).get("replicas") or []) or r["replicas"]
    k = r.get("replicas_healthy")
    if k is None:
        return f"- ({n} replicas)"
    accepting = r.get("replicas_accepting")
    drained = k - accepting if isinstance(accepting, int) and accepting < k else 0
    return f"healthy {k}/{n}" + (f" ({drained} drained)" if drained else "")


def _status_one(host, reg, rows, listings, key: str, as_json: bool, failures: list[PluginError]) -> None:
    from .. import health as H
    from .. import lifecycle as L

    row = _find_row(rows, reg, key)
    prov = L.providers(host).get(row.get("provider") or "linode")
    live = row.get("live_status")
    if prov is None:
        result = H.Health(None, f"provider {row.get('provider')!r} is not installed", "none")
    elif live not in ("running", None) and not str(live).startswith("running"):
        result = H.Health(None, f"the machine is {live}", "none")
    else:
        result = H.check(prov, row)
    row["health_live"] = {"ok": result.ok, "detail": result.detail, "source": result.source}
    if result.ok is not None and not row.get("untracked"):
        reg.update(row["deployment_id"], health_status=result.word(), health_detail=result.detail,
                   health_source=result.source,
                   **({"replicas_healthy": row["replicas_healthy"]} if "replicas_healthy" in row else {}))
    if as_json:
        click.echo(json.dumps(dict(row, cost_so_far=cost_so_far(row)), indent=2, default=str))
        return
    fields = [("deployment", row["deployment_id"]), ("provider", row.get("provider")), ("app", row.get("app")),
              ("env", row.get("env")),
              ("template", f"{row['template']} {row.get('template_version') or ''}".strip() if row.get("template")
               else "unknown (adopted by `lcai sync`)" if row.get("source") == "sync" else None),
              ("status", live), ("region", row.get("region")), ("type", row.get("type")), ("label", row.get("label")),
              ("address", row.get("address"))]
    if prov is not None:
        fields += [(k, v) for k, v in L.detail(host, prov, row, failures)]
        ep = prov.app_endpoint(row)
        if ep is not None:
            fields.append(("endpoint", ep.url()))
        ssh = prov.ssh(row)
        if ssh is not None:
            fields.append(("ssh", ssh.describe()))
    word = {True: "ok", False: "failing", None: "unknown"}[result.ok]
    where = {"this machine": "checked from this machine", "instance": "the instance's own check, over SSH",
             "nodebalancer": "the NodeBalancer's checks", "none": "not checked"}.get(result.source, result.source)
    fields += [("health", f"{word}: {result.detail} ({where})"),
               ("cost", _cost_text(row)),
               ("created", row.get("created_at")), ("directory", row.get("directory")),
               ("source", _source_text([(n, lst) for n, lst in listings if n == row.get("provider")]))]
    from .. import ui

    for k, v in fields:
        if v is not None and v != "":
            click.echo(f"{ui.printable(k):<14} {ui.printable(v)}")
    for title, lines in host.deployment_sections(row):
        click.echo(f"{ui.printable(title)}:")
        for line in lines:
            click.echo(f"  {ui.printable(line)}")


# ---------------------------------------------------------------- destroy


@click.command("destroy")
@click.argument("deployment_id", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--purge", is_flag=True, help="Remove what is left of vanished deployments and forget them (no ID); "
              "each is looked up by id first and kept while its machine exists.")
@click.option("--volumes", "delete_volumes", is_flag=True,
              help="Also delete the deployment's Block Storage volumes and their data (kept by default).")
@DIR_OPTION
def destroy(deployment_id: Optional[str], yes: bool, purge: bool, delete_volumes: bool,
            directory: Optional[Path]) -> None:
    """Delete a deployment (its machine, then its firewall; already-gone resources are fine), forget it and
    remove the files deploy wrote into its directory. Inside a deployment directory the ID may be left out."""
    from .. import lifecycle as L

    host, reg = _host_and_registry()
    if purge and not deployment_id:
        _purge(host, reg, yes)
        return
    if not deployment_id:
        if directory is None and not _in_directory(None):
            raise InputError("give a deployment ID (see `lcai status`), run it inside a deployment directory, or "
                             "--purge to forget vanished ones")
        rec = L.resolve(reg, None, directory)
    else:
        try:
            rec = reg.find(deployment_id)
        except InputError:
            failures: list[PluginError] = []
            rows, _ = L.list_all(host, reg.all(), failures)
            _warn_failures(failures)
            rec = _find_row(rows, reg, deployment_id)
    dep_id = rec["deployment_id"]
    prov = L.provider_of(host, rec)
    broken: list[PluginError] = []
    what = ", ".join(f"{k} {v}" for k, v in L.detail(host, prov, rec, broken)
                     if k in ("instance", "replicas", "firewall", "vm", "nodebalancer")) \
        or f"deployment {dep_id}"
    _warn_failures(broken)  # only the confirmation's wording is lost: destroy itself may still work
    from ..registry import deployment_lock

    from ..conventions import VOLUMES_KEPT

    vols = ", ".join(f"{v.get('name')} {v.get('size_gb')} GB" for v in rec.get("volumes") or [])
    if rec.get("status") == VOLUMES_KEPT and not delete_volumes:
        raise InputError(f"deployment {dep_id} is destroyed; only its volumes are kept ({vols})",
                         hint=f"`lcai destroy {dep_id} --volumes` deletes them and their data; a deploy of its app "
                              "and env attaches them again")
    if vols:
        what += (f"; AND its volumes {vols}, with their data" if delete_volumes
                 else f"; its volumes {vols} are kept")
    with deployment_lock(dep_id, "destroy"):  # refused at once (before asking) while a deploy of it runs
        if not yes:
            from .. import ui

            L.confirm(ui.printable(f"delete {dep_id} ({rec.get('label') or rec.get('app')} on {prov.name}: "
                                   f"{what})?"), ui.printable(f"destroy deletes {dep_id} ({what})"))
        removed = L.destroy(host, reg, rec, _say, volumes=delete_volumes)
    if removed:
        _say(f"removed from {rec.get('directory')}: {', '.join(removed)}")
    click.echo(f"destroyed {dep_id}")


@click.command("stop")
@click.argument("deployment_id", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@DIR_OPTION
def stop(deployment_id: Optional[str], yes: bool, directory: Optional[Path]) -> None:
    """Stop a deployment's bill: delete its machine(s) (and a NodeBalancer, whose address is released), keep
    its firewall, volumes, record and directory; `lcai start` creates the machine again with the volumes."""
    from .. import lifecycle as L
    from .. import ui
    from ..registry import deployment_lock, now_iso

    host, reg = _host_and_registry()
    rec = L.resolve(reg, deployment_id, directory)
    dep = rec["deployment_id"]
    prov = L.provider_of(host, rec)
    if type(prov).stop is Provider.stop:
        raise InputError(f"provider {prov.name} cannot stop deployments (yet)",
                         hint=f"`lcai destroy {dep}` deletes it (volumes kept), a deploy creates it again")
    if rec.get("status") == "stopped":
        click.echo(f"deployment {dep} is stopped already")
        return
    vols = ", ".join(f"{v.get('name')} {v.get('size_gb')} GB" for v in rec.get("volumes") or [])
    with deployment_lock(dep, "stop"):
        if not yes:
            L.confirm(ui.printable(f"stop {dep} ({rec.get('label') or rec.get('app')} on {prov.name})? its machine "
                                   "is deleted: what is not on a volume is lost"
                                   + (f"; kept: volumes {vols}, the firewall" if vols else "; kept: the firewall")),
                      f"stop deletes the machine of {dep}: what is not on a volume is lost")
        state = host.call_provider(prov, "stop", rec, _say) or {}
        reg.update(dep, status="stopped", stopped_at=now_iso(), address=None, health_status=None,
                   health_detail=None, price_hourly=None, price_monthly=None, provider_state=dict(state))
    click.echo(f"stopped {dep}: no machine bills now" + (f"; kept: volumes {vols}" if vols else "")
               + f" (`{ui.cmd(f'start {dep}')}` creates it again)")


def _warn_failures(failures: list[PluginError]) -> None:
    from .. import ui

    for e in failures:
        ui.warning(ui.localize(e.message))


def _purge(host, reg, yes: bool) -> None:
    """Forget vanished deployments and delete what is left of them. A deployment is vanished when its
    provider's list lacks it; before anything is deleted, the provider looks each resource up by id
    (``remains``): one whose machine still exists (an edited tag, a short list reply) is kept untouched."""
    from .. import lifecycle as L

    failures: list[PluginError] = []
    rows, listings = L.list_all(host, reg.all(), failures)
    reached = {n for n, lst in listings if lst.reached}
    todo: list[tuple[dict, Any]] = []
    alive, kept = [], []
    for r in rows:
        if r.get("live_status") != "vanished" or r.get("provider") not in reached:
            continue
        dep = r["deployment_id"]
        try:
            rem = host.call_provider(L.provider_of(host, r), "remains", r)
        except LcaiError as e:  # a PluginError names the plugin
            kept.append(f"{dep} (not checked: {e.message})")
            continue
        if rem is None:
            alive.append(f"{dep}: provider {r.get('provider')} cannot look its machine up by id, so purge keeps it "
                         f"(`lcai destroy {dep}` deletes it)")
        elif rem.machines:
            alive.append(f"{dep} is not gone: {'; '.join(rem.machines)} (kept; `lcai status {dep}`; `lcai destroy "
                         f"{dep}` deletes it)")
        else:
            todo.append((r, rem))
    from .. import ui

    for line in alive:
        _say(f"warning: {ui.printable(line)}")
    deletes = [f"{r['deployment_id']}: delete {', '.join(rem.leftovers)}" for r, rem in todo if rem.leftovers]
    if deletes:
        for line in deletes:
            _say(f"  {line}")
        if not yes:
            L.confirm(f"delete what is left of {len(deletes)} vanished deployment(s) (above) and forget "
                      f"{len(todo)}?", f"purge deletes {'; '.join(deletes)}")
    gone = []
    for r, _rem in todo:
        try:
            L.destroy(host, reg, r, _say)  # deletes what is left (a firewall, a NodeBalancer), then forgets it
            gone.append(r["deployment_id"])
        except LcaiError as e:
            kept.append(f"{r['deployment_id']} ({e.message})")
    click.echo(f"purged {len(gone)} vanished deployment(s)" + (f": {', '.join(sorted(gone))}" if gone else ""))
    for name, lst in listings:
        if not lst.reached:
            _say(f"warning: {name} was not reached ({lst.source}); its deployments were not checked")
    if kept:
        _warn_failures(failures)
        raise LcaiError("kept (cleanup failed, run `lcai destroy --purge` again): " + "; ".join(kept))
    _raise_failures(failures)


# ---------------------------------------------------------------- sync


@click.command("sync")
def sync() -> None:
    """Rebuild the registry from what the providers hold: adopt lcai deployments this machine does not know,
    refresh known ones, mark vanished ones. A second machine sees the same deployments after a sync; run inside
    a deployment directory, it also links that directory to its deployment."""
    from .. import lifecycle as L
    from ..registry import now_iso

    host, reg = _host_and_registry()
    records = reg.all()
    counts = {"adopted": 0, "updated": 0, "vanished": 0}
    total = synced = 0
    failed: list[tuple[str, LcaiError]] = []
    for name, prov in sorted(L.providers(host).items()):
        mine = {k for k, r in records.items() if (r.get("provider") or "linode") == name}
        broken: list[PluginError] = []
        if not mine and not L.configured(host, prov, broken):
            failed.extend((name, e) for e in broken)
            continue
        try:
            found = host.call_provider(prov, "discover")
        except LcaiError as e:
            failed.append((name, e))
            continue
        synced += 1
        total += len(found)
        by_dep = {r["deployment_id"]: r for r in found}

        def apply(deps: dict, by_dep=by_dep, name=name) -> None:
            for dep, live in by_dep.items():
                if dep in deps:
                    cur = deps[dep]
                    state = dict(cur.get("provider_state") or {})
                    state.update(live.get("provider_state") or {})
                    cur.update({k: v for k, v in live.items() if v is not None and k not in (
                        "provider_state", "created_at", "source")}, provider_state=state, updated_at=now_iso())
                    counts["updated"] += 1
                else:
                    deps[dep] = {"created_at": now_iso(), **live, "provider": name, "source": "sync",
                                 "updated_at": now_iso()}
                    counts["adopted"] += 1
            for dep, rec in deps.items():
                if (rec.get("provider") or "linode") != name or dep in by_dep:
                    continue
                if rec.get("provider_state") and rec.get("status") not in ("vanished", "creating"):
                    rec["status"] = "vanished"
                    rec["updated_at"] = now_iso()
                    counts["vanished"] += 1

        reg.transform(apply)
    try:
        st = L.read_state(Path("."))
    except InputError:
        st = None
    if st and reg.get(st["deployment_id"]) and not reg.get(st["deployment_id"]).get("directory"):
        reg.update(st["deployment_id"], directory=str(Path(".").resolve()))
    if synced or not failed:
        click.echo(f"sync: {total} deployment(s) found; adopted {counts['adopted']}, updated {counts['updated']}, "
                   f"marked vanished {counts['vanished']}")
    for name, err in failed[1:]:
        _say(f"error: {name}: {err.message}")
    if failed:
        name, err = failed[0]
        if len(failed) > 1 or synced:
            err.message = f"{name}: {err.message} (its deployments were not synced)"
        raise err


# ---------------------------------------------------------------- logs


@click.command("logs")
@click.argument("deployment_id", required=False)
@click.option("--lines", "-n", default=40, show_default=True, type=click.IntRange(1, 1000),
              help="Lines of cloud-init output and events to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@DIR_OPTION
def logs(deployment_id: Optional[str], lines: int, follow: bool, directory: Optional[Path]) -> None:
    """Cloud-init status and output, then recent container events (from plugins such as BuildWatch), over
    SSH. Inside a deployment directory the ID may be left out."""
    from .. import lifecycle as L
    from ..remote import MARK, run

    host, reg = _host_and_registry()
    rec = L.resolve(reg, deployment_id, directory)
    prov = L.provider_of(host, rec)
    ssh = prov.ssh(rec)
    if ssh is None:
        raise LcaiError(f"deployment {rec['deployment_id']} has no address yet", hint="wait for it: lcai status")
    cmd = ("cloud-init status --long 2>&1 | head -n 12; "
           "for f in /var/lib/lcai/failed-step /var/lib/lcai/image-pull.json /var/lib/lcai/health.json; do "
           "[ -s $f ] && echo \"$f: $(head -c 400 $f)\"; done; echo '" + MARK + "'; "
           f"tail -n {lines} /var/log/cloud-init-output.log 2>&1; echo '{MARK}'; "
           "wc -l < /var/log/cloud-init-output.log 2>/dev/null || echo 0; echo '" + MARK + "'; "
           f"journalctl -u 'lcai-*' --no-pager -o short-iso -n {lines} 2>/dev/null | tail -n {lines}")
    r = run(ssh, cmd, timeout=60)
    if MARK not in r.out:
        raise LcaiError(f"could not reach {ssh.describe()}: {r.problem()}", hint=_ssh_hint(rec, r))
    status_part, log_part, count_part, journal = (r.out.split(MARK + "\n") + ["", "", ""])[:4]
    click.echo("== cloud-init ==")
    click.echo(status_part.rstrip())
    click.echo("== /var/log/cloud-init-output.log ==")
    click.echo(log_part.rstrip())
    if journal.strip():
        click.echo("== lcai units (journal) ==")
        click.echo(journal.rstrip())
    sources = _event_sources(host, rec, ssh, lines, None)
    for _, out, _ in sources:
        for line in out:
            click.echo(line)
    if not sources:
        click.echo("(no container events: no plugin records them for this deployment; add the buildwatch capability)")
    if not follow:
        return
    interval = L.env_seconds("LCAI_POLL_INTERVAL", 2.0)
    try:
        offset = int(count_part.strip() or 0)
    except ValueError:
        offset = 0
    cursors = {name: cur for name, _, cur in sources}
    try:
        while True:
            time.sleep(interval)
            r = run(ssh, f"tail -n +{offset + 1} /var/log/cloud-init-output.log 2>/dev/null", timeout=60)
            if r.ok:
                new = r.out.splitlines()
                offset += len(new)
                for line in new:
                    click.echo(line)
            else:
                _say(f"(ssh: {r.problem()}; retrying)")
            for name, out, cur in _event_sources(host, rec, ssh, 500, cursors):
                cursors[name] = cur if cur is not None else cursors.get(name)
                for line in out:
                    click.echo(line)
    except KeyboardInterrupt:
        return


def _event_sources(host, rec: dict, ssh, limit: int, cursors: Optional[dict]) -> list[tuple[str, list[str], object]]:
    """(plugin, lines, cursor) from each ``deployment_events`` implementation; with ``cursors`` (follow mode) only
    what came after each plugin's cursor."""
    from ..remote import run

    out: list[tuple[str, list[str], object]] = []
    for impl in host.each("deployment_events"):
        since = None if cursors is None else cursors.get(impl.name)
        try:
            got = impl(deployment=rec, run=lambda cmd: run(ssh, cmd, timeout=60), limit=limit, since=since)
        except Exception as e:  # one plugin's failure must not hide the logs
            if cursors is None:
                why = e.why if isinstance(e, PluginError) else f"{type(e).__name__}: {e}"
                out.append((impl.name, [f"unavailable: {why}"], None))
            continue
        if got is None:
            continue
        title, lines, cursor = got
        out.append((impl.name, ([f"== {title} =="] if cursors is None else []) + list(lines), cursor))
    return out


def _ssh_hint(rec: dict, r) -> str:
    d = rec.get("directory")
    if r.kind == "auth" and d and (Path(d) / ".linode" / "root-password").is_file():
        return (f"deploy found no SSH key and saved a root password in {Path(d) / '.linode' / 'root-password'}: "
                "add a key to ~/.ssh and run `lcai deploy` again (it rebuilds with your key)")
    if r.kind == "auth":
        return "is your SSH key on the machine? (LCAI_SSH='ssh -i KEY' picks another key)"
    return "is the machine running (lcai status)?"
