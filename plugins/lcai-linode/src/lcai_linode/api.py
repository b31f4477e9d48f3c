"""The Linode API client lcai uses: linode_api4 with explicit timeouts and lcai's own retries.

- Token: ``LINODE_TOKEN``, else ``LINODE_CLI_TOKEN``, else linode-cli's config file (its default user).
- Base URL: ``LCAI_LINODE_API_URL`` (e.g. ``http://127.0.0.1:8111/v4``), else linode-cli's
  ``LINODE_CLI_API_HOST``/``_SCHEME``/``_VERSION``, else ``https://api.linode.com/v4``.
- The SDK's own retry adapter is off (it re-POSTs, which can create an instance twice). GET/PUT/DELETE are
  retried on 408/429/5xx, "Linode busy" and connection errors with exponential backoff honouring Retry-After;
  a create is never re-sent blindly: callers look the resource up by its deployment tag first.
"""

from __future__ import annotations

import configparser
import os
import time
from typing import Any, Callable, Optional

from lcai_core.api import InputError, LcaiError, env_seconds

DEFAULT_URL = "https://api.linode.com/v4"


class ApiFailure(LcaiError):
    """The API kept failing (after retries), or refused a request."""


def _linode_cli_config() -> Optional[configparser.ConfigParser]:
    path = os.environ.get("LINODE_CLI_CONFIG")
    if not path:
        legacy = os.path.expanduser("~/.linode-cli")
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        path = legacy if os.path.isfile(legacy) else os.path.join(xdg, "linode-cli")
    if not os.path.isfile(path):
        return None
    cp = configparser.ConfigParser()
    try:
        cp.read(path)
    except configparser.Error:
        return None
    return cp


def resolve_token() -> tuple[str, str]:
    """(token, where it came from). Never logs or prints the token itself."""
    for var in ("LINODE_TOKEN", "LINODE_CLI_TOKEN"):
        if os.environ.get(var):
            return os.environ[var], var
    cp = _linode_cli_config()
    if cp is not None:
        user = cp.defaults().get("default-user")
        if user and cp.has_section(user) and cp.get(user, "token", fallback=None):
            return cp.get(user, "token"), "linode-cli config"
        if cp.defaults().get("token"):
            return cp.defaults()["token"], "linode-cli config"
    raise InputError("no Linode API token", hint="export LINODE_TOKEN=… (a personal access token with Linodes and "
                                                 "Firewalls read/write), or configure linode-cli")


def resolve_url() -> str:
    url = os.environ.get("LCAI_LINODE_API_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("LINODE_CLI_API_HOST")
    if host:
        scheme = os.environ.get("LINODE_CLI_API_SCHEME", "https")
        version = os.environ.get("LINODE_CLI_API_VERSION", "v4")
        return f"{scheme}://{host}/{version}"
    return DEFAULT_URL


def make_client(token: Optional[str] = None, url: Optional[str] = None):
    """A linode_api4 client with timeouts on every request and the SDK's retries off."""
    import requests.adapters
    from linode_api4 import LinodeClient

    from . import __version__

    timeout = (min(5.0, env_seconds("LCAI_HTTP_TIMEOUT", 30.0)), env_seconds("LCAI_HTTP_TIMEOUT", 30.0))

    class TimeoutAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kw):
            if kw.get("timeout") is None:
                kw["timeout"] = timeout
            return super().send(request, **kw)

    client = LinodeClient(token or resolve_token()[0], base_url=url or resolve_url(), page_size=500, retry=False,
                          user_agent=f"lcai/{__version__}")
    adapter = TimeoutAdapter(max_retries=0)
    client.session.mount("http://", adapter)
    client.session.mount("https://", adapter)
    return client


def is_busy(e: Exception) -> bool:
    return any("busy" in str(r).lower() for r in getattr(e, "errors", []) or [])


def retryable(e: Exception) -> bool:
    import requests
    from linode_api4 import ApiError

    if isinstance(e, ApiError):
        return e.status in (408, 429) or e.status >= 500 or (e.status == 400 and is_busy(e))
    return isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def describe(e: Exception) -> str:
    from linode_api4 import ApiError

    if isinstance(e, ApiError):
        return f"HTTP {e.status}: {'; '.join(map(str, e.errors or [])) or e}"
    text = str(e).splitlines()[0] if str(e) else ""
    for marker in ("Connection refused", "Read timed out", "Connection reset", "timed out", "Connection aborted"):
        if marker in text:
            text = marker.lower()
            break
    return f"{type(e).__name__}: {text[:160]}"


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def hopeless(e: Exception) -> Optional[str]:
    """Why retrying a connection error cannot help, or None: an unknown host, or a refused connection to a local
    URL (a simulator or proxy that is not running)."""
    import requests

    if not isinstance(e, requests.exceptions.ConnectionError):
        return None
    text = str(e)
    if any(s in text for s in ("Name or service not known", "nodename nor servname", "Temporary failure in name",
                                "NameResolutionError", "getaddrinfo failed", "No address associated")):
        return "unknown host"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        from urllib.parse import urlparse

        host = urlparse(resolve_url()).hostname or ""
        if host in ("localhost", "::1") or host.startswith("127."):
            return "connection refused (nothing listens there)"
    return None


class Retrier:
    """Backoff policy: ``LCAI_RETRY_DELAY`` base seconds (default 1), doubling, capped at 30; Retry-After wins.
    Each retry is said as it happens (``say``, default stderr); errors a retry cannot fix fail at once."""

    def __init__(self, attempts: int = 6, base: Optional[float] = None, sleep: Callable[[float], None] = time.sleep,
                 say: Optional[Callable[[str], None]] = None):
        self.attempts = attempts
        self.base = env_seconds("LCAI_RETRY_DELAY", 1.0) if base is None else base
        self.sleep = sleep
        self.say = say or _stderr

    def delay(self, attempt: int, e: Exception) -> float:
        resp = getattr(e, "response", None)
        ra = resp.headers.get("Retry-After") if resp is not None and getattr(resp, "headers", None) else None
        if ra is not None:
            try:
                return min(60.0, max(0.0, float(ra)))
            except ValueError:
                pass
        return min(30.0, self.base * (2 ** attempt))

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run an idempotent call (GET/PUT/DELETE) with retries."""
        from linode_api4 import ApiError

        last: Optional[Exception] = None
        for attempt in range(self.attempts):
            try:
                return fn()
            except Exception as e:  # classified below; anything else propagates unchanged
                if isinstance(e, ApiError) and not retryable(e):
                    raise
                if not retryable(e):
                    raise
                why = hopeless(e)
                if why:
                    raise ApiFailure(f"{what}: cannot reach the Linode API at {resolve_url()}: {why}",
                                     hint="check LCAI_LINODE_API_URL / your network") from None
                last = e
                if attempt + 1 < self.attempts:
                    d = self.delay(attempt, e)
                    self.say(f"retrying: {what}: {describe(e)} (attempt {attempt + 1}/{self.attempts}, "
                             f"next in {d:.1f}s)")
                    self.sleep(d)
        raise ApiFailure(f"{what} failed after {self.attempts} attempts at {resolve_url()}: {describe(last)}",
                         hint="the Linode API (or the network to it) may be degraded; try again in a minute")
