"""Host-side (no VM): images built without Docker are deterministic, cached, pushed to a real registry and
read back by digest, and actually run (their layers unpacked into a root, the entrypoint started in it)."""

import gzip
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from lcai_testing import tools

import oci

POLL = float(os.environ.get("LCAI_TEST_POLL_SECONDS", "0.1"))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, want, timeout: float = 30, proc=None) -> tuple[int, bytes]:
    """Poll ``url`` until ``want(status, body)``; the last answer otherwise."""
    deadline = time.monotonic() + timeout
    last = (0, b"")
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}: {proc.stdout.read()[-800:]!r}")
        try:
            last = get(url)
            if want(*last):
                return last
        except OSError as e:
            last = (0, str(e).encode())
        time.sleep(POLL)
    return last


# ---------------------------------------------------------------- building


def test_standin_image_is_deterministic_across_fresh_stores(tmp_path):
    a = oci.standin_image(8080, "/healthz", store=oci.BlobStore(tmp_path / "a"))
    b = oci.standin_image(8080, "/healthz", store=oci.BlobStore(tmp_path / "b"))
    assert a.manifest == b.manifest and a.digest == b.digest
    assert [x.digest for x in a.blobs] == [x.digest for x in b.blobs]
    other = oci.standin_image(8081, "/healthz", store=oci.BlobStore(tmp_path / "a"))
    assert other.digest != a.digest
    assert other.layers[0].digest == a.layers[0].digest  # the busybox base layer is shared


def test_manifest_config_and_layers_agree(tmp_path):
    image = oci.standin_image(11434, "/api/version", commands=("ollama",), store=oci.BlobStore(tmp_path))
    manifest = json.loads(image.manifest)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == oci.MANIFEST_V2
    assert manifest["config"] == {"mediaType": oci.CONFIG_V1, "size": len(image.config.read()),
                                  "digest": sha(image.config.read())}
    config = image.config_json()
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Entrypoint"] == ["/standin"] and "STANDIN_PORT=11434" in config["config"]["Env"]
    names = []
    for desc, blob, diff_id in zip(manifest["layers"], image.layers, config["rootfs"]["diff_ids"], strict=True):
        data = blob.read()
        assert desc == {"mediaType": oci.LAYER_GZIP, "size": len(data), "digest": sha(data)}
        raw = gzip.decompress(data)
        assert sha(raw) == diff_id  # what dockerd checks after unpacking
        assert data[4:8] == b"\0\0\0\0"  # gzip header without a timestamp
        with tarfile.open(fileobj=__import__("io").BytesIO(raw)) as t:
            members = t.getmembers()
        layer_names = [m.name for m in members]
        assert layer_names == sorted(layer_names)
        assert all(m.uid == 0 and m.gid == 0 and m.mtime == oci.EPOCH for m in members)
        names += layer_names
    assert {"bin/busybox", "bin/sh", "standin", "www/api/version", "usr/local/bin/ollama"} <= set(names)


def test_second_build_comes_from_the_cache(tmp_path):
    store = oci.BlobStore(tmp_path)
    first = oci.standin_image(9000, "/", store=store)
    before = sorted(p.name for p in (tmp_path / "blobs" / "sha256").iterdir())
    # the recipe's record is found: building again would fail
    again = oci.cached(oci.standin_recipe(9000, "/"), lambda st: pytest.fail("rebuilt a cached image"), store)
    assert again.digest == first.digest
    assert sorted(p.name for p in (tmp_path / "blobs" / "sha256").iterdir()) == before
    # a corrupt blob is noticed and the image rebuilt (same digest)
    first.layers[1].path.write_bytes(b"garbage")
    rebuilt = oci.standin_image(9000, "/", store=store)
    assert rebuilt.digest == first.digest and sha(rebuilt.layers[1].read()) == rebuilt.layers[1].digest


def test_bad_health_path_refused():
    with pytest.raises(ValueError, match="must start with '/'"):
        oci.standin_image(80, "health")


# ---------------------------------------------------------------- the registry


def test_push_then_read_back_by_digest(registry):
    image = oci.standin_image(8080, "/healthz")
    ref = registry.push(image, "lcai/standin", "t1")
    assert ref == f"127.0.0.1:{registry.port}/lcai/standin:t1"
    body, ctype, digest = registry.manifest("lcai/standin", "t1")
    assert body == image.manifest and ctype == oci.MANIFEST_V2 and digest == image.digest
    assert registry.manifest("lcai/standin", image.digest)[0] == image.manifest  # pull by digest
    for desc in [json.loads(body)["config"], *json.loads(body)["layers"]]:
        data = registry.blob("lcai/standin", desc["digest"])
        assert sha(data) == desc["digest"] and len(data) == desc["size"]
    assert "t1" in registry.tags("lcai/standin")
    # pushing again uploads nothing: every blob is already there
    assert not any(registry.push_blob("lcai/standin", b.digest, b.path) for b in image.blobs)


