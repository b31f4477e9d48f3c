"""BuildWatch from the user's machine, over SSH.

Why SSH: the agent listens on the instance's 127.0.0.1 and the deployment's firewall never opens its port, so
nothing new is exposed; SSH is already how users reach the machine (keys from ~/.ssh). Each query is one
`ssh root@HOST build-watcher query …` — the agent's own CLI talks to its local API (and reads its token file
when it is bound elsewhere), so no token ever leaves the instance and no tunnel has to be managed.
``LCAI_SSH`` overrides the ssh command (e.g. ``ssh -i ~/.ssh/work``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from datetime import datetime, timezone
from typing import Optional

import click

from lcai_core.errors import InputError, LcaiError


def ssh_argv(record: dict, remote_cmd: str) -> list[str]:
    ip = record.get("ipv4")
    if not ip:
        raise InputError(f"deployment {record.get('deployment_id')} has no address yet",
                         hint="wait for it: lcai status")
    base = shlex.split(os.environ.get("LCAI_SSH", "ssh"))
    return [*base, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new",
            f"root@{ip}", remote_cmd]


def remote(record: dict, cmd: str, timeout: float = 30.0) -> tuple[int, str, str]:
    try:
        r = subprocess.run(ssh_argv(record, cmd), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LcaiError("ssh is not installed", hint="install an OpenSSH client, or set LCAI_SSH") from None
    except subprocess.TimeoutExpired:
        return 124, "", f"ssh timed out after {timeout:.0f}s"
    return r.returncode, r.stdout, r.stderr


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


@click.command("logs")
@click.argument("deployment_id")
@click.option("--lines", "-n", default=40, show_default=True, help="Lines of cloud-init output and events to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new container events (Ctrl-C to stop).")
def logs(deployment_id: str, lines: int, follow: bool) -> None:
    """Cloud-init progress and recent container events of a deployment, over SSH."""
    from lcai_core.registry import Registry

    rec = Registry().find(deployment_id)
    has_bw = "buildwatch" in (rec.get("features") or [])
    n = max(1, min(lines, 1000))
    cmd = (f"cloud-init status --long 2>&1 | head -n 8; echo '@@lcai@@'; "
           f"tail -n {n} /var/log/cloud-init-output.log 2>&1 || true; echo '@@lcai@@'; "
           + (f"build-watcher query events --limit {n}" if has_bw else "true"))
    rc, out, err = remote(rec, cmd, timeout=60)
    if rc != 0 and "@@lcai@@" not in out:
        raise LcaiError(f"could not reach {rec.get('ipv4')} over ssh: {(err.strip().splitlines() or ['?'])[-1]}",
                        hint="is the instance running (lcai status)? is your SSH key on it?")
    parts = out.split("@@lcai@@\n")
    click.echo("== cloud-init ==")
    click.echo(parts[0].rstrip())
    if len(parts) > 1:
        click.echo("== /var/log/cloud-init-output.log ==")
        click.echo(parts[1].rstrip())
    last: Optional[float] = None
    if has_bw and len(parts) > 2:
        click.echo("== container events (BuildWatch) ==")
        try:
            events = json.loads(parts[2])
        except ValueError:
            events = []
            click.echo(parts[2].rstrip() or "BuildWatch is not answering yet")
        for e in events:
            click.echo(event_line(e))
            last = max(last or 0, e.get("time") or 0)
    elif not has_bw:
        click.echo("(no container events: this deployment has no buildwatch capability)")
    if not follow:
        return
    if not has_bw:
        raise InputError("--follow needs the buildwatch capability on the deployment")
    interval = float(os.environ.get("LCAI_POLL_INTERVAL", "2"))
    try:
        while True:
            time.sleep(interval)
            since = f" --since {last}" if last else ""
            rc, out, err = remote(rec, f"build-watcher query events --limit 500{since}")
            if rc != 0:
                click.echo(f"(ssh: {(err.strip().splitlines() or [f'exit {rc}'])[-1]}; retrying)", err=True)
                continue
            for e in json.loads(out or "[]"):
                click.echo(event_line(e))
                last = max(last or 0, e.get("time") or 0)
    except KeyboardInterrupt:
        return


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
        lines += out.rstrip().splitlines() if rc == 0 else [f"(ssh: {(err.strip().splitlines() or [f'exit {rc}'])[-1]})"]
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
