"""The simulated app on a simulated instance: what its health check answers, learnt from the user data.

lcai renders the template's health check into ``/usr/local/lib/lcai/health-wait`` (a ``write_files`` entry of
the cloud-config): ``curl … http://127.0.0.1:PORT/PATH`` with ``case "$code" in 200|204)`` for an http check,
``/dev/tcp/127.0.0.1/PORT`` for a tcp check. The app unit publishes ports with ``-p HOST:CONTAINER``
(docker). :func:`health_settings` reads both from the user data (base64, optionally gzip, optionally MIME
multipart; write_files content in any cloud-init encoding), so the simulator answers exactly the template's
health path with one of its success codes, and 404 on every other path.

The app's state is controlled by tests through ``/_sim/instances/{id}/app`` (see simulator.py):
``healthy`` (default), ``unhealthy`` (the health path answers 503; a tcp app stops listening) and
``crashed`` (nothing listens; optionally restarts after ``restart_after_s`` as ``Restart=always`` would).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import shlex
import threading
import time
from dataclasses import asdict, dataclass, field
from email import message_from_string
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

HEALTH_SCRIPT_SUFFIX = "/health-wait"


class Server(ThreadingHTTPServer):
    """A threading HTTP server for the simulator: a client that goes away mid-request (a timeout, a reset) is
    normal traffic, not an error to print; anything else is printed as usual."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

APP_STATES = ("healthy", "unhealthy", "crashed")


class Listeners:
    """HTTP listeners on one loopback address, one per port (``servers``, ``errors``, ``lock`` and ``stopped`` are
    set by the subclass): started in a thread, closed one by one, all stopped at once."""

    ip: str
    servers: dict
    errors: dict
    lock: threading.Lock
    stopped: bool

    def _start_listener(self, port: int, handler, what: str) -> None:
        try:
            srv = Server((self.ip, port), handler)
        except OSError as e:
            self.errors[port] = f"cannot serve {what} on {self.ip}:{port}: {e}"
            return
        srv.daemon_threads = True
        self.servers[port] = srv
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _close(self, port: int) -> None:
        srv = self.servers.pop(port, None)
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for port in list(self.servers):
                self._close(port)


@dataclass
class HealthSettings:
    type: Optional[str] = None            # http | tcp | exec | None (no health check in the template)
    port: Optional[int] = None            # the port the health check reaches
    path: str = "/"                       # http: the exact path (with query) that answers
    codes: list = field(default_factory=lambda: [200])
    public_ports: list = field(default_factory=list)  # reachable from outside: docker -p H:C, else the health port
    source: str = "none"                  # user-data | hint | none

    def ports(self) -> list[int]:
        """The ports reachable from outside the instance (a port published on 127.0.0.1 only is not)."""
        return list(self.public_ports)

    def to_json(self) -> dict:
        return asdict(self)


def decode_user_data(b64: Optional[str]) -> str:
    """The cloud-config text of base64 user data (gzip and MIME multipart handled); '' when undecodable."""
    if not b64:
        return ""
    try:
        raw = base64.b64decode(b64)
    except (binascii.Error, ValueError):
        return ""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return ""
    text = raw.decode("utf-8", "replace")
    if text.lstrip().lower().startswith("content-type: multipart") or text.startswith("MIME-Version"):
        msg = message_from_string(text)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            if payload[:2] == b"\x1f\x8b":
                try:
                    payload = gzip.decompress(payload)
                except (OSError, EOFError):
                    continue
            parts.append(payload.decode("utf-8", "replace"))
        text = "\n".join(parts)
    return text


