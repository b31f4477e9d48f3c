#!/usr/bin/env python3
"""BuildWatch: watches the app container through the Docker Engine API and reports issues.

Runs on the instance under systemd with nothing but Python's standard library (the image's python3, 3.10+).
It is shipped inside the deployment's user data with docstrings and comments stripped, so the code is terse
on purpose: every byte here is a byte of the 16 KiB a Linode accepts.

  build-watcher run --config /etc/build-watcher/config.json     # the service
  build-watcher query issues|events|status|health|metrics [--limit N] [--since T]   # ask the local service

Detects, each with time, evidence and a one-line explanation: OOM kills (an ``oom`` event or
State.OOMKilled — exit 137 alone is not proof), crash loops (repeated quick deaths in a window, cleared after
a stable run), non-zero exits, slow startup (start → first healthy beyond a threshold), failing health checks
(Docker health events or lcai's health wait), and GPU verification failure (lcai's gpu.json).

The app unit uses ``docker run --rm``: every restart is a new container id and RestartCount stays 0, so
restarts are counted per container *name* from start/die events, and exit codes come from the die event.
The Engine API version is negotiated as Docker's own clients do (``GET /version``, then the lower of the
daemon's version and ours): Docker 29 refuses clients below 1.44, Docker 20.10 speaks at most 1.41.
HTTP API: /health, /status, /events?since=&limit=, /issues, /metrics (Prometheus text 0.0.4).
"""

import argparse
import collections
import hmac
import http.client
import http.server
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

VERSION = "0.2.0"
MAX_API = (1, 51)  # the newest Engine API this agent knows; it uses only long-stable endpoints
DEFAULTS = {
    "deployment_id": "", "app_name": "", "container": "app", "bind": "127.0.0.1", "port": 9090,
    "docker_socket": "/var/run/docker.sock", "api_version": "", "log_dir": "/var/log/build-watcher",
    "state_dir": "/var/lib/lcai", "token_file": "/etc/build-watcher/token", "enable_metrics": True,
    "max_events": 5000, "crash_loop_deaths": 5, "crash_loop_window_s": 600, "crash_loop_min_run_s": 600,
    "stable_s": 600, "slow_start_s": 180, "tick_s": 5.0, "reconnect_max_s": 30.0, "kmsg": "/dev/kmsg",
}
HELD = ("crash_loop", "health_failing", "gpu_failed")  # conditions that stay open until they clear


def is_local(bind):
    """Loopback addresses (all of 127.0.0.0/8, ::1) need no token: only the instance itself can connect."""
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- Docker Engine API over a unix socket


class Docker:
    def __init__(self, sock, api=""):
        self.sock, self.api = sock, api and "/" + api.strip("/")  # "": negotiated on first use, again after errors

    def open(self, path, timeout=10.0):
        conn = http.client.HTTPConnection("localhost", timeout=timeout)
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.sock)
        conn.sock = s
        conn.request("GET", path)
        return conn, conn.getresponse()

    def get(self, path, timeout=10.0):
        conn, resp = self.open(self.version() + path, timeout)
        try:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
        finally:
            conn.close()

    def version(self):
        """The ``/v1.NN`` prefix: the lower of the daemon's ApiVersion and MAX_API."""
        if not self.api:
            conn, resp = self.open("/version")
            try:
                v = json.loads(resp.read())["ApiVersion"] if resp.status == 200 else ""
            finally:
                conn.close()
            got = tuple(int(x) for x in str(v).split("."))
            if len(got) != 2:
                raise OSError(f"/version: HTTP {resp.status}, ApiVersion {v!r}")
            self.api = "/v%d.%d" % min(got, MAX_API)
        return self.api

    def inspect(self, cid):
        status, body = self.get(f"/containers/{urllib.parse.quote(cid)}/json")
        return body if status == 200 else None

    def events(self, since):
        """Yield raw event lines until the stream ends or breaks (the caller reconnects)."""
        q = {"filters": '{"type":["container"]}', **({"since": str(since)} if since is not None else {})}
        conn, resp = self.open(f"{self.version()}/events?{urllib.parse.urlencode(q)}", None)
        try:
            if resp.status != 200:
                self.api = ""
                raise OSError(f"events: HTTP {resp.status} {resp.read()[:200]!r}")
            yield from iter(resp.readline, b"")
        finally:
            conn.close()


# ---------------------------------------------------------------- detection


