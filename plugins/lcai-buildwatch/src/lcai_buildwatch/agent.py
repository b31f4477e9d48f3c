#!/usr/bin/env python3
"""BuildWatch: watches the app container through the Docker Engine API and reports issues.

Runs on the instance under systemd with nothing but Python's standard library (a fresh Ubuntu's python3).

  build-watcher run --config /etc/build-watcher/config.json     # the service
  build-watcher query issues|events|status|health [--limit N] [--since T]   # ask the local service (JSON)

Detects, each with time, evidence and a one-line explanation: OOM kills (an ``oom`` event or
State.OOMKilled — exit 137 alone is not proof), crash loops (repeated quick deaths in a window, cleared after
a stable run), non-zero exits, slow startup (start → first healthy beyond a threshold), failing health checks
(Docker health events or lcai's health wait), and GPU verification failure (lcai's gpu.json).

The app unit uses ``docker run --rm``: every restart is a new container id and RestartCount stays 0, so
restarts are counted per container *name* from start/die events, and exit codes come from the die event.
HTTP API: /health, /status, /events?since=&limit=, /issues, /metrics (Prometheus text 0.0.4).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

VERSION = "0.1.0"
DEFAULTS = {
    "deployment_id": "", "app_name": "", "container": "app", "bind": "127.0.0.1", "port": 9090,
    "docker_socket": "/var/run/docker.sock", "api_version": "v1.41", "log_dir": "/var/log/build-watcher",
    "state_dir": "/var/lib/lcai", "token_file": "/etc/build-watcher/token", "enable_metrics": True,
    "max_events": 5000, "crash_loop_deaths": 5, "crash_loop_window_s": 600, "crash_loop_min_run_s": 600,
    "stable_s": 600, "slow_start_s": 180, "tick_s": 5.0, "reconnect_max_s": 30.0,
}


# ---------------------------------------------------------------- Docker Engine API over a unix socket


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float | None = None):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


class Docker:
    def __init__(self, socket_path: str, api_version: str = "v1.41"):
        self.socket_path, self.api = socket_path, api_version

    def get(self, path: str, timeout: float = 10.0):
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            conn.request("GET", f"/{self.api}{path}")
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, (json.loads(body) if body else None)
        finally:
            conn.close()

    def inspect(self, name: str):
        status, body = self.get(f"/containers/{urllib.parse.quote(name)}/json")
        return body if status == 200 else None

    def events(self, since: int | None):
        """Yield raw event lines until the stream ends or breaks (the caller reconnects)."""
        q = {"filters": json.dumps({"type": ["container"]})}
        if since is not None:
            q["since"] = str(since)
        conn = UnixHTTPConnection(self.socket_path, timeout=None)
        try:
            conn.request("GET", f"/{self.api}/events?{urllib.parse.urlencode(q)}")
            resp = conn.getresponse()
            if resp.status != 200:
                raise OSError(f"events: HTTP {resp.status}")
            while True:
                line = resp.readline()
                if not line:
                    return
                yield line
        finally:
            conn.close()


# ---------------------------------------------------------------- detection


def _now() -> float:
    return time.time()


class Issue(dict):
    """kind, container, opened_at, closed_at, explanation, evidence[]"""


class Detector:
    """Turns container events into issues. Pure (no I/O): time comes from the events, or ``tick(now)``."""

    def __init__(self, cfg: dict, emit):
        self.cfg = cfg
        self.emit = emit  # emit(issue_dict, opened: bool)
        self.state: dict[str, dict] = {}
        self.open: dict[tuple, Issue] = {}
        self.restarts: collections.Counter = collections.Counter()
        self.ooms: collections.Counter = collections.Counter()

    def watched(self, ev: dict) -> str | None:
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        name = attrs.get("name") or ""
        want = self.cfg.get("container") or "app"
        dep = self.cfg.get("deployment_id")
        if name == want or (dep and attrs.get("lcai.deployment") == dep):
            return name or want
        return None

    def _st(self, name: str) -> dict:
        return self.state.setdefault(name, {"started_at": None, "running": False, "oom": False, "stopping": False,
                                            "deaths": collections.deque(maxlen=64), "healthy": False,
                                            "slow_reported": False})

    def _open(self, kind: str, name: str, t: float, explanation: str, evidence: list) -> None:
        key = (kind, name)
        if key in self.open:
            self.open[key]["evidence"] = (self.open[key]["evidence"] + evidence)[-10:]
            self.open[key]["count"] += 1
            self.open[key]["last_at"] = t
            return
        issue = Issue(kind=kind, container=name, opened_at=t, last_at=t, closed_at=None, explanation=explanation,
                      evidence=evidence[-10:], count=1)
        if kind in ("crash_loop", "health_failing", "gpu_failed"):  # conditions that can clear
            self.open[key] = issue
        else:
            issue["closed_at"] = t  # one-off occurrences: reported, not held open
        self.emit(issue, True)

    def _close(self, kind: str, name: str, t: float, why: str) -> None:
        issue = self.open.pop((kind, name), None)
        if issue is not None:
            issue["closed_at"] = t
            issue["resolution"] = why
            self.emit(issue, False)

    def process(self, ev: dict) -> None:
        name = self.watched(ev)
        if name is None:
            return
        action = ev.get("Action") or ev.get("status") or ""
        t = float(ev.get("timeNano", 0)) / 1e9 if ev.get("timeNano") else float(ev.get("time") or _now())
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        cid = ((ev.get("Actor") or {}).get("ID") or ev.get("id") or "")[:12]
        st = self._st(name)
        evidence = [{"time": t, "action": action, "container_id": cid,
                     **({"exitCode": attrs["exitCode"]} if "exitCode" in attrs else {}),
                     **({"signal": attrs["signal"]} if "signal" in attrs else {})}]
        if action == "start":
            if st["started_at"] is not None and not st["running"]:
                self.restarts[name] += 1
            st.update(started_at=t, running=True, oom=False, stopping=False, healthy=False, slow_reported=False)
        elif action == "oom":
            st["oom"] = True
            self.ooms[name] += 1
            self._open("oom", name, t, f"{name} was killed by the kernel for exceeding its memory limit (OOM)",
                       evidence)
        elif action in ("kill", "stop"):
            sig = str(attrs.get("signal", ""))
            if action == "stop" or sig in ("15", "SIGTERM", "2", "SIGINT"):
                st["stopping"] = True
        elif action == "die":
            try:
                code = int(attrs.get("exitCode", "0"))  # a string in Docker's events
            except ValueError:
                code = -1
            run = t - st["started_at"] if st["started_at"] is not None else None
            st["running"] = False
            st["deaths"].append((t, run))
            if code == 137 and not st["oom"]:
                oom_killed = False
                try:
                    info = self.inspect(cid) if cid else None
                    oom_killed = bool(info and (info.get("State") or {}).get("OOMKilled"))
                except OSError:
                    pass
                if oom_killed:
                    self.ooms[name] += 1
                    self._open("oom", name, t, f"{name} was OOM-killed (State.OOMKilled)", evidence)
                elif not st["stopping"]:
                    self._open("killed", name, t, f"{name} was killed (exit 137, SIGKILL); OOM not confirmed — "
                                                  "check `journalctl -k` for the kernel OOM killer", evidence)
            elif code != 0 and not (st["stopping"] and code in (143, 130, 137)) and not (code == 137 and st["oom"]):
                self._open("nonzero_exit", name, t, f"{name} exited with code {code}"
                           + (f" after {run:.0f}s" if run is not None else ""), evidence)
            window = self.cfg["crash_loop_window_s"]
            quick = [d for d in st["deaths"] if d[0] >= t - window
                     and (d[1] is None or d[1] < self.cfg["crash_loop_min_run_s"])]
            if len(quick) >= self.cfg["crash_loop_deaths"] and not st["stopping"]:
                self._open("crash_loop", name, t, f"{name} died {len(quick)} times in {window // 60} minutes "
                                                  "(crash loop)", evidence)
        elif action.startswith("health_status"):
            status = action.split(":", 1)[1].strip() if ":" in action else ""
            if status == "healthy":
                self._close("health_failing", name, t, "healthy again")
                if not st["healthy"] and st["started_at"] is not None:
                    took = t - st["started_at"]
                    if took > self.cfg["slow_start_s"] and not st["slow_reported"]:
                        st["slow_reported"] = True
                        self._open("slow_startup", name, t, f"{name} took {took:.0f}s from start to healthy "
                                                            f"(threshold {self.cfg['slow_start_s']}s)", evidence)
                st["healthy"] = True
            elif status == "unhealthy":
                self._open("health_failing", name, t, f"{name}'s health check is failing", evidence)
        self.tick(t)

    def tick(self, now: float) -> None:
        """Time-based rules: clear a crash loop after a stable run; flag a start that never became healthy."""
        for name, st in self.state.items():
            if st["running"] and st["started_at"] is not None:
                up = now - st["started_at"]
                if up >= self.cfg["stable_s"]:
                    self._close("crash_loop", name, now, f"running for {up:.0f}s without dying")
                if not st["healthy"] and up > self.cfg["slow_start_s"] and not st["slow_reported"] \
                        and st.get("expects_health"):
                    st["slow_reported"] = True
                    self._open("slow_startup", name, now, f"{name} is not healthy {up:.0f}s after start "
                                                          f"(threshold {self.cfg['slow_start_s']}s)", [])

    def files(self, now: float, state_dir: str) -> None:
        """lcai's own records on the instance: the health wait and GPU verification."""
        name = self.cfg.get("container") or "app"
        gpu = _read_json(os.path.join(state_dir, "gpu.json"))
        if gpu is not None:
            if gpu.get("ok") is False:
                self._open("gpu_failed", "gpu", now, f"GPU verification failed ({gpu.get('stage')}): "
                                                     f"{gpu.get('detail', '')}"[:300], [gpu])
            elif gpu.get("ok") is True:
                self._close("gpu_failed", "gpu", now, "GPU verified")
        health = _read_json(os.path.join(state_dir, "health.json"))
        if health is not None:
            st = self._st(name)
            st["expects_health"] = True
            if health.get("state") == "unhealthy":
                self._open("health_failing", name, now, f"lcai's health wait gave up: {health.get('detail', '')}",
                           [health])
            elif health.get("state") == "healthy":
                self._close("health_failing", name, now, "healthy again")
                if not st["healthy"] and st["started_at"] is not None:
                    took = float(health.get("time") or now) - st["started_at"]
                    if took > self.cfg["slow_start_s"] and not st["slow_reported"]:
                        st["slow_reported"] = True
                        self._open("slow_startup", name, now, f"{name} took {took:.0f}s from start to healthy",
                                   [health])
                st["healthy"] = True

    inspect = staticmethod(lambda cid: None)  # replaced by the agent with Docker.inspect


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- store: bounded memory, JSON-lines on disk


