"""Deploy, redeploy, wait, destroy: the flow every provider gets for free (the commands in ``lcai_core.cli``
and the TUI call these; providers implement ``lcai_core.providers.Provider``).

Guarantees, for any provider:
- the deployment is recorded in the registry before the first create call;
- create runs the provider's undoable steps; when it is interrupted (Ctrl-C) or fails before the last step,
  every resource a step made is found and undone, in reverse, so the account holds either a tracked, complete
  deployment or nothing — and the command says which;
- a redeploy rebuilds the same machine with the new user data and keeps it tracked whatever happens;
- destroy deletes what the deployment created (already gone is fine) and every local file deploy wrote.
"""

from __future__ import annotations

import base64
import binascii
import glob
import ipaddress
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from .conventions import (  # noqa: F401  (the contract's names, here since before lcai_core.conventions)
    TAG,
    deployment_tags,
    env_seconds,
    instance_label,
    parse_tags,
    random_root_password,
    sha256,
)
from .errors import InputError, InterruptReported, LcaiError, PluginError, TrackedError
from .providers import Listing, Provider, Step

STATE = ".linode/state.json"          # this machine's state of the directory's deployment (0600: the secret seed)
LINK = ".lcai-deployment"             # the directory's link to its deployment, no secrets: safe to commit
ROOT_PASSWORD = ".linode/root-password"
CONNECT = "connect.sh"
ANYWHERE = ("0.0.0.0/0", "::/0")
SSH_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "ssh-dss")
RECORD_FIELDS = ("address", "status")  # step/wait results that belong to the record, not provider_state


class Cancelled(LcaiError):
    """The user answered no: nothing was changed (exit 1, not 130: nothing was interrupted)."""


# ---------------------------------------------------------------- inputs, checked before anything is created


def parse_sources(values: tuple[str, ...] | list[str], flag: str) -> tuple[str, ...]:
    """CIDRs for ``--ssh-from``/``--app-from``: a bare address means that one host (/32, /128)."""
    out = []
    for v in values:
        try:
            net = ipaddress.ip_network(v.strip(), strict=False)
        except ValueError:
            raise InputError(f"{flag} {v!r}: not an IP address or network "
                             "(e.g. 203.0.113.7 or 203.0.113.0/24)") from None
        out.append(str(net))
    return tuple(out) or ANYWHERE


def ssh_public_keys() -> list[str]:
    """The user's public keys (``~/.ssh/*.pub``) of types the Linode API accepts, with a valid base64 body."""
    keys = []
    for p in sorted(glob.glob(os.path.expanduser("~/.ssh/*.pub"))):
        try:
            line = Path(p).read_text().strip()
        except OSError:
            continue
        parts = line.split()
        if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
            continue
        try:
            base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            continue
        keys.append(line)
    return keys


# ---------------------------------------------------------------- providers


def providers(host) -> dict[str, Provider]:
    return host.providers


def provider_named(host, name: str) -> Provider:
    provs = providers(host)
    if name in provs:
        return provs[name]
    from .first_party import PROVIDERS

    have = ", ".join(sorted(provs)) or "none"
    install = f"pip install {PROVIDERS[name]}, or pick another with --target" if name in PROVIDERS else \
        "install the plugin that provides it, or pick another with --target"
    raise InputError(f"no provider named {name!r} is installed (installed: {have})", hint=install)


def provider_of(host, record: dict) -> Provider:
    return provider_named(host, record.get("provider") or "linode")


def list_all(host, records: dict[str, dict],
             failures: Optional[list[PluginError]] = None) -> tuple[list[dict], list[tuple[str, Listing]]]:
    """Rows of every deployment from every provider that has records here or is configured, each provider asked
    once. Returns (rows, [(provider name, listing)]) so callers can say which sources were not reached.

    A provider whose ``rows`` or ``configured`` fails (a bug in its plugin) does not hide the others: its
    records are listed as the registry has them (``reached=False``) and its ``PluginError`` is appended to
    ``failures`` for the caller to report."""
    provs = providers(host)
    by_prov: dict[str, dict[str, dict]] = {}
    for dep, rec in records.items():
        by_prov.setdefault(rec.get("provider") or "linode", {})[dep] = rec
    rows: list[dict] = []
    listings: list[tuple[str, Listing]] = []
    for name in sorted(set(by_prov) | {n for n, p in provs.items() if configured(host, p, failures)}):
        recs = by_prov.get(name, {})
        prov = provs.get(name)
        if prov is None:
            listing = Listing([dict(r, live_status=r.get("status")) for r in recs.values()],
                              f"registry (provider {name!r} is not installed)", reached=False)
        else:
            try:
                listing = host.call_provider(prov, "rows", recs)
            except PluginError as e:
                if failures is not None:
                    failures.append(e)
                listing = Listing([dict(r, live_status=r.get("status")) for r in recs.values()],
                                  f"registry ({e.call} failed)", reached=False)
            except LcaiError as e:
                listing = Listing([dict(r, live_status=r.get("status")) for r in recs.values()],
                                  f"registry ({e.message})", reached=False)
        for r in listing.rows:
            r.setdefault("provider", name)
        rows.extend(listing.rows)
        listings.append((name, listing))
    rows.sort(key=lambda r: (r.get("created_at") or "", r.get("deployment_id") or ""))
    return rows, listings


