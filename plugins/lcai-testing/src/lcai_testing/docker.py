"""A fake Docker Engine API on a unix socket, for testing BuildWatch without Docker.

Serves ``/_ping``, ``/version``, ``/containers/{id}/json`` (404 JSON for removed ``--rm`` containers) and
``/events`` as chunked newline-delimited JSON honouring ``since``. Like dockerd it answers ``/version`` with its
``ApiVersion`` and ``MinAPIVersion`` (``api_version``/``min_api_version``, default 1.43/1.24) and refuses a
``/v1.NN`` prefix outside that range with Docker's own 400 message; ``requested`` records every path asked for.
Scripted events are served to every connection from ``since``; ``drop_after=N`` closes the first stream abruptly
after N events (no terminating chunk), to test reconnects; raw ``garbage`` lines can be mixed in.
"""

from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Optional
from urllib.parse import parse_qs, urlparse

BASE = 1_767_000_000  # a fixed epoch second for scripted event times


def event(action: str, t: float, name: str = "app", cid: Optional[str] = None, **attrs) -> dict:
    """A Docker event message as the Engine API sends it (exitCode as a string)."""
    cid = cid or f"{abs(hash((name, int(t)))) % 16**12:012x}" + "0" * 52
    at = {"name": name, "image": "nginx:1.27", **{k: str(v) for k, v in attrs.items()}}
    return {"status": action, "id": cid, "from": "nginx:1.27", "Type": "container", "Action": action,
            "Actor": {"ID": cid, "Attributes": at}, "scope": "local", "time": int(t), "timeNano": int(t * 1e9)}


class FakeDocker:
    def __init__(self, socket_path: str, api_version: str = "1.43", min_api_version: str = "1.24"):
        self.socket_path = socket_path
        self.api_version, self.min_api_version = api_version, min_api_version
        self.requested: list[str] = []
        self.script: list = []  # dicts (events) or bytes (raw lines)
        self.containers: dict[str, dict] = {}
        self.drop_after: Optional[int] = None
        self.connections = 0
        self.lock = threading.Lock()
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, code, body):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                url = urlparse(self.path)
                path = url.path
                fake.requested.append(path)
                if path.startswith("/v1."):
                    asked, path = path.split("/", 2)[1:]
                    path = "/" + path
                    v = tuple(int(x) for x in asked[1:].split("."))
                    low, high = (tuple(int(x) for x in s.split(".")) for s in (fake.min_api_version, fake.api_version))
                    if v < low:
                        return self._json(400, {"message": f"client version {asked[1:]} is too old. Minimum supported "
                                                           f"API version is {fake.min_api_version}, please upgrade "
                                                           "your client to a newer version"})
                    if v > high:
                        return self._json(400, {"message": f"client version {asked[1:]} is too new. Maximum supported "
                                                           f"API version is {fake.api_version}"})
                if path == "/_ping":
                    return self._json(200, "OK")
                if path == "/version":
                    return self._json(200, {"ApiVersion": fake.api_version, "MinAPIVersion": fake.min_api_version,
                                            "Version": "fake"})
                if path.startswith("/containers/") and path.endswith("/json"):
                    cid = path.split("/")[2]
                    info = fake.containers.get(cid)
                    return self._json(200, info) if info else self._json(404, {"message": f"No such container: {cid}"})
                if path == "/events":
                    return self._events(parse_qs(url.query))
                self._json(404, {"message": "page not found"})

            def _events(self, q):
                since = int(q["since"][0]) if "since" in q else None
                with fake.lock:
                    fake.connections += 1
                    first = fake.connections == 1
                    items = [e for e in fake.script if isinstance(e, bytes) or since is None or e["time"] >= since]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, item in enumerate(items):
                    if first and fake.drop_after is not None and i == fake.drop_after:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    line = item if isinstance(item, bytes) else json.dumps(item).encode() + b"\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

            def get_request(self):
                request, _ = super().get_request()
                return request, ("local", 0)

        if os.path.exists(socket_path):
            os.unlink(socket_path)
        self.server = Server(socket_path, H)

    def start(self) -> "FakeDocker":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