class Store:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.events: collections.deque = collections.deque(maxlen=int(cfg["max_events"]))
        self.issues: collections.deque = collections.deque(maxlen=1000)
        self.seen_keys: collections.OrderedDict = collections.OrderedDict()
        self.counts = collections.Counter()
        self.last_time: float | None = None
        self.started = _now()
        self.stream_connected = False
        self.last_error = ""
        os.makedirs(cfg["log_dir"], exist_ok=True)
        self._reload()
        self.ev_file = open(os.path.join(cfg["log_dir"], "events.jsonl"), "a", encoding="utf-8", buffering=1)
        self.is_file = open(os.path.join(cfg["log_dir"], "issues.jsonl"), "a", encoding="utf-8", buffering=1)

    def _reload(self) -> None:
        """History survives an agent restart: the tail of the logs is read back."""
        for fname, target in (("events.jsonl", self.events), ("issues.jsonl", self.issues)):
            path = os.path.join(self.cfg["log_dir"], fname)
            try:
                with open(path, encoding="utf-8") as fh:
                    lines = collections.deque(fh, maxlen=target.maxlen)
            except OSError:
                continue
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                target.append(rec)
                if fname == "events.jsonl":
                    self._remember(rec.get("key"))
                    self.last_time = max(self.last_time or 0, rec.get("time") or 0)

    def _remember(self, key) -> bool:
        """False if this event key was seen already (a reconnect replays events since the last second)."""
        if key is None:
            return True
        if key in self.seen_keys:
            return False
        self.seen_keys[key] = None
        if len(self.seen_keys) > 5000:  # a reconnect replays at most the last second of events
            self.seen_keys.popitem(last=False)
        return True

    def add_event(self, ev: dict) -> bool:
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        key = f"{ev.get('timeNano') or ev.get('time')}:{(ev.get('Actor') or {}).get('ID') or ev.get('id')}:" \
              f"{ev.get('Action') or ev.get('status')}"
        with self.lock:
            if not self._remember(key):
                self.counts["duplicates"] += 1
                return False
            t = float(ev["timeNano"]) / 1e9 if ev.get("timeNano") else float(ev.get("time") or _now())
            rec = {"time": t, "action": ev.get("Action") or ev.get("status"), "name": attrs.get("name"),
                   "container_id": ((ev.get("Actor") or {}).get("ID") or "")[:12], "key": key}
            if "exitCode" in attrs:
                rec["exitCode"] = attrs["exitCode"]
            self.events.append(rec)
            self.counts["events"] += 1
            self.last_time = max(self.last_time or 0, t)
            self.ev_file.write(json.dumps(rec, separators=(",", ":")) + "\n")
            return True

    def add_issue(self, issue: dict, opened: bool) -> None:
        with self.lock:
            rec = dict(issue, state="open" if opened and issue.get("closed_at") is None else
                       ("resolved" if not opened else "reported"))
            self.issues.append(rec)
            self.counts[f"issues_{issue['kind']}"] += 1 if opened else 0
            self.is_file.write(json.dumps(rec, separators=(",", ":")) + "\n")


