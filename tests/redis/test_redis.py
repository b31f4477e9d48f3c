"""lcai-redis: validation, rendering, and the generated config run by a real redis-server."""

import os
import re
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from lcai_core.errors import ValidationError
from lcai_core.plugins import Host
from lcai_testing import app_env as env_of
from lcai_testing import tools
from lcai_testing import render_text, require_plugins, require_validators, validate_many
from lcai_testing import written as files

TPL = """\
name: redis-app
capabilities:
  runtime: {runtime}
  features:
    - {feature}
deploy:
  linode:
    image: {image}
    container:
{container}
"""
DOCKER = "      image: nginx:1.27\n      internal_port: 80\n      external_port: 8080"
NATIVE = "      command: /usr/bin/true\n      internal_port: 8000"


@pytest.fixture(autouse=True)
def installed():
    require_plugins("redis")


def tpl(feature="redis", runtime="docker", image="linode/ubuntu24.04"):
    return TPL.format(feature=feature, runtime=runtime, image=image,
                      container=DOCKER if runtime == "docker" else NATIVE)




def test_registered_by_its_distribution():
    reg = Host().catalog.by_name["redis"]
    assert reg.plugin == "lcai-redis"


def test_redis_url_only_in_the_private_env_file():
    r = render_text(tpl())
    url = env_of(r)["REDIS_URL"]
    parsed = urllib.parse.urlparse(url)
    assert parsed.hostname == "host.docker.internal" and parsed.port == 6379 and len(parsed.password) >= 32
    assert files(r)["/etc/lcai/app.env"]["permissions"] == "0600"
    unit = files(r)["/etc/systemd/system/lcai-app.service"]["content"]
    assert parsed.password not in unit and parsed.password not in str(r.doc["runcmd"])
    assert "--add-host host.docker.internal:host-gateway" in unit
    after = next(line for line in unit.splitlines() if line.startswith("After=")).split("=", 1)[1].split()
    assert "docker.service" in after and "redis-server.service" in after
    assert "6379" not in unit  # never published


def test_password_per_deployment_stable_per_plan():
    a = env_of(render_text(tpl(), secret_seed=b"one"))["REDIS_URL"]
    b = env_of(render_text(tpl(), secret_seed=b"one"))["REDIS_URL"]
    c = env_of(render_text(tpl(), secret_seed=b"two"))["REDIS_URL"]
    assert a == b != c


def test_config_appended_after_packages_binds_loopback_and_docker0():
    r = render_text(tpl("{name: redis, config: {maxmemory: 1gb, persistence: aof, password: "
                        "correct-horse-battery-staple}}"))
    conf = files(r)["/etc/redis/redis.conf"]
    assert conf["append"] is True and conf["defer"] is True and conf["owner"] == "redis:redis"
    text = conf["content"]
    assert "bind 127.0.0.1 172.17.0.1" in text and "requirepass correct-horse-battery-staple" in text
    assert "maxmemory 1gb" in text and "appendonly yes" in text
    assert env_of(r)["REDIS_URL"] == "redis://default:correct-horse-battery-staple@host.docker.internal:6379/0"
    assert "After=docker.service" in files(r)["/etc/systemd/system/redis-server.service.d/lcai.conf"]["content"]


def test_native_runtime_binds_loopback_only():
    r = render_text(tpl(runtime="native"))
    assert "bind 127.0.0.1\n" in files(r)["/etc/redis/redis.conf"]["content"]
    assert "@127.0.0.1:6379/0" in env_of(r)["REDIS_URL"]


def test_user_env_wins_over_generated_url():
    r = render_text(tpl(), dotenv={"REDIS_URL": "redis://elsewhere:6379/1"})
    assert env_of(r)["REDIS_URL"] == "redis://elsewhere:6379/1"


@pytest.mark.parametrize("cfg,msg", [
    ("{maxmemory: lots}", "maxmemory must look like"),
    ("{maxmemory_policy: lru}", "maxmemory_policy must be one of"),
    ("{persistence: both}", "persistence"),
    ("{password: short}", "16-128 characters"),
    ("{port: 80}", "config.port must be 1024-65535"),
    ("{port: '6380'}", "expected an integer, got string '6380'"),
    ("{maxmem: 1gb}", "did you mean 'maxmemory'?"),
])
def test_bad_config(cfg, msg):
    with pytest.raises(ValidationError) as e:
        render_text(tpl("{name: redis, config: " + cfg + "}"))
    assert any(msg in line for line in e.value.lines()), e.value.lines()