def test_registry_refuses_a_blob_whose_digest_does_not_match(registry, tmp_path):
    bad = tmp_path / "blob"
    bad.write_bytes(b"not what the digest says")
    with pytest.raises(Exception, match="PUT blob"):
        registry.push_blob("lcai/bad", sha(b"something else"), bad)
    assert not registry.has_blob("lcai/bad", sha(b"something else"))


# ---------------------------------------------------------------- the images run


def _need_root():
    if os.geteuid() != 0:
        tools.skip_or_fail("running image roots needs root")
    tools.need("chroot", why="running image roots needs")


def unpack(image: oci.Image, root: Path) -> dict:
    """Unpack the layers in order (as dockerd does, no whiteouts used here); returns the runtime config."""
    root.mkdir(parents=True, exist_ok=True)
    for layer in image.layers:
        subprocess.run(["tar", "-xzf", str(layer.path), "-C", str(root), "--numeric-owner"], check=True)
    for d in ("dev", "proc", "tmp"):
        (root / d).mkdir(exist_ok=True)
    return image.config_json()["config"]


def run_in(root: Path, config: dict, env: dict, args=()) -> subprocess.Popen:
    environ = dict(e.split("=", 1) for e in config.get("Env", []))
    environ.update(env)
    return subprocess.Popen([tools.which("chroot"), str(root), *config["Entrypoint"], *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc):
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_standin_serves_its_health_path_and_ignores_the_real_images_arguments(tmp_path):
    _need_root()
    port = free_port()
    image = oci.standin_image(port, "/api/version", commands=("ollama",))
    config = unpack(image, tmp_path / "root")
    proc = run_in(tmp_path / "root", config, {}, args=("--model-id", "x", "--api-key", "secret"))
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/api/version", lambda s, b: s == 200, proc=proc)
        assert (status, body) == (200, b"ok\n")
        assert get(f"http://127.0.0.1:{port}/nothing-here")[0] == 404
        shim = subprocess.run([tools.which("chroot"), str(tmp_path / "root"), "/bin/sh", "-c", 'ollama pull "$M"'],
                              env={"M": "llama3.2:3b", "PATH": "/usr/local/bin:/bin"}, capture_output=True, text=True)
        assert shim.returncode == 0 and "stand-in ollama: pull llama3.2:3b" in shim.stdout
        # what the metadata check runs in a container: a bounded fetch with the image's own tools
        fetch = subprocess.run([tools.which("chroot"), str(tmp_path / "root"), "timeout", "10", "wget", "-q",
                                "-O", "-", f"http://127.0.0.1:{port}/api/version"], env={"PATH": "/usr/local/bin:/bin"},
                               capture_output=True, text=True)
        assert (fetch.returncode, fetch.stdout) == (0, "ok\n"), fetch.stderr
    finally:
        out = stop(proc)
    assert "secret" not in out


def test_a_gated_standin_is_unhealthy_until_its_gate_opens(tmp_path):
    """STANDIN_GATE: the health path answers 404 until the gate file exists (what the chat-agent boot uses to
    show cloud-init is done while the health wait still waits)."""
    _need_root()
    port = free_port()
    config = unpack(oci.standin_image(port, "/api/version"), tmp_path / "root")
    # sh gives a background job /dev/null as stdin; a container has it, a bare chroot needs one
    (tmp_path / "root" / "dev").mkdir(exist_ok=True)
    os.mknod(tmp_path / "root" / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    proc = run_in(tmp_path / "root", config, {"STANDIN_GATE": "/tmp/ready"})
    try:
        wait_http(f"http://127.0.0.1:{port}/api/version", lambda s, b: s == 404, proc=proc)
        time.sleep(1.5)  # the gate loop polls every second: still closed
        assert get(f"http://127.0.0.1:{port}/api/version")[0] == 404
        (tmp_path / "root" / "tmp" / "ready").write_text("")
        status, body = wait_http(f"http://127.0.0.1:{port}/api/version", lambda s, b: s == 200, proc=proc)
        assert (status, body) == (200, b"ok\n")
    finally:
        stop(proc)


# the deps app against a real redis-server and a real PostgreSQL on the host


@pytest.fixture
def services(tmp_path):
    """redis-server with a password and a throwaway PostgreSQL cluster with an app role, on 127.0.0.1."""
    _need_root()
    # mmdebstrap builds the deps app's Debian root
    redis_server, redis_cli, initdb, pg_ctl, psql, runuser, _ = tools.need(
        "redis-server", "redis-cli", "initdb", "pg_ctl", "psql", "runuser", "mmdebstrap")
    rpass, ppass = "r3dis/pass+word", "pg-pass_word.1"
    rport, pport = free_port(), free_port()
    redis = subprocess.Popen([redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--requirepass", rpass,
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = Path(tempfile.mkdtemp(prefix="lcai-pg-"))
    shutil.chown(d, "postgres", "postgres")
    as_pg = [runuser, "-u", "postgres", "--"]
    try:
        subprocess.run([*as_pg, initdb, "-D", f"{d}/data", "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_pg, pg_ctl, "-D", f"{d}/data", "-l", f"{d}/log", "-w", "-o",
                        f"-p {pport} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], check=True,
                       capture_output=True)
        subprocess.run([*as_pg, psql, "-h", str(d), "-p", str(pport), "-v", "ON_ERROR_STOP=1",
                        "-c", f"CREATE ROLE app LOGIN PASSWORD '{ppass}'", "-c", "CREATE DATABASE appdb OWNER app"],
                       check=True, capture_output=True)
        q = urllib.parse.quote
        yield {"REDIS_URL": f"redis://:{q(rpass, safe='')}@127.0.0.1:{rport}/0",
               "DATABASE_URL": f"postgresql://app:{q(ppass, safe='')}@127.0.0.1:{pport}/appdb",
               "redis_cli": [redis_cli, "-p", str(rport), "--no-auth-warning", "-a", rpass],
               "psql": [*as_pg, psql, "-h", str(d), "-p", str(pport), "-d", "appdb", "-tAc"],
               "secrets": (rpass, ppass)}
    finally:
        subprocess.run([*as_pg, pg_ctl, "-D", f"{d}/data", "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
        redis.terminate()
        redis.wait(10)


def test_deps_app_is_healthy_only_after_using_redis_and_postgres(services, tmp_path):
    image = oci.deps_app_image(port=8080, health_path="/healthz")
    config = unpack(image, tmp_path / "root")
    assert "DEPS_APP_PORT=8080" in config["Env"]
    port = free_port()  # the chroot shares the host's network: not 8080
    config["Env"].append(f"DEPS_APP_PORT={port}")
    url = f"http://127.0.0.1:{port}/healthz"
    # a wrong Redis password: never healthy, and the answer says why without leaking a secret
    wrong = {**services, "REDIS_URL": services["REDIS_URL"].replace("r3dis", "wrong")}
    proc = run_in(tmp_path / "root", config, {"REDIS_URL": wrong["REDIS_URL"], "DATABASE_URL": wrong["DATABASE_URL"],
                                              "DEPS_APP_RETRY_SECONDS": "0.2"})
    try:
        status, body = wait_http(url, lambda s, b: s == 503 and b"detail" in b and b"starting" not in b, proc=proc)
        assert status == 503 and b"Error" in body, body
        time.sleep(1)
        assert get(url)[0] == 503
    finally:
        out = stop(proc)
    for secret in (*services["secrets"], "wrong/pass+word", urllib.parse.quote("wrong/pass+word", safe="")):
        assert secret not in out and secret not in body.decode()
    # the right URLs: healthy, and the token it reports is really in Redis and in PostgreSQL
    proc = run_in(tmp_path / "root", config, {"REDIS_URL": services["REDIS_URL"],
                                              "DATABASE_URL": services["DATABASE_URL"]})
    try:
        status, body = wait_http(url, lambda s, b: s == 200, timeout=60, proc=proc)
        assert status == 200, body
        result = json.loads(body)
        assert result["postgres"] == {"user": "app", "database": "appdb", "table": "lcai_deps_test"}
        stored = subprocess.run([*services["redis_cli"], "GET", "lcai-deps-test"], capture_output=True, text=True)
        assert stored.stdout.strip() == result["token"]
        row = subprocess.run([*services["psql"], "select token from lcai_deps_test"], capture_output=True, text=True)
        assert row.stdout.split() == [result["token"]], row.stderr
    finally:
        out = stop(proc)
    assert all(s not in out for s in services["secrets"])
