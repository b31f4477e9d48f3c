import json
import os
import urllib.request

import pytest

pytest.importorskip("linode_api4") if not os.environ.get("CI") else None

from lcai_core.cli import main  # noqa: E402
from lcai_linode.simulator import Simulator  # noqa: E402

TEMPLATE = """\
name: web
version: 1.2.0
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    region_default: us-ord
    type_default: g6-standard-2
    tags: [team-ml]
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: {port}
      health: {{type: http, path: /, initial_delay_seconds: 1, interval_seconds: 1, max_retries: 3}}
env:
  required:
    - name: API_KEY
"""


class Sim:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.url = sim.url
        self.base = sim.url[: -len("/v4")]

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def fault(self, **spec):
        return self._call("POST", "/_sim/faults", [spec])

    def state(self):
        return self._call("GET", "/_sim/state")

    def requests(self):
        return self._call("GET", "/_sim/requests")

    def clear_requests(self):
        self.sim.state.requests.clear()


@pytest.fixture
def sim(monkeypatch, lcai_config_dir, tmp_path):
    s = Simulator(provision_s=0.15, boot_s=0.15, app_ready_s=0.1).start()
    monkeypatch.setenv("LCAI_LINODE_API_URL", s.url)
    monkeypatch.setenv("LINODE_TOKEN", "sim-token")
    monkeypatch.setenv("LCAI_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("LCAI_RETRY_DELAY", "0")
    monkeypatch.setenv("LCAI_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LINODE_CLI_TOKEN", raising=False)
    (tmp_path / "home").mkdir()
    yield Sim(s)
    s.stop()


@pytest.fixture
def svc(tmp_path):
    """A deployment directory with a small template (port 8080, so no root is needed) and a .env."""
    d = tmp_path / "svc"
    d.mkdir()
    (d / "deploy.yml").write_text(TEMPLATE.format(port=18080 + (os.getpid() % 1000)))
    (d / ".env").write_text("API_KEY=k-123\n")
    return d


@pytest.fixture
def lcai(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run