def test_unsupported_image_refused_at_validate_time():
    with pytest.raises(ValidationError, match="supports only linode/ubuntu22.04, linode/ubuntu24.04, linode/debian12"):
        render_text(tpl(image="linode/ubuntu20.04"))


def test_debian12_uses_debians_redis_server():
    r = render_text(tpl(image="linode/debian12"))
    assert "redis-server" in r.doc["packages"]
    assert "requirepass" in files(r)["/etc/redis/redis.conf"]["content"]
    assert env_of(r)["REDIS_URL"].startswith("redis://default:")


def test_uninstalled_plugin_message(monkeypatch):
    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "lcai-redis")
    with pytest.raises(ValidationError, match=r"capability 'redis' is not installed \(pip install lcai-redis\)"):
        render_text(tpl(), host=Host())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPO = Path(__file__).resolve().parents[2]


def _unavailable(msg):
    tools.skip_or_fail(msg)


def redis_of(version: str) -> dict:
    """The server, its redis-cli, its distribution's default redis.conf and the environment to run them:
    Redis 7.0 is this Debian 12's redis-server package; Redis 6.0 is Debian 11's (what Ubuntu 22.04 ships),
    fetched once by get-redis6.sh into .cache/redis6."""
    if version == "7":
        server, cli = tools.need("redis-server", "redis-cli", why="Redis 7.0 tests need")
        if not os.path.exists("/etc/redis/redis.conf"):
            _unavailable("redis-server's /etc/redis/redis.conf is missing (apt-get install redis-server)")
        return {"server": server, "cli": cli, "conf": "/etc/redis/redis.conf", "env": dict(os.environ)}
    dest = Path(os.environ.get("LCAI_REDIS6_ROOT", REPO / ".cache" / "redis6"))
    got = subprocess.run(["sh", str(Path(__file__).with_name("get-redis6.sh")), str(dest)], capture_output=True,
                         text=True, timeout=300)
    if got.returncode != 0:
        _unavailable(f"Redis 6.0 from Debian 11 not obtainable: {got.stderr.strip()[-300:]}")
    return {"server": str(dest / "root/usr/bin/redis-server"), "cli": str(dest / "root/usr/bin/redis-cli"),
            "conf": str(dest / "root/etc/redis/redis.conf"),
            "env": {**os.environ, "LD_LIBRARY_PATH": str(dest / "lib")}}


OVERRIDDEN = re.compile(r"(?m)^(?:port|dir|logfile|pidfile|daemonize|supervised)\s.*$")