def configured(host, prov: Provider, failures: Optional[list[PluginError]] = None) -> bool:
    """The provider's ``configured()``. One that fails (raises anything, an ``LcaiError`` too: it only answers a
    question) counts as not configured — listed only when it has records — and its ``PluginError`` is appended
    to ``failures``."""
    try:
        return bool(host.call_provider(prov, "configured", explained=()))
    except PluginError as e:
        if failures is not None:
            failures.append(e)
        return False


def detail(host, prov: Provider, record: dict,
           failures: Optional[list[PluginError]] = None) -> list[tuple[str, object]]:
    """The provider's ``detail(record)`` lines; none when it fails (its ``PluginError`` goes to ``failures``)."""
    try:
        return list(host.call_provider(prov, "detail", record, explained=()))
    except PluginError as e:
        if failures is not None:
            failures.append(e)
        return []


# ---------------------------------------------------------------- the deployment directory


def read_state(directory: Path) -> Optional[dict]:
    """The directory's deployment: ``.linode/state.json`` (this machine's, with the seed), else the committed
    link ``.lcai-deployment`` (another machine deployed it: ``lcai sync`` adopts it)."""
    for rel in (STATE, LINK):
        p = Path(directory) / rel
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            return None
        except (OSError, ValueError):
            raise InputError(f"{p}: unreadable",
                             hint="move it aside; `lcai sync` and `lcai status` still list the deployment") from None
        if isinstance(data, dict) and isinstance(data.get("deployment_id"), str):
            return data
    return None


def write_state(directory: Path, data: dict) -> None:
    from .files import write_private

    write_private(Path(directory) / STATE, json.dumps(data, indent=2, sort_keys=True) + "\n")
    link = {k: data.get(k) for k in ("deployment_id", "provider", "label", "app", "env", "region", "created_at")}
    (Path(directory) / LINK).write_text(json.dumps(link, indent=2) + "\n")


def remove_local_files(directory: Optional[str], deployment_id: str) -> list[str]:
    """Every file deploy wrote into the directory (state, connect.sh, root password), if the directory's state
    names this deployment; ``.linode/`` goes too when nothing else is left in it."""
    if not directory:
        return []
    d = Path(directory)
    removed = []
    kept = d / ".linode" / "previous" / deployment_id  # what `deploy --new` moved aside for this deployment
    if kept.is_dir():
        import shutil

        shutil.rmtree(kept, ignore_errors=True)
        removed.append(f".linode/previous/{deployment_id}/")
        try:
            (d / ".linode" / "previous").rmdir()
        except OSError:
            pass
    st = None
    try:
        st = read_state(d)
    except InputError:
        pass
    if st is None or st.get("deployment_id") != deployment_id:
        return removed
    for rel in (STATE, LINK, ROOT_PASSWORD, CONNECT):
        p = d / rel
        try:
            p.unlink()
            removed.append(rel)
        except FileNotFoundError:
            pass
    try:
        (d / ".linode").rmdir()
    except OSError:
        pass
    return removed


def resolve(registry, deployment_id: Optional[str], directory: Optional[Path] = None) -> dict:
    """The record an ID (or unique prefix) names; without an ID, the one the directory (default: the current
    one) was deployed as. Links the record to the directory when it did not know it (after `lcai sync`)."""
    if deployment_id:
        return registry.find(deployment_id)
    d = Path(directory or ".")
    st = read_state(d)
    if st is None:
        raise InputError(f"give a deployment ID: {d.resolve()} holds no deployment ({STATE})",
                         hint="`lcai status` lists deployments; run it inside a deployment directory to omit the ID")
    dep = st["deployment_id"]
    rec = registry.get(dep)
    if rec is None:
        raise InputError(f"{d / STATE} names deployment {dep}, which this machine's registry does not know",
                         hint="`lcai sync` adopts deployments made on another machine")
    if not rec.get("directory"):
        rec = registry.update(dep, directory=str(d.resolve()))
    return rec