# ---------------------------------------------------------------- the agent


class Agent:
    def __init__(self, cfg: dict):
        self.cfg = {**DEFAULTS, **cfg}
        self.store = Store(self.cfg)
        self.docker = Docker(self.cfg["docker_socket"], self.cfg["api_version"])
        self.detector = Detector(self.cfg, self.store.add_issue)
        self.detector.inspect = lambda cid: self.docker.inspect(cid)
        self.stop = threading.Event()
        self.dlock = threading.Lock()  # the event stream, the ticker and the HTTP API share the detector
        self.token = None
        if self.cfg["bind"] not in ("127.0.0.1", "localhost", "::1"):
            try:
                with open(self.cfg["token_file"], encoding="utf-8") as fh:
                    self.token = fh.read().strip()
            except OSError:
                raise SystemExit(f"build-watcher: bound to {self.cfg['bind']} but no token in "
                                 f"{self.cfg['token_file']}; refusing to serve without authentication")
            if not self.token:
                raise SystemExit("build-watcher: empty token file")
        self.httpd = None

    def handle_line(self, line: bytes) -> None:
        try:
            ev = json.loads(line)
            if not isinstance(ev, dict) or not (ev.get("Action") or ev.get("status")):
                raise ValueError("not an event")
        except ValueError:
            if line.strip():
                self.store.counts["malformed"] += 1
            return
        if self.store.add_event(ev):
            with self.dlock:
                self.detector.process(ev)

    def watch(self) -> None:
        """Stream events forever: reconnect with backoff, resume from the last event's second, de-duplicate."""
        delay = 0.2
        while not self.stop.is_set():
            since = int(self.store.last_time) if self.store.last_time else None
            try:
                self.store.stream_connected = True
                for line in self.docker.events(since):
                    self.handle_line(line)
                    delay = 0.2
                    if self.stop.is_set():
                        return
            except (OSError, http.client.HTTPException) as e:
                self.store.counts["stream_errors"] += 1
                self.store.last_error = f"{type(e).__name__}: {e}"
            self.store.stream_connected = False
            self.store.counts["reconnects"] += 1
            self.stop.wait(delay)
            delay = min(self.cfg["reconnect_max_s"], delay * 2)

    def ticker(self) -> None:
        while not self.stop.wait(self.cfg["tick_s"]):
            with self.dlock:
                self.detector.tick(_now())
                self.detector.files(_now(), self.cfg["state_dir"])

    # ------------------------------------------------------------ HTTP API

    def status(self) -> dict:
        name = self.cfg["container"]
        with self.dlock:
            st = dict(self.detector.state.get(name, {}))
            open_issues = len(self.detector.open)
        return {"deployment_id": self.cfg["deployment_id"], "app": self.cfg["app_name"], "container": name,
                "state": "running" if st.get("running") else ("exited" if st else "unknown"),
                "uptime_s": round(_now() - st["started_at"], 1) if st.get("running") and st.get("started_at") else 0,
                "restarts": self.detector.restarts[name], "open_issues": open_issues,
                "events_seen": self.store.counts["events"], "malformed_events": self.store.counts["malformed"],
                "duplicates_dropped": self.store.counts["duplicates"], "reconnects": self.store.counts["reconnects"],
                "stream_connected": self.store.stream_connected, "agent_version": VERSION,
                "agent_uptime_s": round(_now() - self.store.started, 1)}

    def issues(self) -> dict:
        with self.store.lock:
            history = list(self.store.issues)
        with self.dlock:
            open_ = sorted((dict(i) for i in self.detector.open.values()), key=lambda i: i["opened_at"])
        return {"open": open_, "history": history[-200:]}

    def events(self, since: float | None, limit: int) -> list:
        with self.store.lock:
            evs = [e for e in self.store.events if since is None or e["time"] > since]
        return evs[-limit:]

    def metrics(self) -> str:
        name = self.cfg["container"]
        lab = f'container="{name}",deployment="{self.cfg["deployment_id"]}"'
        with self.dlock:
            st = dict(self.detector.state.get(name, {}))
            kinds = collections.Counter(i["kind"] for i in self.detector.open.values())
        lines = [
            "# HELP buildwatch_events_total Container events processed.", "# TYPE buildwatch_events_total counter",
            f"buildwatch_events_total {self.store.counts['events']}",
            "# HELP buildwatch_malformed_events_total Event lines that could not be parsed.",
            "# TYPE buildwatch_malformed_events_total counter",
            f"buildwatch_malformed_events_total {self.store.counts['malformed']}",
            "# HELP buildwatch_container_restarts_total Restarts of the app container (by name).",
            "# TYPE buildwatch_container_restarts_total counter",
            f"buildwatch_container_restarts_total{{{lab}}} {self.detector.restarts[name]}",
            "# HELP buildwatch_container_oom_events_total OOM kills of the app container.",
            "# TYPE buildwatch_container_oom_events_total counter",
            f"buildwatch_container_oom_events_total{{{lab}}} {self.detector.ooms[name]}",
            "# HELP buildwatch_container_up Whether the app container is running.",
            "# TYPE buildwatch_container_up gauge", f"buildwatch_container_up{{{lab}}} {1 if st.get('running') else 0}",
            "# HELP buildwatch_container_start_time_seconds Start time of the app container.",
            "# TYPE buildwatch_container_start_time_seconds gauge",
            f"buildwatch_container_start_time_seconds{{{lab}}} {st.get('started_at') or 0}",
            "# HELP buildwatch_open_issues Open issues by kind.", "# TYPE buildwatch_open_issues gauge",
        ]
        for kind in ("crash_loop", "health_failing", "gpu_failed"):
            lines.append(f'buildwatch_open_issues{{kind="{kind}"}} {kinds[kind]}')
        return "\n".join(lines) + "\n"

    def serve(self) -> http.server.ThreadingHTTPServer:
        agent = self

        class H(http.server.BaseHTTPRequestHandler):
            server_version = f"build-watcher/{VERSION}"

            def log_message(self, *a):
                pass

            def _send(self, code: int, body, ctype="application/json"):
                raw = body.encode() if isinstance(body, str) else json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if agent.token is not None:
                    import hmac

                    got = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(got, f"Bearer {agent.token}"):
                        return self._send(401, {"error": "unauthorized"})
                url = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(url.query)
                try:
                    if url.path == "/health":
                        return self._send(200, {"ok": True, "stream_connected": agent.store.stream_connected})
                    if url.path == "/status":
                        return self._send(200, agent.status())
                    if url.path == "/issues":
                        return self._send(200, agent.issues())
                    if url.path == "/events":
                        since = float(q["since"][0]) if "since" in q else None
                        limit = max(1, min(5000, int(q.get("limit", ["100"])[0])))
                        return self._send(200, agent.events(since, limit))
                    if url.path == "/metrics" and agent.cfg["enable_metrics"]:
                        return self._send(200, agent.metrics(), "text/plain; version=0.0.4; charset=utf-8")
                except ValueError:
                    return self._send(400, {"error": "bad query"})
                self._send(404, {"error": "not found"})

        family = socket.AF_INET6 if ":" in self.cfg["bind"] else socket.AF_INET
        srv_cls = type("Srv", (http.server.ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        self.httpd = srv_cls((self.cfg["bind"], int(self.cfg["port"])), H)
        return self.httpd

    def start(self) -> "Agent":
        """Serve and watch in background threads (tests embed the agent this way)."""
        httpd = self.serve()
        with self.dlock:
            self.detector.files(_now(), self.cfg["state_dir"])
        for target, kw in ((self.watch, {}), (self.ticker, {}), (httpd.serve_forever, {"poll_interval": 0.1})):
            threading.Thread(target=target, kwargs=kw, daemon=True).start()
        return self

    def shutdown(self) -> None:
        self.stop.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        self.store.ev_file.close()
        self.store.is_file.close()

    def run(self) -> None:
        self.start()
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        while not self.stop.wait(0.5):
            pass
        self.shutdown()


def load_config(path: str | None) -> dict:
    cfg = dict(DEFAULTS)
    if path:
        with open(path, encoding="utf-8") as fh:
            cfg.update(json.load(fh))
    return cfg


def query(cfg: dict, what: str, limit: int, since: float | None) -> int:
    path = {"issues": "/issues", "status": "/status", "health": "/health", "metrics": "/metrics",
            "events": f"/events?limit={limit}" + (f"&since={since}" if since is not None else "")}[what]
    host = "127.0.0.1" if cfg["bind"] in ("0.0.0.0", "::") else cfg["bind"]
    conn = http.client.HTTPConnection(host, int(cfg["port"]), timeout=10)
    headers = {}
    try:
        with open(cfg["token_file"], encoding="utf-8") as fh:
            headers["Authorization"] = f"Bearer {fh.read().strip()}"
    except OSError:
        pass
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        sys.stdout.write(resp.read().decode())
        sys.stdout.write("\n")
        return 0 if resp.status == 200 else 1
    except OSError as e:
        sys.stderr.write(f"build-watcher: the agent is not answering on {host}:{cfg['port']}: {e}\n")
        return 1
    finally:
        conn.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="build-watcher", description="BuildWatch container monitor")
    ap.add_argument("--config", default=os.environ.get("BUILDWATCH_CONFIG", "/etc/build-watcher/config.json"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run the agent")
    q = sub.add_parser("query", help="ask the running agent")
    q.add_argument("what", choices=["issues", "events", "status", "health", "metrics"])
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--since", type=float)
    a = ap.parse_args(argv)
    cfg = load_config(a.config if os.path.exists(a.config) else None)
    if a.cmd == "query":
        return query(cfg, a.what, a.limit, a.since)
    Agent(cfg).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
