"""Health of a deployment, with the template's settings: from the user's machine when the app's port answers
here, otherwise the instance's own result (``/var/lib/lcai/health.json``) read over SSH. Every answer says
which of the two it used."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Optional

from attrs import define

from .providers import Endpoint, Provider

ANYWHERE = ("0.0.0.0/0", "::/0")


@define
class Health:
    ok: Optional[bool]       # True healthy, False failing, None unknown / still waiting
    detail: str
    source: str              # "this machine", "instance", "none"
    final: bool = False      # the instance gave up (unhealthy): waiting longer will not help

    def word(self) -> str:
        return "healthy" if self.ok else ("unhealthy" if self.ok is False else "unknown")


def probe_endpoint(ep: Endpoint, health: dict, timeout: Optional[float] = None) -> tuple[bool, str]:
    """One check of ``ep`` from here: TCP connect or HTTP GET of the health path against the success codes."""
    t = float(timeout or health.get("timeout_seconds") or 5)
    if health.get("type") == "tcp":
        try:
            with socket.create_connection((ep.host, ep.port), timeout=t):
                return True, f"tcp {ep.host}:{ep.port} open"
        except OSError as e:
            return False, f"tcp {ep.host}:{ep.port}: {e.strerror or e}"
    url = ep.url(health.get("path") or "/")
    codes = health.get("success_codes") or [200]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=t) as resp:
            code = resp.status
    except urllib.error.HTTPError as e:
        code = e.code
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return False, f"{url}: {getattr(reason, 'strerror', None) or reason}"
    return (code in codes), f"{url} -> HTTP {code}"


def local_endpoint(provider: Provider, record: dict) -> Optional[Endpoint]:
    """The endpoint to check from here, or None when the check must run on the instance: exec checks, no public
    port, or an app port the firewall opens only to some sources (``--app-from``), which may exclude us."""
    h = record.get("health") or {}
    if h.get("type") not in ("http", "tcp"):
        return None
    sources = record.get("app_sources")
    if sources and tuple(sources) != ANYWHERE:
        return None
    return provider.app_endpoint(record)


def from_instance(provider: Provider, record: dict, timeout: float = 30.0) -> Health:
    """The instance's own answer over SSH: its first recorded failure (image pull, GPU check, boot step,
    cloud-init, health, an lcai unit), else its health unit's last result."""
    st, why = _read_instance(provider, record, timeout)
    if st is None:
        return Health(None, why, "none", final=why.startswith("cannot read the instance's health: no SSH access"))
    fail = st.failure()
    h = st.health
    if fail is not None and fail.kind != "health":
        return Health(False, fail.text, "instance", final=True)
    if h is None:
        ci = st.cloud_init or "unknown"
        return Health(None, f"no result yet (cloud-init {ci})", "instance")
    state = h.get("state")
    detail = str(h.get("detail") or "")
    att = f"attempt {h.get('attempt')}/{h.get('max_retries')}" if h.get("attempt") is not None else ""
    where = "instance"
    if state == "healthy":
        return Health(True, "healthy on the instance" + (f" ({att})" if att else ""), where)
    if state == "unhealthy":
        return Health(False, f"unhealthy on the instance: {detail or 'no detail'}" + (f" ({att})" if att else ""),
                      where, final=True)
    return Health(None, f"waiting ({', '.join(x for x in (att, detail) if x)})", where)


def _read_instance(provider: Provider, record: dict, timeout: float, connect_timeout: int = 10):
    """(the machine's record, None) when SSH answered, else (None, one line saying why not)."""
    from .errors import LcaiError
    from .remote import machine_state

    ssh = provider.ssh(record)
    if ssh is None:
        return None, "no address yet"
    try:
        st = machine_state(ssh, timeout=timeout, connect_timeout=connect_timeout)
    except LcaiError as e:  # no ssh program here
        return None, f"cannot read the instance's health: no SSH access: {e.message}"
    r = st.result
    if st.answered:
        return st, ""
    absent_fn = getattr(provider, "ssh_absent", None)
    absent = absent_fn(record) if callable(absent_fn) else None
    if r.kind == "auth" or absent:
        return None, (f"cannot read the instance's health: no SSH access to {ssh.describe()}"
                      + (f": {absent}" if absent and r.kind != "auth" else "") + f" ({r.problem()})")
    return None, f"cannot read the instance's health: SSH not answering to {ssh.describe()} ({r.problem()})"


def check(provider: Provider, record: dict) -> Health:
    """One health answer for ``status ID``/the TUI: the provider's own when it gives one (replicas behind a
    load balancer), else from here when possible — unless the instance's own record (read over SSH when it
    answers) holds a failure, which wins — else from the instance."""
    own = provider.health(record) if hasattr(provider, "health") else None
    if own is not None:  # the provider's own view (a load balancer's: ``healthy k/N``)
        return own
    h = record.get("health")
    if not h and record.get("template"):
        return Health(None, "no health check in the template", "none")
    ep = local_endpoint(provider, record) if h else None
    if h and ep is not None:
        ok, detail = probe_endpoint(ep, h)
        st, _ = _read_instance(provider, record, timeout=15, connect_timeout=5)
        fail = st.failure() if st is not None else None
        if fail is not None:
            return Health(False, f"{fail.text} (from this machine: {detail})", "instance", final=True)
        return Health(ok, detail, "this machine")
    return from_instance(provider, record)
