import json
import os
import urllib.request

import pytest

pytest.importorskip("linode_api4") if not os.environ.get("CI") else None

from lcai_core.cli import main  # noqa: E402
from lcai_testing.linode.simulator import Simulator  # noqa: E402

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


class Machine:
    """The 'machine' behind a fake ssh: what `cloud-init status` says, the health unit's result, SSH access."""

    def __init__(self, root):
        self.root = root
        (root / "var-lib-lcai").mkdir(parents=True, exist_ok=True)
        self.cloud_init("done")

    def cloud_init(self, status: str) -> None:
        (self.root / "cloud-init-status").write_text(f"status: {status}\n")

    def health(self, state: str, detail: str = "", attempt: int = 1, max_retries: int = 3) -> None:
        (self.root / "var-lib-lcai" / "health.json").write_text(json.dumps(
            {"state": state, "attempt": attempt, "max_retries": max_retries, "detail": detail, "time": 0}) + "\n")

    def script(self, *steps: tuple[str, str]) -> None:
        """(cloud-init status, health state) the machine shows at successive ssh calls (the last one stays)."""
        (self.root / "script").write_text("".join(f"{ci} {hs}\n" for ci, hs in steps))

    def deny(self, denied: bool = True) -> None:
        p = self.root / "deny"
        p.write_text("") if denied else p.unlink(missing_ok=True)

    @property
    def calls(self) -> list[str]:
        p = self.root / "calls"
        return p.read_text().splitlines() if p.exists() else []


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """LCAI_SSH → a fake ssh that runs the remote command here, with /var/lib/lcai and cloud-init's output log
    mapped into a temp dir and a fake `cloud-init status`. Returns the Machine to steer it."""
    root = tmp_path / "machine"
    root.mkdir()
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "cloud-init").write_text(f"#!/bin/sh\ncat {root}/cloud-init-status\n")
    (root / "cloud-init-output.log").write_text("Cloud-init v. 24.1 running 'modules:final'\n")
    (bin_dir / "ssh").write_text(f"""#!/bin/sh
echo "$*" >> {root}/calls
if [ -f {root}/deny ]; then echo "root@host: Permission denied (publickey)." >&2; exit 255; fi
if [ -s {root}/script ]; then
  line=$(head -n 1 {root}/script); ci=${{line%% *}}; hs=${{line#* }}
  echo "status: $ci" > {root}/cloud-init-status
  printf '{{"state": "%s", "attempt": 1, "max_retries": 3, "detail": "", "time": 0}}\n' "$hs" \\
    > {root}/var-lib-lcai/health.json
  if [ "$(wc -l < {root}/script)" -gt 1 ]; then sed -i 1d {root}/script; fi
fi
while [ $# -gt 0 ]; do case "$1" in -o|-p|-i) shift 2 ;; *@*) shift; break ;; *) shift ;; esac; done
cmd=$(printf '%s' "$*" | sed -e "s#/var/lib/lcai#{root}/var-lib-lcai#g" \\
  -e "s#/var/log/cloud-init-output.log#{root}/cloud-init-output.log#g")
PATH={bin_dir}:$PATH exec sh -c "$cmd"
""")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("LCAI_SSH", str(bin_dir / "ssh"))
    return Machine(root)
