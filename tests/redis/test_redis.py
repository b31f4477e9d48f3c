"""lcai-redis: validation, rendering, and the generated config run by a real redis-server."""

import os
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

from lcai_core.errors import ValidationError
from lcai_core.plugins import Host
from lcai_core.testing import app_env as env_of
from lcai_core.testing import render_text, require_plugins
from lcai_core.testing import written as files

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
    return TPL.format(feature=feature, runtime=runtime, image=image, container=DOCKER if runtime == "docker" else NATIVE)




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
    assert "After=network-online.target docker.service" in unit and "redis-server.service" in unit
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
    assert env_of(r)["REDIS_URL"] == "redis://:correct-horse-battery-staple@host.docker.internal:6379/0"
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
    with pytest.raises(ValidationError, match="supports only linode/ubuntu22.04, linode/ubuntu24.04"):
        render_text(tpl(image="linode/debian12"))


def test_uninstalled_plugin_message(monkeypatch):
    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "lcai-redis")
    with pytest.raises(ValidationError, match=r"capability 'redis' is not installed \(pip install lcai-redis\)"):
        render_text(tpl(), host=Host())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(port, *args, password=None):
    cmd = ["redis-cli", "-p", str(port), "--no-auth-warning"] + (["-a", password] if password else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()


def test_generated_config_runs_in_a_real_redis_server(tmp_path):
    """Debian's default redis.conf + the appended lcai block, run by redis-server: the later directives win,
    auth is enforced, eviction and persistence are as configured. (native runtime: no docker0 here.)"""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server) or not os.path.exists("/etc/redis/redis.conf"):
        if os.environ.get("CI"):
            pytest.fail("redis-server not installed (apt-get install redis-server)")
        pytest.skip("redis-server not installed")
    r = render_text(tpl("{name: redis, config: {maxmemory: 64mb, maxmemory_policy: allkeys-lfu, persistence: aof}}",
                        runtime="native"))
    port = _free_port()
    conf = open("/etc/redis/redis.conf").read() + files(r)["/etc/redis/redis.conf"]["content"]
    conf = conf.replace("port 6379", f"port {port}") + (
        f"\nport {port}\ndaemonize no\nsupervised no\npidfile {tmp_path}/r.pid\nlogfile {tmp_path}/r.log\n"
        f"dir {tmp_path}\n")
    (tmp_path / "redis.conf").write_text(conf)
    proc = subprocess.Popen([server, str(tmp_path / "redis.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        password = urllib.parse.urlparse(env_of(r)["REDIS_URL"]).password
        deadline = time.monotonic() + 10
        while _redis(port, "ping", password=password) != "PONG":
            assert time.monotonic() < deadline, (tmp_path / "r.log").read_text()
            time.sleep(0.05)
        assert "NOAUTH" in _redis(port, "ping")
        assert _redis(port, "config", "get", "maxmemory-policy", password=password).endswith("allkeys-lfu")
        assert _redis(port, "config", "get", "maxmemory", password=password).endswith(str(64 * 1024 * 1024))
        assert _redis(port, "config", "get", "appendonly", password=password).endswith("yes")
        assert _redis(port, "config", "get", "bind", password=password).endswith("127.0.0.1")
    finally:
        proc.terminate()
        proc.wait(10)
