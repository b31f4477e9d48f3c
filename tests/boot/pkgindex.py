"""A package index for the boot tests: a wheel of lcai-buildwatch built from this checkout, served as a PEP 503
simple index on 127.0.0.1 (the VM reaches it at 10.0.2.2:PORT under QEMU's user-mode network). BuildWatch's
``agent_from: package-index`` fetches its agent from it exactly as an instance on Linode does from PyPI."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                        str(REPO / "plugins/lcai-buildwatch")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"building the lcai-buildwatch wheel failed:\n{r.stderr[-2000:]}"
    return next(out.glob("lcai_buildwatch-*-py3-none-any.whl"))


class PackageIndex:
    def __init__(self, root: Path):
        self.root, self.downloads = root, []
        index = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(root), **k)

            def do_GET(self):
                if self.path.endswith(".whl"):
                    index.downloads.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url_from_vm(self) -> str:
        return f"http://10.0.2.2:{self.port}/simple"

    def publish(self, wheel: Path) -> None:
        files = self.root / "files"
        files.mkdir(parents=True, exist_ok=True)
        (files / wheel.name).write_bytes(wheel.read_bytes())
        page = self.root / "simple" / "lcai-buildwatch"
        page.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (page / "index.html").write_text(
            f'<html><body><a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>\n')

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def package_index():
    with tempfile.TemporaryDirectory(prefix="lcai-index-") as tmp:
        index = PackageIndex(Path(tmp) / "index")
        index.publish(build_wheel(Path(tmp) / "wheel"))
        try:
            yield index
        finally:
            index.close()
