"""The local deployments registry: ``<config dir>/registry.json``.

Records are provider-neutral (``provider``, ``address``, ``external_port``, ``health``, ``directory``, …);
what a provider needs to find its own resources lives in the provider-owned ``provider_state`` sub-record.
Schema 1 files (lcai 0.1, Linode only: ``linode_id``/``firewall_id``/``ipv4`` at the top level) are read and
migrated in memory; the next write stores schema 2.

A cache of cloud truth (instance tags are the truth; ``lcai sync`` rebuilds it). Every change is a
read-modify-write under a file lock, written to a temp file, fsynced and atomically renamed: concurrent
deploys never lose entries and a crash mid-write never leaves a torn file. It holds no secrets — only ids,
names, places and states.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import LcaiError
from .paths import config_dir

SCHEMA = 2
SECRET_KEYS = ("password", "root_pass", "token", "secret", "user_data")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    def __init__(self, path: Optional[str | os.PathLike] = None, lock_timeout: float = 30.0):
        self.path = Path(path) if path else Path(config_dir()) / "registry.json"
        self.lock_timeout = lock_timeout

    @contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".lock")
        try:
            with lock.acquire(timeout=self.lock_timeout):
                yield
        except Timeout:
            raise LcaiError(f"the registry {self.path} is locked by another lcai process",
                            hint=f"wait for it to finish; if none is running, delete {self.path}.lock") from None

    def _read(self) -> dict:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"schema": SCHEMA, "deployments": {}}
        try:
            data = json.loads(raw)
        except ValueError:
            raise LcaiError(f"{self.path} is not valid JSON",
                            hint="move it aside and run `lcai sync` to rebuild it from instance tags") from None
        if not isinstance(data, dict) or not isinstance(data.get("deployments"), dict):
            raise LcaiError(f"{self.path}: unexpected format", hint="move it aside and run `lcai sync`")
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise LcaiError(f"{self.path}: \"schema\" is {schema!r}, not a number; the file was not changed",
                            hint="move it aside and run `lcai sync` to rebuild it from instance tags")
        bad = [k for k, rec in data["deployments"].items() if not isinstance(rec, dict)]
        if bad:
            raise LcaiError(f"{self.path}: deployment {bad[0]!r} is {type(data['deployments'][bad[0]]).__name__}, "
                            "not a record; the file was not changed",
                            hint="fix or remove that entry, or move the file aside and run `lcai sync`")
        if schema > SCHEMA:
            raise LcaiError(f"{self.path} was written by a newer lcai (schema {schema})",
                            hint="upgrade lcai-core")
        if schema < 2:
            for rec in data["deployments"].values():
                if isinstance(rec, dict):
                    migrate_v1(rec)
        for key, rec in data["deployments"].items():
            wrong = _wrong_field(key, rec)
            if wrong:
                raise LcaiError(f"{self.path}: deployment {key!r}: {wrong}; the file was not changed",
                                hint="fix or remove that entry, or move the file aside and run `lcai sync`")
        return data

    def _write(self, data: dict) -> None:
        from .files import write_private

        data["schema"] = SCHEMA
        write_private(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------ API

    def all(self) -> dict[str, dict]:
        return self._read()["deployments"]

    def get(self, deployment_id: str) -> Optional[dict]:
        return self.all().get(deployment_id)

    def update(self, deployment_id: str, create: bool = False, **fields: Any) -> dict:
        """Merge ``fields`` into one record (created if ``create``) under the lock; returns the record."""
        for k, v in fields.items():
            nested = list(v) if isinstance(v, dict) else []
            for key in [k, *nested]:
                if any(s in key for s in SECRET_KEYS):
                    raise LcaiError(f"internal: refusing to store {key!r} in the registry")
        with self._locked():
            data = self._read()
            deps = data["deployments"]
            if deployment_id not in deps:
                if not create:
                    raise LcaiError(f"no deployment {deployment_id} in the registry", hint="see `lcai status`")
                deps[deployment_id] = {"deployment_id": deployment_id, "created_at": now_iso()}
            deps[deployment_id].update(fields)
            deps[deployment_id]["updated_at"] = now_iso()
            self._write(data)
            return dict(deps[deployment_id])

    def transform(self, fn: Callable[[dict[str, dict]], None]) -> None:
        """Apply ``fn`` to all records (in place) under one lock: for sync and purge."""
        with self._locked():
            data = self._read()
            fn(data["deployments"])
            self._write(data)

    def remove(self, deployment_id: str) -> bool:
        with self._locked():
            data = self._read()
            existed = data["deployments"].pop(deployment_id, None) is not None
            self._write(data)
            return existed

    def find(self, prefix: str) -> dict:
        """A record by id or a unique id prefix of at least ``MIN_PREFIX`` characters (like git's short
        hashes)."""
        deps = self.all()
        if prefix in deps:
            return deps[prefix]
        from .errors import InputError

        matches = [d for k, d in deps.items() if k.startswith(prefix)]
        if len(prefix) < MIN_PREFIX and len(matches) == 1:  # `destroy n --yes` must not pick one by luck
            raise InputError(f"{prefix!r} is too short to name a deployment: give at least {MIN_PREFIX} characters "
                             "of its id (candidates: " + ", ".join(sorted(d["deployment_id"] for d in matches)[:8])
                             + (", …" if len(matches) > 8 else "") + ")")
        if len(matches) == 1:
            return matches[0]

        if not matches:
            raise InputError(f"no deployment {prefix!r} in the registry",
                             hint="`lcai status` lists them; `lcai sync` adopts ones created elsewhere")
        raise InputError(f"{prefix!r} matches {len(matches)} deployments: "
                         + ", ".join(sorted(d['deployment_id'] for d in matches)),
                         hint=f"give enough of the id to name one (at least {MIN_PREFIX} characters)")


MIN_PREFIX = 4  # the shortest id prefix `status`, `destroy`, `scale` … accept (a full id of any length works)


# ------------------------------------------------------------ one deployment at a time

_held: dict[tuple[str, int], int] = {}  # (deployment id, thread) -> times that thread holds its lock (re-entrant)


class Busy(LcaiError):
    """Another lcai process is deploying or destroying this deployment: exit 1, try again when it is done."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def deployment_lock(deployment_id: str, action: str) -> Iterator[None]:
    """Held by ``deploy`` (create or redeploy) and ``destroy`` of one deployment for as long as they work on it,
    so a destroy during a running deploy of the same deployment (or two deploys) is refused at once, in one
    line naming the holder: ``<config dir>/locks/ID.lock`` (an OS lock: it goes with its process) and
    ``ID.holder`` (pid, action, since). A lock left by a process that is gone is free. Re-entrant within one
    thread (destroy holds it across the confirmation and the deletion)."""
    from filelock import FileLock, Timeout

    from .ui import cmd

    import threading

    key = (deployment_id, threading.get_ident())
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    d = Path(config_dir()) / "locks"
    d.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(d / f"{deployment_id}.lock"))
    holder_file = d / f"{deployment_id}.holder"
    for attempt in (1, 2):
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            try:
                holder = json.loads(holder_file.read_text())
            except (OSError, ValueError):
                holder = {}
            pid = holder.get("pid")
            if attempt == 1 and isinstance(pid, int) and not _alive(pid):
                # left by a process that is gone (a lock file without an OS lock behind it): free
                (d / f"{deployment_id}.lock").unlink(missing_ok=True)
                continue
            who = f"`{cmd(holder['action'])}` (pid {pid}, since {holder.get('since', '?')})" \
                if holder.get("action") else "another lcai process"
            raise Busy(f"deployment {deployment_id} is busy: {who} is working on it; {action} refused",
                       hint=f"wait for it to finish (or interrupt it), then run {action} again") from None
    try:
        from .files import write_private

        write_private(holder_file, json.dumps({"pid": os.getpid(), "action": action, "since": now_iso()}) + "\n")
        _held[key] = 1
        yield
    finally:
        _held.pop(key, None)
        try:
            holder_file.unlink()
        except FileNotFoundError:
            pass
        lock.release()


