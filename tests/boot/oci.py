"""Docker/OCI images built without a Docker daemon, for the boot tests.

An image is plain files: gzipped layer tars, an image config (JSON) and a v2 manifest (JSON) naming both by
sha256 digest. Everything here is deterministic (sorted tar entries, fixed owners and mtimes, gzip without a
timestamp, canonical JSON), so the same recipe gives the same digests on every machine.

Root file systems come from the Debian archive only:
- ``standin_image``: ``busybox-static`` (one static binary, fetched with ``apt-get download``) serving a
  directory with busybox httpd on a fixed port; the health path is a file. It stands in for a template's real
  image (same port, same health path) and ignores the arguments meant for that image.
- ``deps_app_image``: an ``mmdebstrap --variant=essential`` root with python3, python3-redis and
  python3-psycopg2, plus ``deps_app.py``, which answers its health path with 200 only after it used
  ``REDIS_URL`` and ``DATABASE_URL`` from its environment.

Built images are cached by a hash of their recipe under ``$LCAI_TEST_CACHE`` (default
``/var/cache/lcai-test``, or ``~/.cache/lcai-test`` when that is not writable): blobs in ``blobs/sha256/``, one
JSON record per recipe in ``images/``. A second run
finds the record and builds nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: every file in a layer gets this mtime (SOURCE_DATE_EPOCH when set, as reproducible-builds.org asks)
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
SUITE = os.environ.get("LCAI_TEST_SUITE", "bookworm")
#: bump when the way images are built changes, so cached records from older code are not reused
BUILDER_VERSION = "1"

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$LCAI_TEST_CACHE``, else ``/var/cache/lcai-test`` when this user can write there, else
    ``~/.cache/lcai-test`` of the user's real home (from the password database: tests point ``$HOME`` at a
    temporary directory, and the cache must outlive a test run)."""
    env = os.environ.get("LCAI_TEST_CACHE")
    if env:
        d = Path(env)
    else:
        d = Path("/var/cache/lcai-test")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        if not os.access(d, os.W_OK):
            import pwd

            d = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "lcai-test"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str
    path: Path

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class Image:
    """A built image: its manifest bytes (what a registry stores, digest and all), config and layers."""

    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (*self.layers, self.config)

    def config_json(self) -> dict:
        return json.loads(self.config.read())