def _decode_content(content: str, encoding: Optional[str]) -> str:
    enc = (encoding or "").lower()
    try:
        data = content.encode()
        if enc in ("b64", "base64", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"):
            data = base64.b64decode(content)
        if enc.startswith("gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8", "replace")
    except (binascii.Error, ValueError, OSError, EOFError):
        return ""


def _write_files(text: str) -> list[dict]:
    try:
        import yaml

        doc = yaml.safe_load(text)
    except Exception:  # not YAML (a shell script, a broken document): nothing to read structurally
        return []
    wf = doc.get("write_files") if isinstance(doc, dict) else None
    return [f for f in wf if isinstance(f, dict)] if isinstance(wf, list) else []


def _url_token(script: str) -> Optional[str]:
    m = re.search(r"""['"]?http://127\.0\.0\.1:\d+""", script)
    if not m:
        return None
    lex = shlex.shlex(script[m.start():], posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        return lex.get_token()
    except ValueError:
        return None


def parse_health_script(script: str) -> HealthSettings:
    s = HealthSettings(source="user-data")
    if m := re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)", script):
        s.type, s.port = "tcp", int(m.group(1))
        return s
    if "curl" in script and (tok := _url_token(script)):
        g = re.match(r"http://127\.0\.0\.1:(\d+)(.*)", tok)
        if g:
            s.type, s.port, s.path = "http", int(g.group(1)), g.group(2) or "/"
            if c := re.search(r'case "\$code" in ([0-9|]+)\)', script):
                s.codes = [int(x) for x in c.group(1).split("|") if x]
            return s
    s.type = "exec"
    return s


def _published_ports(text: str) -> list[int]:
    """Host ports the app publishes on every address (docker ``-p HOST:CONTAINER``; not ``-p 127.0.0.1:…``)."""
    out = []
    for m in re.finditer(r"(?:-p|--publish)[ =]((?:[0-9.]+:)?)(\d+):\d+(?:/tcp)?\b", text):
        if m.group(1) in ("", "0.0.0.0:") and int(m.group(2)) not in out:
            out.append(int(m.group(2)))
    return out


def health_settings(user_data_b64: Optional[str]) -> HealthSettings:
    """What the app booted from this user data answers (see the module docstring)."""
    text = decode_user_data(user_data_b64)
    if not text:
        return HealthSettings()
    script = None
    files = _write_files(text)
    for f in files:
        if str(f.get("path", "")).endswith(HEALTH_SCRIPT_SUFFIX):
            script = _decode_content(str(f.get("content") or ""), f.get("encoding"))
            break
    if script is None and not files and "lcai health wait" in text:
        script = text  # not parseable as YAML: read the rendered script from the raw text
    settings = parse_health_script(script) if script else HealthSettings(source="user-data")
    unit_text = "\n".join(_decode_content(str(f.get("content") or ""), f.get("encoding")) for f in files) or text
    if re.search(r"docker\S* run ", unit_text):
        settings.public_ports = _published_ports(unit_text)
    elif settings.port is not None:  # a host process (native runtime) binds its port on every address
        settings.public_ports = [settings.port]
    if settings.type is None and not settings.public_ports:
        settings.source = "none"
    return settings


class App(Listeners):
    """One instance's app: listeners on its public IPv4 for each port, answering as the template says.

    ``ready()`` says whether the instance is up long enough for the app to serve (running + app_ready_s).
    Listening is kept in step with ``ready()`` and the app state by :meth:`sync` (called by the simulator's
    clock thread), so a stopped, booting or crashed app refuses connections as a real one would.
    """

    def __init__(self, ip: str, settings: HealthSettings, ready: Callable[[], bool],
                 allowed: Optional[Callable[[int], bool]] = None):
        self.ip, self.settings, self.ready = ip, settings, ready
        self.allowed = allowed or (lambda port: True)  # whether the instance's firewall lets the user's machine in
        self.state = "healthy"
        self.restart_at: Optional[float] = None
        self.crashes = 0
        self.servers: dict[int, Server] = {}
        self.errors: dict[int, str] = {}
        self.lock = threading.Lock()
        self.stopped = False

    # ---------------------------------------------------------------- what it answers

    def set_state(self, state: str, restart_after_s: Optional[float] = None) -> None:
        if state not in APP_STATES:
            raise ValueError(f"app state must be one of {', '.join(APP_STATES)}")
        if state == "crashed":
            self.crashes += 1
            self.restart_at = time.monotonic() + restart_after_s if restart_after_s is not None else None
        else:
            self.restart_at = None
        self.state = state

    def effective_state(self) -> str:
        if self.state == "crashed" and self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.state, self.restart_at = "healthy", None
        return self.state

    def serving(self, port: int) -> bool:
        """Whether something accepts TCP connections on this port now."""
        if port not in self.settings.ports() or not self.ready():
            return False
        st = self.effective_state()
        if st == "crashed":
            return False
        if st == "unhealthy" and self.settings.type == "tcp" and port == self.settings.port:
            return False
        return True

    def answer(self, port: int, path: str) -> Optional[tuple[int, bytes]]:
        """(status, body) for GET path on port, or None when nothing listens there."""
        if not self.serving(port):
            return None
        s = self.settings
        if s.type == "http" and port == s.port and path == s.path:
            if self.effective_state() == "unhealthy":
                return 503, b'{"status": "unhealthy"}'
            code = s.codes[0] if s.codes else 200
            return code, b'{"status": "ok"}'
        return 404, b'{"detail": "Not Found"}'

    # ---------------------------------------------------------------- listeners

    def sync(self) -> None:
        # serving() takes the simulator's lock (through ready()): decide first, then act under this app's lock,
        # which stop() also takes (callers of stop() hold the simulator's lock: never nest them the other way)
        want = {port: self.serving(port) for port in self.settings.ports()}
        with self.lock:  # one sync or stop at a time; never listen again once stopped
            if self.stopped:
                return
            for port, serve in want.items():
                if serve and port not in self.servers and port not in self.errors:
                    self._listen(port)
                elif not serve and port in self.servers:
                    self._close(port)

    def _listen(self, port: int) -> None:
        app = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                ans = app.answer(port, self.path) if app.allowed(port) else None
                if ans is None:  # nothing serves, or the firewall drops the user's machine: no answer
                    self.close_connection = True
                    return
                code, body = ans
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if code not in (204, 304):
                    self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *a):
                pass

        self._start_listener(port, H, "the app")

    def describe(self) -> dict:
        return {"settings": self.settings.to_json(), "state": self.effective_state(), "crashes": self.crashes,
                "listening": sorted(self.servers), "errors": dict(self.errors),
                "restart_in_s": (round(self.restart_at - time.monotonic(), 3) if self.restart_at else None)}


def settings_from_hint(hint: dict) -> HealthSettings:
    """Explicit settings from ``POST /_sim/instances/{id}/app {"health": {...}}``."""
    if not isinstance(hint, dict):
        raise ValueError("health must be an object")
    t = hint.get("type", "http")
    if t not in ("http", "tcp", "exec", None):
        raise ValueError("health.type must be http, tcp or exec")
    port = hint.get("port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        raise ValueError("health.port must be 1-65535")
    codes = hint.get("codes", [200])
    if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes) or not codes:
        raise ValueError("health.codes must be a non-empty list of integers")
    pub = hint.get("public_ports", [port] if port else [])
    return HealthSettings(type=t, port=port, path=str(hint.get("path", "/")), codes=codes,
                          public_ports=[int(p) for p in pub], source="hint")