class RunningRedis:
    """The distribution's redis.conf + the block lcai appends, run by that distribution's redis-server (native
    runtime: no docker0 here); only port, dir, logs and daemonizing are overridden for the test. The
    distribution's own lines for those are commented out, not just overridden: Redis 6.0 opens the log file and
    enters ``dir`` as it reads each line, and /var/log/redis, /var/lib/redis exist only where the package is
    installed."""

    def __init__(self, redis: dict, appended: str, tmp_path: Path):
        self.redis, self.tmp, self.port = redis, tmp_path, _free_port()
        tmp_path.mkdir()
        conf = OVERRIDDEN.sub(r"# overridden below: \g<0>", open(redis["conf"]).read()) + appended
        conf = conf.replace("port 6379", f"port {self.port}") + (
            f"\nport {self.port}\ndaemonize no\nsupervised no\npidfile {tmp_path}/r.pid\nlogfile {tmp_path}/r.log\n"
            f"dir {tmp_path}\n")
        (tmp_path / "redis.conf").write_text(conf)
        self.proc = None

    def start(self, password: str) -> "RunningRedis":
        self.proc = subprocess.Popen([self.redis["server"], str(self.tmp / "redis.conf")], env=self.redis["env"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("ping", password=password) != "PONG":
            assert self.proc.poll() is None and time.monotonic() < deadline, (self.tmp / "r.log").read_text()
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """As systemd stops redis-server: SIGTERM (Redis saves on shutdown when save points are set)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cli(self, *args, password=None, url=None):
        cmd = [self.redis["cli"], "--no-auth-warning"]
        cmd += ["-u", url] if url else ["-p", str(self.port)] + (["-a", password] if password else [])
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10,
                              env=self.redis["env"]).stdout.strip()


@pytest.fixture
def running(tmp_path):
    started = []

    def make(version, appended):
        r = RunningRedis(redis_of(version), appended, tmp_path / f"r{len(started)}")
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


def test_generated_config_runs_in_a_real_redis_server(running):
    """Later directives win, auth is enforced, eviction and persistence are as configured."""
    r = render_text(tpl("{name: redis, config: {maxmemory: 64mb, maxmemory_policy: allkeys-lfu, persistence: aof}}",
                        runtime="native"))
    password = urllib.parse.urlparse(env_of(r)["REDIS_URL"]).password
    srv = running("7", files(r)["/etc/redis/redis.conf"]["content"]).start(password)
    assert "NOAUTH" in srv.cli("ping")
    assert srv.cli("config", "get", "maxmemory-policy", password=password).endswith("allkeys-lfu")
    assert srv.cli("config", "get", "maxmemory", password=password).endswith(str(64 * 1024 * 1024))
    assert srv.cli("config", "get", "appendonly", password=password).endswith("yes")
    assert srv.cli("config", "get", "bind", password=password).endswith("127.0.0.1")


def test_save_points_one_per_line():
    conf = files(render_text(tpl()))["/etc/redis/redis.conf"]["content"]
    saves = [line for line in conf.splitlines() if line.startswith("save ")]
    assert saves == ['save ""', "save 3600 1", "save 300 100", "save 60 10000"]


@pytest.mark.parametrize("version", ["6", "7"])
@pytest.mark.parametrize("persistence", ["rdb", "aof"])
def test_data_survives_a_restart(running, version, persistence):
    """Ubuntu 22.04 runs Redis 6.0, Ubuntu 24.04 and Debian 12 Redis 7.0: with either, a key written before a
    restart (systemd's SIGTERM) is there after it, through the REDIS_URL the app gets."""
    r = render_text(tpl("{name: redis, config: {persistence: %s}}" % persistence, runtime="native"))
    url = env_of(r)["REDIS_URL"]
    password = urllib.parse.urlparse(url).password
    srv = running(version, files(r)["/etc/redis/redis.conf"]["content"]).start(password)
    if persistence == "rdb":
        assert srv.cli("config", "get", "save", password=password).splitlines()[-1] == "3600 1 300 100 60 10000"
    url = url.replace(":6379/", f":{srv.port}/")
    assert srv.cli("set", "lcai-key", "kept", url=url) == "OK"
    srv.stop()
    srv.start(password)
    assert srv.cli("get", "lcai-key", url=url) == "kept", (srv.tmp / "r.log").read_text()[-2000:]


@pytest.mark.parametrize("version", ["6", "7"])
def test_redis_url_works_with_the_distributions_redis_cli(running, version):
    """`redis-cli -u REDIS_URL` (Redis 7.0's redis-cli answers WRONGPASS to an empty user name) — with the
    redis-cli of the same distribution as the server."""
    r = render_text(tpl(runtime="native"))
    url = env_of(r)["REDIS_URL"]
    assert url.startswith("redis://default:")
    password = urllib.parse.urlparse(url).password
    srv = running(version, files(r)["/etc/redis/redis.conf"]["content"]).start(password)
    url = url.replace(":6379/", f":{srv.port}/")
    assert srv.cli("ping", url=url) == "PONG"
    assert srv.cli("acl", "whoami", url=url) == "default"
    assert "NOAUTH" in srv.cli("ping", url=url.replace(password, "not-the-password"))  # and auth is enforced


def test_static_matrix_passes_the_validators():
    """Every image (Ubuntu 22.04, 24.04, Debian 12) × runtime × persistence: cloud-init's schema, shellcheck and
    systemd-analyze."""
    require_validators()
    cases = [(img, rt, p) for img in ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
             for rt in ("docker", "native") for p in ("rdb", "aof")]
    texts = [render_text(tpl("{name: redis, config: {persistence: %s}}" % p, runtime=rt, image=img)).text
             for img, rt, p in cases]
    findings = validate_many(texts)
    assert not {" ".join(c): f for c, f in zip(cases, findings) if f}