class BlobStore:
    """Content-addressed files under ``root/blobs/sha256``."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def put_bytes(self, data: bytes, media_type: str) -> Blob:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        p = self.path(digest)
        if not (p.is_file() and p.read_bytes() == data):
            tmp = p.with_suffix(f".{os.getpid()}.tmp")  # one per process: test workers may write the same blob
            tmp.write_bytes(data)
            os.replace(tmp, p)
        return Blob(digest, len(data), media_type, p)

    def put_file(self, src: Path, media_type: str) -> Blob:
        digest = sha256_file(src)
        p = self.path(digest)
        os.replace(src, p)  # same content when it existed, unless it was corrupt: replace either way
        return Blob(digest, p.stat().st_size, media_type, p)

    def blob(self, digest: str, media_type: str) -> Blob:
        p = self.path(digest)
        if not p.is_file() or sha256_file(p) != digest:
            raise FileNotFoundError(f"blob {digest} missing or corrupt in {self.root}")
        return Blob(digest, p.stat().st_size, media_type, p)


# ---------------------------------------------------------------- layers


def _normalize(ti: tarfile.TarInfo, keep_owner: bool) -> tarfile.TarInfo:
    ti.mtime = min(int(ti.mtime), EPOCH) if keep_owner else EPOCH
    if not keep_owner:
        ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.pax_headers = {}
    return ti


class LayerWriter:
    """Writes one layer: an uncompressed tar hashed for the config's ``diff_id``, gzipped (no timestamp, no
    file name) into a temp file that becomes a blob."""

    def __init__(self, store: BlobStore):
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.root, prefix="layer-", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(name)
        self._raw = open(self.tmp, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)
        self._hash = hashlib.sha256()
        self.tar = tarfile.open(fileobj=self, mode="w|", format=tarfile.GNU_FORMAT)

    def write(self, data: bytes) -> int:  # the file object tarfile writes to
        self._hash.update(data)
        return self._gz.write(data)

    def add(self, ti: tarfile.TarInfo, data: Optional[bytes | io.BufferedReader] = None) -> None:
        if isinstance(data, bytes):
            ti.size = len(data)
            data = io.BytesIO(data)
        self.tar.addfile(ti, data)

    def finish(self) -> tuple[Blob, str]:
        self.tar.close()
        self._gz.close()
        self._raw.close()
        diff_id = "sha256:" + self._hash.hexdigest()
        return self.store.put_file(self.tmp, LAYER_GZIP), diff_id


def _dir_entry(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    return _normalize(ti, keep_owner=False)


def _file_entry(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    return _normalize(ti, keep_owner=False)


def _link_entry(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    return _normalize(ti, keep_owner=False)


def layer_from_files(store: BlobStore, files: dict[str, tuple[int, bytes | str]],
                     links: Optional[dict[str, str]] = None) -> tuple[Blob, str]:
    """A layer holding ``files`` (path → (mode, content)) and symlinks (path → target), every parent
    directory included, in sorted order, owned by root, with mtime ``EPOCH``."""
    entries: dict[str, tarfile.TarInfo | tuple] = {}
    links = links or {}
    for path in [*files, *links]:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            entries.setdefault(d, _dir_entry(d))
    for path, (mode, content) in files.items():
        entries[path.strip("/")] = (_file_entry(path.strip("/"), mode),
                                    content.encode() if isinstance(content, str) else content)
    for path, target in links.items():
        entries[path.strip("/")] = _link_entry(path.strip("/"), target)
    w = LayerWriter(store)
    for name in sorted(entries):
        e = entries[name]
        if isinstance(e, tuple):
            w.add(*e)
        else:
            w.add(e)
    return w.finish()


def layer_from_tar(store: BlobStore, tar_path: Path, exclude_prefixes: Iterable[str] = ("dev/",)) -> tuple[Blob, str]:
    """Repack a root file system tar (e.g. mmdebstrap's) as a layer: entries sorted by name, owners kept,
    mtimes clamped to ``EPOCH``, device nodes and ``exclude_prefixes`` dropped (Docker creates /dev)."""
    excl = tuple(exclude_prefixes)
    with tarfile.open(tar_path) as src:
        members = []
        for m in src.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name.lstrip("/")
            if not name or name == ".":
                continue
            if m.ischr() or m.isblk() or m.isfifo() or name.startswith(excl):
                continue
            m.name = name
            if m.islnk():
                m.linkname = m.linkname[2:] if m.linkname.startswith("./") else m.linkname.lstrip("/")
            members.append(m)
        # sorted by name (a directory before its contents); hard links last, after every file they name
        members.sort(key=lambda m: (m.islnk(), m.name))
        w = LayerWriter(store)
        for m in members:
            data = src.extractfile(m) if m.isreg() else None
            w.add(_normalize(m, keep_owner=True), data)
        return w.finish()


# ---------------------------------------------------------------- images


def assemble(store: BlobStore, layers: list[tuple[Blob, str]], config: dict, history: list[str]) -> Image:
    """Image config (architecture, os, runtime ``config``, ``rootfs.diff_ids``, history) + v2 manifest."""
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": h} for h in history],
    }
    config_blob = store.put_bytes(canonical_json(cfg), CONFIG_V1)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": config_blob.descriptor(),
        "layers": [blob.descriptor() for blob, _ in layers],
    }
    return Image(canonical_json(manifest), config_blob, tuple(blob for blob, _ in layers))


def load_image(store: BlobStore, manifest: bytes) -> Image:
    m = json.loads(manifest)
    return Image(manifest, store.blob(m["config"]["digest"], m["config"]["mediaType"]),
                 tuple(store.blob(layer["digest"], layer["mediaType"]) for layer in m["layers"]))


_locks: dict[str, object] = {}


def build_lock(root: Path):
    """One builder at a time per cache (test workers share it): a re-entrant file lock on ``root/.build.lock``."""
    from filelock import FileLock

    key = str(root)
    if key not in _locks:
        root.mkdir(parents=True, exist_ok=True)
        _locks[key] = FileLock(str(root / ".build.lock"))
    return _locks[key]


def cached(recipe: dict, build, store: Optional[BlobStore] = None) -> Image:
    """The image for ``recipe`` from the cache, or ``build(store)`` once and recorded. The record is the
    manifest; its blobs are checked (present, digest matches) before it is trusted."""
    store = store or BlobStore(cache_dir())
    with build_lock(store.root):
        return _cached(recipe, build, store)


def _cached(recipe: dict, build, store: BlobStore) -> Image:
    key = hashlib.sha256(canonical_json({**recipe, "builder": BUILDER_VERSION, "epoch": EPOCH})).hexdigest()
    record = store.root / "images" / f"{key}.json"
    if record.is_file():
        try:
            return load_image(store, record.read_bytes())
        except (FileNotFoundError, KeyError, ValueError):
            pass  # rebuild below
    image = build(store)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(image.manifest)
    os.replace(tmp, record)
    return image


# ---------------------------------------------------------------- Debian inputs


def debian_package(name: str) -> Path:
    """The .deb of ``name`` from the host's apt sources (``apt-get download``), cached under debs/."""
    d = cache_dir() / "debs"
    d.mkdir(parents=True, exist_ok=True)
    with build_lock(cache_dir()):
        return _debian_package(name, d)


def _debian_package(name: str, d: Path) -> Path:
    found = sorted(d.glob(f"{name}_*.deb"))
    if found:
        return found[-1]
    r = subprocess.run(["apt-get", "download", name], cwd=d, capture_output=True, text=True, timeout=600)
    found = sorted(d.glob(f"{name}_*.deb"))
    if r.returncode != 0 or not found:
        raise RuntimeError(f"apt-get download {name} failed: {r.stderr.strip()[-400:]}")
    return found[-1]


def deb_file(deb: Path, member: str) -> bytes:
    """One file from a .deb's data (``dpkg-deb --fsys-tarfile``)."""
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True,
                               timeout=120).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        for m in t.getmembers():
            if m.name.lstrip("./") == member.lstrip("/"):
                return t.extractfile(m).read()
    raise FileNotFoundError(f"{member} not in {deb.name}")