def parse(ev):
    """(container id, attributes, action, time in seconds) of a Docker event message."""
    actor = ev.get("Actor") or {}
    return ((actor.get("ID") or ev.get("id") or ""), actor.get("Attributes") or {}, ev.get("Action") or ev.get("status")
            or "", ev["timeNano"] / 1e9 if ev.get("timeNano") else float(ev.get("time") or time.time()))


class Detector:
    """Turns container events into issues. Pure (no I/O): time comes from the events, or ``tick(now)``."""

    def __init__(self, cfg, emit, inspect=lambda cid: None):
        self.cfg, self.emit, self.inspect = cfg, emit, inspect  # emit(issue, opened)
        self.state, self.open = {}, {}
        self.restarts, self.ooms = collections.Counter(), collections.Counter()

    def st(self, name):
        return self.state.setdefault(name, {"started_at": None, "running": False, "oom": False, "stopping": False,
                                            "deaths": collections.deque(maxlen=64), "healthy": False,
                                            "slow": False})

    def report(self, kind, name, t, why, evidence):
        i = self.open.get((kind, name))
        if i:
            i.update(evidence=(i["evidence"] + evidence)[-10:], count=i["count"] + 1, last_at=t)
            return
        i = {"kind": kind, "container": name, "opened_at": t, "last_at": t, "closed_at": None, "explanation": why,
             "evidence": evidence[-10:], "count": 1}
        if kind in HELD:
            self.open[kind, name] = i
        else:
            i["closed_at"] = t  # one-off occurrences: reported, not held open
        self.emit(i, True)

    def clear(self, kind, name, t, why):
        i = self.open.pop((kind, name), None)
        if i:
            i.update(closed_at=t, resolution=why)
            self.emit(i, False)

    def healthy(self, name, t, took, evidence):
        st = self.st(name)
        self.clear("health_failing", name, t, "healthy again")
        if not st["healthy"] and took is not None and took > self.cfg["slow_start_s"] and not st["slow"]:
            st["slow"] = True
            self.report("slow_startup", name, t, f"{name} took {took:.0f}s from start to healthy "
                                                 f"(threshold {self.cfg['slow_start_s']}s)", evidence)
        st["healthy"] = True

    def process(self, ev):
        cid, at, a, t = parse(ev)
        cid, name = cid[:12], at.get("name") or ""
        want, dep = self.cfg["container"], self.cfg["deployment_id"]
        if name != want and not (dep and at.get("lcai.deployment") == dep):
            return
        name = name or want
        st = self.st(name)
        evidence = [{"time": t, "action": a, "container_id": cid,
                     **{k: at[k] for k in ("exitCode", "signal") if k in at}}]
        if a == "start":
            if st["started_at"] is not None and not st["running"]:
                self.restarts[name] += 1
            st.update(started_at=t, running=True, oom=False, stopping=False, healthy=False, slow=False)
        elif a == "oom":
            st["oom"] = True
            self.ooms[name] += 1
            self.report("oom", name, t, f"{name} was killed by the kernel for exceeding its memory limit (OOM)",
                        evidence)
        elif a == "stop" or a == "kill" and str(at.get("signal")) in ("15", "SIGTERM", "2", "SIGINT"):
            st["stopping"] = True
        elif a == "die":
            try:
                code = int(at.get("exitCode", "0"))  # a string in Docker's events
            except ValueError:
                code = -1
            run = None if st["started_at"] is None else t - st["started_at"]
            st["running"] = False
            st["deaths"].append((t, run))
            if code == 137 and not st["oom"]:
                try:
                    oom = ((self.inspect(cid) or {}).get("State") or {}).get("OOMKilled") if cid else False
                except OSError:
                    oom = False
                if oom:
                    self.ooms[name] += 1
                    self.report("oom", name, t, f"{name} was OOM-killed (State.OOMKilled or the kernel log)",
                                evidence)
                elif not st["stopping"]:
                    self.report("killed", name, t, f"{name} was killed (exit 137, SIGKILL); OOM not confirmed",
                                evidence)
            elif code and not (st["stopping"] and code in (143, 130, 137)) and not (code == 137 and st["oom"]):
                self.report("nonzero_exit", name, t, f"{name} exited with code {code}"
                            + ("" if run is None else f" after {run:.0f}s"), evidence)
            w = self.cfg["crash_loop_window_s"]
            quick = [d for d in st["deaths"]
                     if d[0] >= t - w and (d[1] is None or d[1] < self.cfg["crash_loop_min_run_s"])]
            if len(quick) >= self.cfg["crash_loop_deaths"] and not st["stopping"]:
                self.report("crash_loop", name, t, f"{name} died {len(quick)} times in {w // 60} minutes (crash loop)",
                            evidence)
        elif a.startswith("health_status"):
            status = a.partition(":")[2].strip()
            if status == "healthy":
                self.healthy(name, t, None if st["started_at"] is None else t - st["started_at"], evidence)
            elif status == "unhealthy":
                self.report("health_failing", name, t, f"{name}'s health check is failing", evidence)
        self.tick(t)

    def tick(self, now):
        """Time-based rules: clear a crash loop after a stable run; flag a start that never became healthy."""
        for name, st in self.state.items():
            if st["running"] and st["started_at"] is not None:
                up = now - st["started_at"]
                if up >= self.cfg["stable_s"]:
                    self.clear("crash_loop", name, now, f"running for {up:.0f}s without dying")
                if st.get("expects_health") and not st["healthy"] and up > self.cfg["slow_start_s"] and not st["slow"]:
                    st["slow"] = True
                    self.report("slow_startup", name, now, f"{name} is not healthy {up:.0f}s after start "
                                                           f"(threshold {self.cfg['slow_start_s']}s)", [])

    def files(self, now, state_dir):
        """lcai's own records on the instance: the GPU verification and the health wait."""
        gpu, health = (read_json(os.path.join(state_dir, f)) for f in ("gpu.json", "health.json"))
        if gpu and gpu.get("ok") is False:
            self.report("gpu_failed", "gpu", now, f"GPU verification failed ({gpu.get('stage')}): "
                                                  f"{gpu.get('detail', '')}"[:300], [gpu])
        elif gpu and gpu.get("ok") is True:
            self.clear("gpu_failed", "gpu", now, "GPU verified")
        if health:
            name = self.cfg["container"]
            st = self.st(name)
            st["expects_health"] = True
            if health.get("state") == "unhealthy":
                self.report("health_failing", name, now, f"lcai's health wait gave up: {health.get('detail', '')}",
                            [health])
            elif health.get("state") == "healthy":
                took = None if st["started_at"] is None else float(health.get("time") or now) - st["started_at"]
                self.healthy(name, now, took, [health])


