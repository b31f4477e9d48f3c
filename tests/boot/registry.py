"""A private image registry on 127.0.0.1 for the boot tests: Debian's ``docker-registry`` (distribution 2.x)
with its own config and storage, and a client speaking the registry HTTP API v2 with urllib (blob uploads,
manifest PUT, reads back by digest).

No Docker daemon and no public registry are involved. A VM reaches this registry through the test-only
capability in ``lcai_test_registry`` (a forwarder inside the VM from 127.0.0.1:PORT to the host).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from oci import MANIFEST_V2, Image

START_TIMEOUT = float(os.environ.get("LCAI_TEST_REGISTRY_START_TIMEOUT", "20"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryError(RuntimeError):
    pass


class Registry:
    """A running ``docker-registry`` on ``127.0.0.1:port`` (``start``/``stop``), or any v2 registry URL."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, name: str, tag: str) -> str:
        """The image reference a Docker client uses (``127.0.0.1:PORT/NAME:TAG``)."""
        return f"{self.host}/{name}:{tag}"

    # ------------------------------------------------------------ process

    def config_text(self) -> str:
        return json.dumps({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }, indent=1)  # JSON is YAML

    def start(self) -> "Registry":
        from lcai_testing import tools

        exe = tools.which("docker-registry")
        if not exe:
            raise FileNotFoundError("docker-registry is not installed (apt-get install docker-registry)")
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "config.yml"
        cfg.write_text(self.config_text())
        self.log = open(self.workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryError(f"docker-registry exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                if self._request("GET", "/v2/")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RegistryError(f"docker-registry did not answer on {self.url} within {START_TIMEOUT}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.workdir / "registry.log").read_text(errors="replace")[-600:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()

    # ------------------------------------------------------------ HTTP API v2

    def _request(self, method: str, path_or_url: str, data=None, headers: Optional[dict] = None,
                 timeout: float = 60) -> tuple[int, dict, bytes]:
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def has_blob(self, name: str, digest: str) -> bool:
        return self._request("HEAD", f"/v2/{name}/blobs/{digest}")[0] == 200

    def push_blob(self, name: str, digest: str, path: Path) -> bool:
        """Upload one blob (monolithic: POST an upload, PUT its content with ``?digest=``). False when the
        registry already had it."""
        if self.has_blob(name, digest):
            return False
        status, headers, body = self._request("POST", f"/v2/{name}/blobs/uploads/", data=b"")
        if status != 202:
            raise RegistryError(f"POST /v2/{name}/blobs/uploads/: {status} {body[:300]!r}")
        location = headers.get("Location", "")
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        size = path.stat().st_size
        with open(path, "rb") as fh:
            status, _, body = self._request("PUT", f"{location}{sep}digest={digest}", data=fh,
                                            headers={"Content-Type": "application/octet-stream",
                                                     "Content-Length": str(size)}, timeout=600)
        if status != 201:
            raise RegistryError(f"PUT blob {digest}: {status} {body[:300]!r}")
        return True

    def push(self, image: Image, name: str, tag: str) -> str:
        """Push every blob, then the manifest under ``tag``; returns the reference ``127.0.0.1:PORT/NAME:TAG``.
        The registry's ``Docker-Content-Digest`` must equal the manifest's own digest."""
        for blob in image.blobs:
            self.push_blob(name, blob.digest, blob.path)
        status, headers, body = self._request("PUT", f"/v2/{name}/manifests/{tag}", data=image.manifest,
                                              headers={"Content-Type": MANIFEST_V2})
        if status != 201:
            raise RegistryError(f"PUT manifest {name}:{tag}: {status} {body[:300]!r}")
        got = headers.get("Docker-Content-Digest")
        if got != image.digest:
            raise RegistryError(f"registry stored manifest {name}:{tag} as {got}, expected {image.digest}")
        return self.ref(name, tag)

    def manifest(self, name: str, ref: str) -> tuple[bytes, str, str]:
        """(manifest bytes, content type, Docker-Content-Digest) as a Docker client would fetch them."""
        status, headers, body = self._request("GET", f"/v2/{name}/manifests/{ref}", headers={"Accept": MANIFEST_V2})
        if status != 200:
            raise RegistryError(f"GET manifest {name}:{ref}: {status} {body[:300]!r}")
        return body, headers.get("Content-Type", ""), headers.get("Docker-Content-Digest", "")

    def blob(self, name: str, digest: str) -> bytes:
        status, _, body = self._request("GET", f"/v2/{name}/blobs/{digest}")
        if status != 200:
            raise RegistryError(f"GET blob {digest}: {status}")
        return body

    def tags(self, name: str) -> list[str]:
        status, _, body = self._request("GET", f"/v2/{name}/tags/list")
        return json.loads(body).get("tags") or [] if status == 200 else []


def start_registry(workdir: Optional[Path] = None) -> Registry:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="lcai-registry-"))
    return Registry(free_port(), workdir).start()


def require_docker_registry() -> None:
    """Skip (locally) or fail (CI=true) when Debian's docker-registry is not installed."""
    from lcai_testing import tools

    tools.need("docker-registry", why="the test registry needs")


try:
    import pytest

    @pytest.fixture(scope="session")
    def registry(tmp_path_factory):
        """Debian's docker-registry on 127.0.0.1:<free port>, its own config and storage, for the session."""
        require_docker_registry()
        reg = start_registry(tmp_path_factory.mktemp("registry"))
        yield reg
        reg.stop()

except ImportError:  # pragma: no cover
    pass
