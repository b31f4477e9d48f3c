"""BuildWatch from the user's machine, over SSH.

Why SSH: the agent listens on the instance's 127.0.0.1 and the deployment's firewall never opens its port, so
nothing new is exposed; SSH is already how users reach the machine. Each query is one
`build-watcher query …` run through the provider's SSH endpoint (``lcai_core.api.frontend.run``) — the agent's
own CLI talks to its local API (and reads its token file when it is bound elsewhere), so no token ever leaves
the instance and no tunnel has to be managed. ``LCAI_SSH`` overrides the ssh command (e.g. ``ssh -i ~/.ssh/work``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Optional

from lcai_core.api import InputError


def remote(record: dict, cmd: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``cmd`` on the deployment's machine through its provider's SSH endpoint (lcai_core.api.frontend.run)."""
    from lcai_core.api.frontend import get_host, provider_of, run

    ssh = provider_of(get_host(), record).ssh(record)
    if ssh is None:
        raise InputError(f"deployment {record.get('deployment_id')} has no address yet",
                         hint="wait for it: lcai status")
    r = run(ssh, cmd, timeout=timeout)
    return r.rc, r.out, r.err


def _t(ts: Optional[float]) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def issue_lines(data: dict) -> list[str]:
    open_ = data.get("open") or []
    reported = [i for i in data.get("history") or [] if i.get("state") == "reported"][-5:]
    lines = [f"OPEN  {i['kind']:<14} since {_t(i.get('opened_at'))}  {i.get('explanation', '')}"
             + (f" (x{i['count']})" if i.get("count", 1) > 1 else "") for i in open_]
    lines += [f"      {i['kind']:<14} at {_t(i.get('opened_at'))}     {i.get('explanation', '')}" for i in reported]
    return lines or ["no issues"]


def issues_section(record: dict) -> tuple[str, list[str]]:
    rc, out, err = remote(record, "build-watcher query issues")
    if rc != 0:
        why = (err.strip().splitlines() or [f"exit {rc}"])[-1]
        return "buildwatch", [f"unreachable: {why}"]
    try:
        return "buildwatch", issue_lines(json.loads(out))
    except (ValueError, KeyError, TypeError):
        return "buildwatch", ["unreadable answer from the agent"]


def event_line(e: dict) -> str:
    extra = f" exit={e['exitCode']}" if "exitCode" in e else ""
    return f"{_t(e.get('time'))}  {e.get('name') or '-':<10} {e.get('action')}{extra}"


def events(deployment: dict, run, limit: int, since) -> Optional[tuple[str, list[str], float]]:
    """For `lcai logs` (the ``deployment_events`` hook): recent container events, or those after ``since``."""
    if "buildwatch" not in (deployment.get("features") or []):
        return None
    r = run(f"build-watcher query events --limit {int(limit)}" + (f" --since {since}" if since else ""))
    if not r.ok:
        return "container events (BuildWatch)", [f"BuildWatch is not answering yet ({r.problem()})"], since
    try:
        evs = json.loads(r.out or "[]")
    except ValueError:
        return "container events (BuildWatch)", ["unreadable answer from the agent"], since
    cursor = since
    for e in evs:
        cursor = max(cursor or 0, e.get("time") or 0)
    return "container events (BuildWatch)", [event_line(e) for e in evs], cursor


def tui_issue_lines(record: dict) -> list[str]:
    if "buildwatch" not in (record.get("features") or []):
        return ["not installed on this deployment (add the buildwatch capability)"]
    return issues_section(record)[1]


def tui_log_lines(record: dict, cursor: Optional[float]) -> tuple[list[str], Optional[float]]:
    """For lcai-tui's logs screen: cloud-init progress first, then container events since ``cursor`` (the last
    event time seen), following new ones on each call."""
    lines: list[str] = []
    if cursor is None:
        rc, out, err = remote(record, "cloud-init status --long 2>&1 | head -n 8; echo '--- cloud-init-output.log'; "
                                      "tail -n 20 /var/log/cloud-init-output.log 2>&1 || true")
        if rc == 0:
            lines += out.rstrip().splitlines()
        else:
            lines.append(f"(ssh: {(err.strip().splitlines() or [f'exit {rc}'])[-1]})")
        lines.append("--- container events (BuildWatch)")
    if "buildwatch" not in (record.get("features") or []):
        return lines + (["(no buildwatch capability on this deployment)"] if cursor is None else []), 0.0
    since = f" --since {cursor}" if cursor else ""
    rc, out, err = remote(record, f"build-watcher query events --limit 200{since}")
    if rc != 0:
        return lines + [f"(ssh: {(err.strip().splitlines() or [f'exit {rc}'])[-1]})"], cursor or 0.0
    events = json.loads(out or "[]")
    for e in events:
        cursor = max(cursor or 0, e.get("time") or 0)
    return lines + [event_line(e) for e in events], cursor or 0.0