#: record keys core reads as text (a number or a list there is a hand-edited or damaged registry.json)
TEXT_KEYS = ("provider", "app", "env", "label", "status", "address", "directory", "source", "created_at",
             "updated_at", "rebuilt_at", "template", "template_version", "image", "type", "region", "runtime",
             "container_image", "health_status", "health_detail", "health_source", "rendered_sha256")


def _wrong_field(key: str, rec: dict) -> Optional[str]:
    """What is wrong with one record's shape (the fields core reads), or None."""
    dep = rec.get("deployment_id")
    if dep != key:
        return ("it has no \"deployment_id\"" if dep is None
                else f"\"deployment_id\" is {dep!r}, not the key it is stored under")
    for k in TEXT_KEYS:
        v = rec.get(k)
        if v is not None and not isinstance(v, str):
            return f"\"{k}\" is {v!r}, not text"
    st = rec.get("provider_state")
    if st is not None and not isinstance(st, dict):
        return f"\"provider_state\" is {type(st).__name__}, not an object"
    n = rec.get("replicas")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
        return f"\"replicas\" is {n!r}, not a number"
    return None


def migrate_v1(rec: dict) -> dict:
    """Schema 1 → 2 in place: Linode ids into ``provider_state``, ``ipv4`` → ``address``."""
    state = rec.setdefault("provider_state", {})
    for key in ("linode_id", "firewall_id"):
        if key in rec:
            state[key] = rec.pop(key)
    if "ipv4" in rec:
        rec.setdefault("address", rec.pop("ipv4"))
    rec.setdefault("provider", "linode")
    return rec


@lru_cache(maxsize=4096)
def _epoch(iso: str) -> Optional[float]:
    try:
        return datetime.strptime(iso.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def age(iso: Optional[str], now: Optional[float] = None) -> str:
    t = _epoch(iso) if iso else None
    if t is None:
        return "-"
    s = max(0, int((now or time.time()) - t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