def read_text(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def read_json(path):
    try:
        return json.loads(read_text(path) or "null")
    except ValueError:
        return None


# ---------------------------------------------------------------- store: bounded memory, JSON-lines on disk


class Store:
    def __init__(self, cfg):
        self.lock = threading.Lock()
        self.events = collections.deque(maxlen=int(cfg["max_events"]))
        self.issues = collections.deque(maxlen=1000)
        self.seen = {}  # event keys, oldest first: a reconnect replays the last second, which is dropped
        self.counts = collections.Counter()
        self.last_time = None
        self.started = time.time()
        self.connected = False
        d = cfg["log_dir"]
        os.makedirs(d, exist_ok=True)
        for target in (self.events, self.issues):  # history survives an agent restart: re-read the logs' tails
            path = os.path.join(d, "events.jsonl" if target is self.events else "issues.jsonl")
            try:
                with open(path, encoding="utf-8") as fh:
                    lines = collections.deque(fh, maxlen=target.maxlen)
            except OSError:
                lines = ()
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                target.append(rec)
                if target is self.events:
                    self.remember(rec.get("key"))
                    self.last_time = max(self.last_time or 0, rec.get("time") or 0)
        self.files = [open(os.path.join(d, f), "a", encoding="utf-8", buffering=1)
                      for f in ("events.jsonl", "issues.jsonl")]

    def remember(self, key):
        if key in self.seen:
            return False
        self.seen[key] = None
        if len(self.seen) > 5000:
            del self.seen[next(iter(self.seen))]
        return True

    def log(self, i, rec):
        self.files[i].write(json.dumps(rec, separators=(",", ":")) + "\n")

    def add_event(self, ev):
        cid, at, a, t = parse(ev)
        key = f"{ev.get('timeNano') or ev.get('time')}:{cid}:{a}"
        with self.lock:
            if not self.remember(key):
                self.counts["duplicates"] += 1
                return False
            rec = {"time": t, "action": a, "name": at.get("name"), "container_id": cid[:12], "key": key,
                   **({"exitCode": at["exitCode"]} if "exitCode" in at else {})}
            self.events.append(rec)
            self.counts["events"] += 1
            self.last_time = max(self.last_time or 0, t)
            self.log(0, rec)
            return True

    def add_issue(self, issue, opened):
        with self.lock:
            rec = dict(issue, state="resolved" if not opened else "open" if issue["closed_at"] is None else "reported")
            self.issues.append(rec)
            self.log(1, rec)


# ---------------------------------------------------------------- the agent

METRICS = ("events_total counter", "malformed_events_total counter", "container_restarts_total counter",
           "container_oom_events_total counter", "container_up gauge", "container_start_time_seconds gauge",
           "open_issues gauge")  # Prometheus text format 0.0.4: TYPE lines (HELP is optional)


def kernel_oom(kmsg, cid):
    """Whether the kernel log holds an oom-kill record of container ``cid``'s memory cgroup (its name has the
    id). Docker drops its ``oom`` event, and inspect has nothing, when a ``--rm`` container is gone first.
    /dev/kmsg gives one record per read, then EAGAIN."""
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    rec, found = b"-", False
    try:
        while rec and not found:
            rec = os.read(fd, 8192)
            found = b"oom-kill:" in rec and cid.encode() in rec
    except OSError:  # EAGAIN: no more records (EPIPE: one was overwritten meanwhile)
        pass
    os.close(fd)
    return found


class Agent:
    def __init__(self, cfg):
        self.cfg = cfg = {**DEFAULTS, **cfg}
        self.store = Store(cfg)
        self.docker = Docker(cfg["docker_socket"], cfg["api_version"])
        self.detector = Detector(cfg, self.store.add_issue, lambda cid: self.docker.inspect(cid) or (
            {"State": {"OOMKilled": True}} if kernel_oom(cfg["kmsg"], cid) else None))
        self.stop = threading.Event()
        self.dlock = threading.Lock()  # the event stream, the ticker and the HTTP API share the detector
        self.token = self.httpd = None
        if not is_local(cfg["bind"]):
            self.token = (read_text(cfg["token_file"]) or "").strip()
            if not self.token:
                raise SystemExit(f"build-watcher: bound to {cfg['bind']} but no token in {cfg['token_file']}; "
                                 "refusing to serve without authentication")

    def handle_line(self, line):
        try:
            ev = json.loads(line)
            if not (ev.get("Action") or ev.get("status")):
                raise ValueError
        except (ValueError, AttributeError):
            self.store.counts["malformed"] += bool(line.strip())
            return
        if self.store.add_event(ev):
            with self.dlock:
                self.detector.process(ev)

    def watch(self):
        """Stream events forever: reconnect with backoff, resume from the last event's second, de-duplicate."""
        delay = 0.2
        while not self.stop.is_set():
            last = self.store.last_time
            try:
                for line in self.docker.events(int(last) if last else None):
                    self.store.connected = True
                    self.handle_line(line)
                    delay = 0.2
                    if self.stop.is_set():
                        return
            except (OSError, http.client.HTTPException, ValueError):
                self.docker.api = ""  # renegotiate: the daemon may have been upgraded, or refused a pinned version
            self.store.connected = False
            self.store.counts["reconnects"] += 1
            self.stop.wait(delay)
            delay = min(self.cfg["reconnect_max_s"], delay * 2)

    def ticker(self):
        while not self.stop.wait(self.cfg["tick_s"]):
            with self.dlock:
                self.detector.tick(time.time())
                self.detector.files(time.time(), self.cfg["state_dir"])

    def status(self):
        name, c, d = self.cfg["container"], self.store.counts, self.detector
        with self.dlock:
            st = dict(d.state.get(name, {}))
            n = len(d.open)
        up = st.get("running") and st.get("started_at")
        return {"deployment_id": self.cfg["deployment_id"], "app": self.cfg["app_name"], "container": name,
                "state": "running" if st.get("running") else "exited" if st else "unknown",
                "uptime_s": round(time.time() - st["started_at"], 1) if up else 0, "restarts": d.restarts[name],
                "open_issues": n, "events_seen": c["events"], "malformed_events": c["malformed"],
                "duplicates_dropped": c["duplicates"], "reconnects": c["reconnects"],
                "stream_connected": self.store.connected, "docker_api": self.docker.api.lstrip("/"),
                "agent_version": VERSION, "agent_uptime_s": round(time.time() - self.store.started, 1)}

    def issues(self):
        with self.store.lock:
            history = list(self.store.issues)[-200:]
        with self.dlock:
            open_ = sorted((dict(i) for i in self.detector.open.values()), key=lambda i: i["opened_at"])
        return {"open": open_, "history": history}

    def events(self, since, limit):
        with self.store.lock:
            return [e for e in self.store.events if since is None or e["time"] > since][-limit:]

    def metrics(self):
        name, d, c = self.cfg["container"], self.detector, self.store.counts
        lab = f'{{container="{name}",deployment="{self.cfg["deployment_id"]}"}}'
        with self.dlock:
            st = d.state.get(name, {})
            kinds = collections.Counter(i["kind"] for i in d.open.values())
            values = (f" {c['events']}", f" {c['malformed']}", f"{lab} {d.restarts[name]}", f"{lab} {d.ooms[name]}",
                      f"{lab} {int(bool(st.get('running')))}", f"{lab} {st.get('started_at') or 0}")
        out = []
        for m, v in zip(METRICS, values + ("",)):
            m = "buildwatch_" + m
            out.append("# TYPE " + m)
            m = m.split()[0]
            out += [m + v] if v else [f'{m}{{kind="{k}"}} {kinds[k]}' for k in HELD]
        return "\n".join(out) + "\n"

    def answer(self, path, query):
        q = urllib.parse.parse_qs(query)
        if path == "/health":
            return {"ok": True, "stream_connected": self.store.connected}
        if path == "/status":
            return self.status()
        if path == "/issues":
            return self.issues()
        if path == "/events":
            since = float(q["since"][0]) if "since" in q else None
            return self.events(since, max(1, min(5000, int(q.get("limit", ["100"])[0]))))
        if path == "/metrics" and self.cfg["enable_metrics"]:
            return self.metrics()
        return None

    def serve(self):
        agent = self

        class H(http.server.BaseHTTPRequestHandler):
            server_version = f"build-watcher/{VERSION}"

            def log_message(self, *a):
                pass

            def send(self, code, body):
                raw = (body if isinstance(body, str) else json.dumps(body, default=str)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8" if isinstance(body, str)
                                 else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if agent.token is not None and not hmac.compare_digest(self.headers.get("Authorization", ""),
                                                                       f"Bearer {agent.token}"):
                    return self.send(401, {"error": "unauthorized"})
                url = urllib.parse.urlparse(self.path)
                try:
                    body = agent.answer(url.path, url.query)
                except ValueError:
                    return self.send(400, {"error": "bad query"})
                self.send(404, {"error": "not found"}) if body is None else self.send(200, body)

        family = socket.AF_INET6 if ":" in self.cfg["bind"] else socket.AF_INET
        srv = type("S", (http.server.ThreadingHTTPServer,), {"daemon_threads": True, "address_family": family})
        self.httpd = srv((self.cfg["bind"], int(self.cfg["port"])), H)
        return self.httpd

    def start(self):
        """Serve and watch in background threads (tests embed the agent this way)."""
        httpd = self.serve()
        with self.dlock:
            self.detector.files(time.time(), self.cfg["state_dir"])
        for target in (self.watch, self.ticker, httpd.serve_forever):
            threading.Thread(target=target, daemon=True).start()
        return self

    def shutdown(self):
        self.stop.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
        for f in self.store.files:
            f.close()

    def run(self):
        self.start()
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: self.stop.set())
        while not self.stop.wait(0.5):
            pass
        self.shutdown()


def query(cfg, what, limit, since):
    path = f"/{what}"
    if what == "events":
        path += f"?limit={limit}" + (f"&since={since}" if since is not None else "")
    host = "127.0.0.1" if cfg["bind"] in ("0.0.0.0", "::") else cfg["bind"]
    conn = http.client.HTTPConnection(host, int(cfg["port"]), timeout=10)
    token = read_text(cfg["token_file"])
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token.strip()}"} if token else {})
        resp = conn.getresponse()
        print(resp.read().decode())
        return 0 if resp.status == 200 else 1
    except OSError as e:
        print(f"build-watcher: the agent is not answering on {host}:{cfg['port']}: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="build-watcher", description="BuildWatch container monitor")
    ap.add_argument("--config", default=os.environ.get("BUILDWATCH_CONFIG", "/etc/build-watcher/config.json"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run")
    q = sub.add_parser("query")
    q.add_argument("what", choices=["issues", "events", "status", "health", "metrics"])
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--since", type=float)
    a = ap.parse_args(argv)
    cfg = {**DEFAULTS, **(read_json(a.config) or {})}
    if a.cmd == "query":
        return query(cfg, a.what, a.limit, a.since)
    Agent(cfg).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
