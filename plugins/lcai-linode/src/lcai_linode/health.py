"""Health checks from the user's machine, with the template's settings (what `deploy --wait` and `status ID` do)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Optional


def probe(record: dict, timeout: Optional[float] = None) -> tuple[Optional[bool], str]:
    """(True/False, detail), or (None, why it cannot be checked from here)."""
    h = record.get("health") or {}
    ip = record.get("ipv4")
    port = record.get("external_port")
    if not h:
        return None, "no health check in the template"
    if not ip:
        return None, "no address yet"
    if h.get("type") == "exec":
        return None, "exec check runs on the instance"
    if not port:
        return None, "port not published (checked on the instance)"
    t = float(timeout or h.get("timeout_seconds") or 5)
    if h.get("type") == "tcp":
        try:
            with socket.create_connection((ip, int(port)), timeout=t):
                return True, f"tcp {ip}:{port} open"
        except OSError as e:
            return False, f"tcp {ip}:{port}: {e.strerror or e}"
    url = f"http://{ip}:{port}{h.get('path') or '/'}"
    codes = h.get("success_codes") or [200]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=t) as resp:
            code = resp.status
    except urllib.error.HTTPError as e:
        code = e.code
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return False, f"{url}: {getattr(reason, 'strerror', None) or reason}"
    return (code in codes), f"{url} -> HTTP {code}"
