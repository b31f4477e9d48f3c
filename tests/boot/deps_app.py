"""The boot tests' "deps test app" (runs inside its container image, see oci.deps_app_image).

It answers its health path with 200 only after it really used both services from its environment:
- REDIS_URL: SET a fresh random token under the key ``lcai-deps-test`` and GET it back (with the password the
  URL carries: the server requires it);
- DATABASE_URL: connect as the role in the URL, check ``current_user`` is that role, and insert the same token
  into the table ``lcai_deps_test`` of the URL's database.
Until then it answers 503 with what is still failing. The 200 body (JSON) names the token, the role and the
database, so a test can look for the token in Redis and in PostgreSQL on the machine. Nothing it prints
contains a URL or a password.
"""

import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("DEPS_APP_PORT", "8080"))
HEALTH_PATH = os.environ.get("DEPS_APP_HEALTH_PATH", "/healthz")
RETRY_SECONDS = float(os.environ.get("DEPS_APP_RETRY_SECONDS", "2"))

state = {"ok": False, "detail": "starting"}


def use_redis(token):
    import redis

    r = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5, socket_connect_timeout=5)
    r.set("lcai-deps-test", token)
    got = r.get("lcai-deps-test")
    if got != token.encode():
        raise RuntimeError(f"redis GET returned {got!r}, not the token just SET")
    return {"key": "lcai-deps-test"}


def use_postgres(token):
    import psycopg2

    url = os.environ["DATABASE_URL"]
    parts = urllib.parse.urlsplit(url)
    want_user = urllib.parse.unquote(parts.username or "")
    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            user, database = cur.fetchone()
            if user != want_user:
                raise RuntimeError(f"connected as {user!r}, DATABASE_URL names {want_user!r}")
            cur.execute("CREATE TABLE IF NOT EXISTS lcai_deps_test "
                        "(token text PRIMARY KEY, at timestamptz DEFAULT now())")
            cur.execute("INSERT INTO lcai_deps_test (token) VALUES (%s) ON CONFLICT DO NOTHING", (token,))
            cur.execute("SELECT count(*) FROM lcai_deps_test WHERE token = %s", (token,))
            if cur.fetchone()[0] != 1:
                raise RuntimeError("the inserted token is not in lcai_deps_test")
    finally:
        conn.close()
    return {"user": user, "database": database, "table": "lcai_deps_test"}


def checker():
    token = secrets.token_hex(16)
    attempt = 0
    while True:
        attempt += 1
        missing = [n for n in ("REDIS_URL", "DATABASE_URL") if not os.environ.get(n)]
        if missing:
            state.update(ok=False, detail=f"not set: {', '.join(missing)}")
        else:
            try:
                result = {"token": token, "redis": use_redis(token), "postgres": use_postgres(token),
                          "attempts": attempt}
                state.clear()
                state.update(ok=True, **result)
                print(f"deps-app: used redis and postgres (attempt {attempt})", flush=True)
                return
            except Exception as e:  # keep retrying: the services may still be starting
                detail = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                for name in ("REDIS_URL", "DATABASE_URL"):
                    url = os.environ[name]
                    detail = detail.replace(url, f"${name}")
                    password = urllib.parse.urlsplit(url).password
                    if password:
                        for p in {password, urllib.parse.unquote(password)}:
                            detail = detail.replace(p, "***")
                state.update(ok=False, detail=detail)
        print(f"deps-app: attempt {attempt}: {state['detail']}", flush=True)
        time.sleep(RETRY_SECONDS)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != HEALTH_PATH:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(state).encode()
        self.send_response(200 if state.get("ok") else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # no access log
        pass


if __name__ == "__main__":
    threading.Thread(target=checker, daemon=True).start()
    print(f"deps-app: listening on {PORT}, health {HEALTH_PATH}", flush=True)
    sys.stdout.flush()
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