# ---------------------------------------------------------------- output


def confirm(question: str, what: str) -> None:
    """Ask on a terminal; refuse (exit 2) elsewhere. 'no' raises Cancelled (exit 1); Ctrl-C is an interrupt."""
    if not sys.stdin.isatty():
        raise InputError(f"{what}; confirm with --yes when not on a terminal")
    import click

    try:
        ok = click.confirm(question, default=False, err=True)
    except click.exceptions.Abort:
        click.echo("", err=True)
        raise KeyboardInterrupt from None
    if not ok:
        raise Cancelled("not confirmed: nothing was changed")


# ---------------------------------------------------------------- create (steps, undone on failure)


class StepRunner:
    """Runs a provider's create steps, recording ``provider_state`` after each; undoes them on failure."""

    def __init__(self, registry, deployment_id: str, say: Callable[[str], None], provider_name: str = "",
                 done_status: Optional[str] = None):
        """``done_status``: the record's status once every step ran (unless a step set one), written with the
        last step's save."""
        self.reg, self.dep, self.say, self.provider_name = registry, deployment_id, say, provider_name
        self.done_status = done_status
        self.state: dict = {}
        self.record_fields: dict = {}

    def _take(self, fields: Optional[dict]) -> None:
        for k, v in (fields or {}).items():
            (self.record_fields if k in RECORD_FIELDS else self.state)[k] = v

    def _save(self) -> None:
        self.reg.update(self.dep, provider_state=dict(self.state), **self.record_fields)

    def run(self, steps: list[Step]) -> None:
        done_status = self.done_status
        done: list[Step] = []
        current: Optional[Step] = None
        try:
            for i, step in enumerate(steps):
                current = step
                self._take(step.run(dict(self.state), self.say))
                done.append(step)
                current = None  # done: a failure from here on (saving it) undoes it once, as a done step
                if done_status and i == len(steps) - 1 and not self.record_fields.get("status"):
                    self.record_fields["status"] = done_status
                self._save()
            if done_status and not steps:
                self.reg.update(self.dep, status=done_status)
        except KeyboardInterrupt as e:
            if self._complete_after_interrupt(steps, done, current):
                self.say(f"interrupted: deployment {self.dep} exists and is tracked "
                         f"(`lcai status {self.dep}`, `lcai destroy {self.dep}`)")
                raise InterruptReported() from e
            self._undo(steps, done, current, "interrupted")
            raise InterruptReported() from e
        except Exception as e:
            self._undo(steps, done, current, "failed", error=e)
            raise

    def _complete_after_interrupt(self, steps: list[Step], done: list[Step], current: Optional[Step]) -> bool:
        """Interrupted: did every step happen after all (the last create's reply was lost to Ctrl-C)?"""
        try:
            for step in steps[len(done):]:
                found = step.find(dict(self.state))
                if found is None:
                    return False
                self._take(found)
            self._save()
            return True
        except Exception:  # cannot tell: undo decides below
            return False

    def _undo(self, steps: list[Step], done: list[Step], current: Optional[Step], why: str,
              error: Optional[Exception] = None) -> None:
        todo = list(done)
        try:
            if current is not None:
                found = current.find(dict(self.state))
                if found is not None:
                    self._take(found)
                    todo.append(current)
            for step in reversed(todo):
                step.undo(dict(self.state), self.say)
        except Exception as e:  # cleanup must report, never hide, what is left
            self.reg.update(self.dep, status="creating", provider_state=dict(self.state), **self.record_fields)
            self.say(f"{why}: could not remove what was created ({type(e).__name__}: {e}); deployment {self.dep} "
                     f"stays recorded: `lcai destroy {self.dep}` deletes what exists")
            return
        self.reg.remove(self.dep)
        removed = f" ({', '.join(s.name for s in reversed(todo))} removed)" if todo else ""
        self.say(f"{why}: nothing was created{removed}" if why == "interrupted" else
                 f"{why}: nothing was left on {self.provider_name or 'the provider'}{removed}")


# ---------------------------------------------------------------- wait until healthy


def health_budget(health: Optional[dict]) -> float:
    if not health:
        return 0.0
    return health["initial_delay_seconds"] + health["max_retries"] * (
        health["interval_seconds"] + health["timeout_seconds"])