def mmdebstrap_tar(packages: tuple[str, ...], out: Path, suite: str = SUITE) -> None:
    """``mmdebstrap --variant=essential`` + ``packages`` into a tar, without docs, man pages or locales."""
    from lcai_testing import tools

    mmdebstrap = tools.which("mmdebstrap")
    if not mmdebstrap:
        raise RuntimeError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    cmd = [mmdebstrap, "--quiet", "--variant=essential", f"--include={','.join(packages)}",
           "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
           "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
           "--aptopt=Acquire::Retries \"3\"", suite, str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({r.returncode}): {r.stderr.strip()[-800:]}")


# ---------------------------------------------------------------- the images the boot tests use

#: busybox 1.35's static wget crashes (SIGSEGV) with ``-T``: bound it with ``timeout SECS wget …`` instead
BUSYBOX_APPLETS = ("sh", "cat", "echo", "env", "id", "ls", "mkdir", "mv", "nc", "printf", "ps", "rm", "sleep",
                   "true", "false", "wget", "httpd", "ip", "timeout")

STANDIN_ENTRYPOINT = """#!/bin/sh
# lcai boot-test stand-in: serves /www on $STANDIN_PORT (the health path is a file there); the arguments meant
# for the image it stands in for are ignored. With STANDIN_GATE set (a path in the container), the health path
# answers 404 until that file exists: a test decides when the app becomes healthy.
echo "stand-in: serving /www on port $STANDIN_PORT"
if [ -n "${STANDIN_GATE:-}" ]; then  # httpd keeps /www as its directory: move what is in it, not /www itself
  mkdir /www.gated && mv /www/* /www.gated/
  (while [ ! -e "$STANDIN_GATE" ]; do sleep 1; done; mv /www.gated/* /www/) &
fi
exec /bin/busybox httpd -f -p "$STANDIN_PORT" -h /www
"""

STANDIN_COMMAND = """#!/bin/sh
# lcai boot-test stand-in for a command of the real image: logs its arguments and succeeds
echo "stand-in $(basename "$0"): $*"
"""


def _busybox_layer(store: BlobStore) -> tuple[Blob, str]:
    busybox = deb_file(debian_package("busybox-static"), "bin/busybox")
    files = {"bin/busybox": (0o755, busybox), "etc/passwd": (0o644, "root:x:0:0:root:/root:/bin/sh\n"),
             "etc/group": (0o644, "root:x:0:\n")}
    links = {f"bin/{a}": "busybox" for a in BUSYBOX_APPLETS}
    blob, diff = layer_from_files(store, files, links)
    return blob, diff


def standin_recipe(port: int, health_path: str = "/", commands: tuple[str, ...] = ()) -> dict:
    """What a stand-in image is made of: its cache key."""
    return {"kind": "standin", "port": port, "path": health_path, "commands": sorted(commands),
            "entrypoint": STANDIN_ENTRYPOINT, "command": STANDIN_COMMAND, "applets": BUSYBOX_APPLETS,
            "busybox": debian_package("busybox-static").name}


def standin_image(port: int, health_path: str = "/", commands: tuple[str, ...] = (),
                  store: Optional[BlobStore] = None) -> Image:
    """A busybox image serving ``health_path`` (200, body ``ok``) on ``port``; ``commands`` are extra
    programs of the real image (e.g. ``ollama``) that log their arguments and succeed."""
    if not health_path.startswith("/"):
        raise ValueError(f"health path must start with '/', got {health_path!r}")
    page = health_path.rstrip("/") + "/index.html" if health_path.endswith("/") else health_path

    def build(st: BlobStore) -> Image:
        base = _busybox_layer(st)
        files = {"standin": (0o755, STANDIN_ENTRYPOINT), f"www{page}": (0o644, "ok\n"),
                 "tmp/.keep": (0o644, "")}
        for c in commands:
            files[f"usr/local/bin/{c}"] = (0o755, STANDIN_COMMAND)
        app = layer_from_files(st, files)
        config = {"Entrypoint": ["/standin"], "Env": [f"STANDIN_PORT={port}", "PATH=/usr/local/bin:/bin"],
                  "ExposedPorts": {f"{port}/tcp": {}}, "WorkingDir": "/"}
        return assemble(st, [base, app], config, ["busybox-static from the Debian archive",
                                                  f"stand-in serving {health_path} on {port}"])

    return cached(standin_recipe(port, health_path, commands), build, store)


def debian_root_layer(packages: tuple[str, ...], store: Optional[BlobStore] = None,
                      suite: str = SUITE) -> tuple[Blob, str]:
    """A layer holding an ``mmdebstrap --variant=essential`` root with ``packages``, cached by (suite,
    packages): (blob, diff_id). Built once; images that differ only above it share it."""
    store = store or BlobStore(cache_dir())
    key = hashlib.sha256(canonical_json({"suite": suite, "packages": sorted(packages), "builder": BUILDER_VERSION,
                                         "epoch": EPOCH})).hexdigest()
    record = store.root / "layers" / f"{key}.json"
    if record.is_file():
        try:
            r = json.loads(record.read_text())
            return store.blob(r["digest"], LAYER_GZIP), r["diff_id"]
        except (FileNotFoundError, KeyError, ValueError):
            pass
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        root_tar = Path(tmp) / "root.tar"
        mmdebstrap_tar(tuple(sorted(packages)), root_tar, suite)
        blob, diff_id = layer_from_tar(store, root_tar)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"digest": blob.digest, "diff_id": diff_id, "suite": suite,
                                  "packages": sorted(packages)}))
    return blob, diff_id


DEPS_PACKAGES = ("python3", "python3-redis", "python3-psycopg2")


def deps_app_image(port: int = 8080, health_path: str = "/healthz", store: Optional[BlobStore] = None) -> Image:
    """The deps test app on a Debian ``essential`` root with python3, python3-redis and python3-psycopg2."""
    app_src = (HERE / "deps_app.py").read_text()
    recipe = {"kind": "deps-app", "suite": SUITE, "packages": DEPS_PACKAGES, "port": port, "path": health_path,
              "app": app_src}

    def build(st: BlobStore) -> Image:
        base = debian_root_layer(DEPS_PACKAGES, st)
        app = layer_from_files(st, {"app/deps_app.py": (0o644, app_src)})
        config = {"Entrypoint": ["/usr/bin/python3", "-u", "/app/deps_app.py"],
                  "Env": [f"DEPS_APP_PORT={port}", f"DEPS_APP_HEALTH_PATH={health_path}",
                          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                  "ExposedPorts": {f"{port}/tcp": {}}, "WorkingDir": "/app"}
        return assemble(st, [base, app], config, [f"mmdebstrap --variant=essential {SUITE} + {' '.join(DEPS_PACKAGES)}",
                                                  "deps_app.py"])

    return cached(recipe, build, store)
