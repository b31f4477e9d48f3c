"""BuildWatch's agent from a package index (``agent_from: package-index``): the rendered fetcher, run on this
machine against a PEP 503 index served on 127.0.0.1 that holds a wheel of lcai-buildwatch built from this
checkout, installs exactly the agent lcai pinned, and refuses anything else. A real boot of the same user data is
in tests/boot/test_docker_boot.py (the deps app)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, written

REPO = Path(__file__).resolve().parents[2]
AGENT_SRC = REPO / "plugins/lcai-buildwatch/src/lcai_buildwatch/agent.py"
LLM_API = REPO / "templates/llm-api/template.yml"

TPL = """\
name: bw-app
capabilities:
  runtime: docker
  features:
    - name: buildwatch
      config: {config}
deploy:
  linode:
    image: linode/debian12
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


def render(config: str = "{}", **kw):
    return render_text(TPL.format(config=config), **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of lcai-buildwatch built from this checkout (as a release on an index would be)."""
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                        str(REPO / "plugins/lcai-buildwatch")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return next(out.glob("lcai_buildwatch-*-py3-none-any.whl"))


class Index:
    """A PEP 503 simple index on 127.0.0.1 serving wheels from a directory; counts wheel downloads."""

    def __init__(self, root: Path, port: int = 0):
        self.root, self.downloads = root, 0
        index = self

        class H(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(root), **k)

            def do_GET(self):
                if self.path.endswith(".whl"):
                    index.downloads += 1
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def publish(root: Path, whl_bytes: bytes, name: str, fragment: str | None = None) -> None:
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "files" / name).write_bytes(whl_bytes)
    page = root / "simple" / "lcai-buildwatch"
    page.mkdir(parents=True, exist_ok=True)
    frag = fragment if fragment is not None else "sha256=" + hashlib.sha256(whl_bytes).hexdigest()
    (page / "index.html").write_text(f'<html><body><a href="../../files/{name}#{frag}">{name}</a></body></html>\n')


def tampered(whl: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "lcai_buildwatch/agent.py":
                data += b"\nimport os; os.system('id')\n"
            dst.writestr(item, data)
    return buf.getvalue()


def instance_files(tmp_path: Path, index_url: str, version: str | None = None):
    """The rendered fetcher and config, as cloud-init writes them, with the agent's port pointed at a closed one."""
    r = render(f"{{agent_from: package-index, index_url: '{index_url}'}}")
    files = written(r)
    fetch = tmp_path / "buildwatch-fetch"
    fetch.write_text(files["/usr/local/lib/lcai/buildwatch-fetch"]["content"])
    cfg = json.loads(files["/etc/build-watcher/config.json"]["content"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cfg["port"] = s.getsockname()[1]  # nothing listens there: `query status` fails after the exec
    if version:
        cfg["agent_version"] = version
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return fetch, cfg


def run_fetch(tmp_path: Path, fetch: Path, timeout: float = 60, **env):
    agent = tmp_path / "state" / "agent.py"
    r = subprocess.run([sys.executable, str(fetch), "--config", str(tmp_path / "config.json"), "query", "status"],
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "BUILDWATCH_AGENT": str(agent), "BUILDWATCH_FETCH_DELAY": "0.2",
                            "BUILDWATCH_FETCH_MAX_DELAY": "0.5", **env})
    return r, agent


def test_installs_the_pinned_agent_then_runs_it_and_needs_no_index_after(tmp_path, wheel):
    publish(tmp_path / "idx", wheel.read_bytes(), wheel.name)
    index = Index(tmp_path / "idx")
    try:
        fetch, cfg = instance_files(tmp_path, index.url)
        assert cfg["agent_version"] in wheel.name
        r, agent = run_fetch(tmp_path, fetch)
        # the agent ran (its `query status` found nothing listening on the closed port)
        assert "agent is not answering" in r.stderr and r.returncode == 1, r.stderr
        assert "installed from" in r.stderr
        assert agent.read_bytes() == AGENT_SRC.read_bytes() and os.access(agent, os.X_OK)
        assert index.downloads == 1
        # a reboot: the installed agent has the pinned hash, the index is not asked again
        index.close()
        r2, _ = run_fetch(tmp_path, fetch)
        assert "agent is not answering" in r2.stderr and "installed from" not in r2.stderr
        assert index.downloads == 1
    finally:
        index.close()


def test_a_wheel_whose_agent_differs_is_refused(tmp_path, wheel):
    publish(tmp_path / "idx", tampered(wheel), wheel.name)  # the index's own hash matches the tampered file
    index = Index(tmp_path / "idx")
    try:
        fetch, cfg = instance_files(tmp_path, index.url)
        r, agent = run_fetch(tmp_path, fetch)
        assert r.returncode == 78, r.stderr
        assert f"lcai pinned {cfg['agent_sha256']}: not installed" in r.stderr
        assert not agent.exists() and not Path(str(agent) + ".tmp").exists()
    finally:
        index.close()


def test_a_wheel_that_is_not_the_one_the_index_lists_is_refused(tmp_path, wheel):
    publish(tmp_path / "idx", wheel.read_bytes(), wheel.name, fragment="sha256=" + "0" * 64)
    index = Index(tmp_path / "idx")
    try:
        fetch, _ = instance_files(tmp_path, index.url)
        r, agent = run_fetch(tmp_path, fetch)
        assert r.returncode == 78 and "is not the one" in r.stderr and not agent.exists(), r.stderr
    finally:
        index.close()


def test_a_version_the_index_does_not_have_is_permanent(tmp_path, wheel):
    publish(tmp_path / "idx", wheel.read_bytes(), wheel.name)
    index = Index(tmp_path / "idx")
    try:
        fetch, _ = instance_files(tmp_path, index.url, version="9.9.9")
        r, agent = run_fetch(tmp_path, fetch)
        assert r.returncode == 78 and "lcai_buildwatch-9.9.9-py3-none-any.whl is not on" in r.stderr
        assert index.downloads == 0 and not agent.exists()
    finally:
        index.close()


def test_an_index_that_is_down_at_first_is_retried(tmp_path, wheel):
    publish(tmp_path / "idx", wheel.read_bytes(), wheel.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fetch, _ = instance_files(tmp_path, f"http://127.0.0.1:{port}/simple")
    started: list[Index] = []

    def later():
        time.sleep(1.0)
        started.append(Index(tmp_path / "idx", port))

    t = threading.Thread(target=later)
    t.start()
    try:
        r, agent = run_fetch(tmp_path, fetch)
        assert "did not answer" in r.stderr and "retrying" in r.stderr, r.stderr
        assert agent.read_bytes() == AGENT_SRC.read_bytes()
    finally:
        t.join()
        for i in started:
            i.close()


def test_unit_config_and_query_wrapper():
    r = render("{agent_from: package-index, index_url: 'https://mirror.example/simple'}")
    files = written(r)
    cfg = json.loads(files["/etc/build-watcher/config.json"]["content"])
    assert cfg["agent_index"] == "https://mirror.example/simple"
    assert cfg["agent_sha256"] == hashlib.sha256(AGENT_SRC.read_bytes()).hexdigest()
    unit = files["/etc/systemd/system/build-watcher.service"]["content"]
    fetch = "/usr/local/lib/lcai/buildwatch-fetch"
    assert f"ExecStart=/usr/bin/python3 {fetch} --config /etc/build-watcher/config.json run" in unit
    assert "StateDirectory=build-watcher" in unit and "RestartPreventExitStatus=78" in unit
    # `build-watcher query …` (what `lcai logs` runs over SSH) is a wrapper around the fetched agent
    wrapper = files["/usr/local/bin/build-watcher"]["content"]
    assert "/var/lib/build-watcher/agent.py" in wrapper and len(wrapper) < 400
    assert any("from https://mirror.example/simple at boot" in line for line in r.boot_plan)


def test_wrapper_says_the_agent_is_not_there_yet(tmp_path):
    wrapper = written(render("{agent_from: package-index}"))["/usr/local/bin/build-watcher"]["content"]
    script = tmp_path / "build-watcher"
    script.write_text(wrapper.replace("/var/lib/build-watcher/agent.py", str(tmp_path / "missing.py")))
    r = subprocess.run(["sh", str(script), "query", "status"], capture_output=True, text=True)
    assert r.returncode == 1 and "not installed yet" in r.stderr and "journalctl -u build-watcher" in r.stderr


def test_auto_uses_the_index_only_for_a_release_installed_from_an_index(monkeypatch):
    from lcai_buildwatch import capability

    monkeypatch.setattr(capability, "installed_release", lambda: None)  # editable, local path or dev version
    assert "/usr/local/lib/lcai/buildwatch-fetch" not in written(render())
    monkeypatch.setattr(capability, "installed_release", lambda: "1.4.2")
    cfg = json.loads(written(render())["/etc/build-watcher/config.json"]["content"])
    assert cfg["agent_version"] == "1.4.2" and cfg["agent_index"] == "https://pypi.org/simple"
    assert "/usr/local/lib/lcai/buildwatch-fetch" not in written(render("{agent_from: user-data}"))


def test_installed_release_reads_how_the_distribution_was_installed(monkeypatch):
    from lcai_buildwatch import capability

    class Dist:
        def __init__(self, version, direct_url):
            self.version, self._direct = version, direct_url

        def read_text(self, name):
            return self._direct if name == "direct_url.json" else None

    import importlib.metadata as md
    for version, direct, expected in (("0.3.0", None, "0.3.0"), ("0.3.0", '{"dir_info": {"editable": true}}', None),
                                      ("0.3.0.dev1", None, None), ("0.3.0+local", None, None)):
        dist = Dist(version, direct)
        monkeypatch.setattr(md, "distribution", lambda name, d=dist: d)
        assert capability.installed_release() == expected, (version, direct)


@pytest.mark.parametrize("config,msg", [
    ("{agent_from: url}", "config.agent_from must be one of auto, user-data, package-index"),
    ("{index_url: 'ftp://x/simple'}", "config.index_url must be an http(s) URL"),
    ("{index_url: 'https://user:pw@x.example/simple'}", "config.index_url must not hold credentials"),
])
def test_bad_config_is_refused(config, msg):
    with pytest.raises(ValidationError, match=re.escape(msg)):
        render(config)


def test_llm_api_at_most_8_kib_gzip_as_installed_from_pypi(monkeypatch):
    """issue 12: llm-api (GPU, docker-optimize, BuildWatch), as a user who installed lcai from PyPI renders it,
    is at most 8 KiB gzip — half of Linode's limit; bench/startup.py prints both ways."""
    import base64
    import gzip

    from lcai_buildwatch import capability

    monkeypatch.setattr(capability, "installed_release", lambda: "0.1.0")
    text = render_text(LLM_API.read_text(), dotenv={"VLLM_API_KEY": "sk-test"}).text
    assert "/usr/local/lib/lcai/buildwatch-fetch" in text
    gz = gzip.compress(text.encode(), 9, mtime=0)
    assert len(gz) <= 8192 and len(base64.b64encode(gz)) <= 16384, len(gz)