def wait_ready(prov: Provider, registry, record: dict, prog, deadline: float) -> str:
    """Wait until the machine runs (the provider), then until the app is healthy or the instance records its
    first failure (``lcai_core.waiting``: the instance's own record over SSH, the app's port from here when it
    answers here, one verdict). Returns the health word ("healthy", "unknown" when it could not be checked);
    raises LcaiError when it failed or timed out (the deployment stays tracked). The spinner is gone on return."""
    from .waiting import Waiter

    try:
        fields = prov.wait(record, prog.say, deadline) or {}
        own = {k: v for k, v in fields.items() if k not in RECORD_FIELDS}  # the provider's: into provider_state
        record.update({k: v for k, v in fields.items() if k in RECORD_FIELDS})
        if own:
            record["provider_state"] = {**(record.get("provider_state") or {}), **own}
        if fields:
            registry.update(record["deployment_id"], **{k: v for k, v in fields.items() if k in RECORD_FIELDS},
                            **({"provider_state": record["provider_state"]} if own else {}))
        _clear(prog)
        if record.get("replicas") is not None and getattr(prov, "supports_replicas", False):
            return _wait_replicas_healthy(prov, registry, record, prog, deadline,
                                          env_seconds("LCAI_POLL_INTERVAL", 5.0))
        return Waiter(prov, registry, record, prog, deadline).run()
    finally:
        _clear(prog)


def _clear(prog) -> None:
    """Remove the spinner line (lcai_core.ui.Progress.clear) before permanent output follows."""
    if hasattr(prog, "clear"):
        prog.clear()


def _wait_replicas_healthy(prov: Provider, registry, record: dict, prog, deadline: float, poll: float) -> str:
    """Replicas behind a load balancer: healthy when every replica passes the balancer's check."""
    dep = record["deployment_id"]
    last = None
    while True:
        res = prov.health(record)
        if res is not None and res.detail != last:
            prog.say(f"health ({res.source}): {res.detail}")
            last = res.detail
        fields = {"health_status": res.word() if res else "unknown", "health_detail": res.detail if res else None,
                  "health_source": res.source if res else None}
        if record.get("replicas_healthy") is not None:
            fields["replicas_healthy"] = record["replicas_healthy"]
        if res is not None and res.ok:
            registry.update(dep, **fields)
            return "healthy"
        if (res is not None and res.final) or time.monotonic() > deadline:
            registry.update(dep, **fields)
            raise TrackedError(f"deployment {dep}: {last}" if res is not None and res.final else
                               f"deployment {dep} did not become healthy in time: {last or 'no answer'}",
                               hint=f"it is tracked and running: `lcai status {dep}` lists each replica's node, "
                                    f"`lcai logs {dep}`, or `lcai destroy {dep}`")
        time.sleep(poll)


# ---------------------------------------------------------------- destroy


def destroy(host, registry, record: dict, say: Callable[[str], None], volumes: bool = False) -> list[str]:
    """Delete the deployment's resources (provider), forget it, remove the local files deploy wrote.
    Returns the local files removed. Refused (``registry.Busy``) while another lcai process deploys it.

    Its volumes are kept unless ``volumes``: the record then stays, with status ``volumes kept`` and what is
    kept, so nothing lcai made is unknown here (``destroy ID --volumes`` deletes them later; the next deploy of
    the app and env attaches them again)."""
    from .conventions import VOLUMES_KEPT
    from .registry import deployment_lock

    prov = provider_of(host, record)
    dep = record["deployment_id"]
    with deployment_lock(dep, "destroy"):
        if record.get("status") != VOLUMES_KEPT:
            host.call_provider(prov, "destroy", record, say)
        kept = list(record.get("volumes") or [])
        if kept and volumes:
            host.call_provider(prov, "delete_volumes", record, say)
            kept = []
        if not record.get("untracked"):
            if kept:
                state = {k: v for k, v in (record.get("provider_state") or {}).items() if k == "volumes"}
                registry.update(dep, status=VOLUMES_KEPT, address=None, health_status=None, health_detail=None,
                                price_hourly=None, price_monthly=None, provider_state=state)  # no machine bills
                say("kept: " + ", ".join(f"volume {v.get('name')} ({v.get('label')}, {v.get('size_gb')} GB)"
                                         for v in kept)
                    + f", with their data: `lcai destroy {dep} --volumes` deletes them; the next deploy of this "
                    "app and env attaches them again")
            else:
                registry.remove(dep)
        return remove_local_files(record.get("directory"), dep)
