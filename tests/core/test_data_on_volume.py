"""A capability's data directory on a volume (``config.volume``; ``lcai_core.capabilities.data_on_volume``):
PostgreSQL's /var/lib/postgresql and Redis's /var/lib/redis bind-mounted from a directory on the volume, the
services requiring that mount, and the boot step that moves the package's first data there once and afterwards
keeps what the volume holds. The step runs here with stand-ins for systemctl and mountpoint; the boot tests run
it in a real VM (tests/boot/test_docker_boot.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from lcai_core.capabilities import VOLUME_DATA_SCRIPT
from lcai_testing import render_text, require_validators, validate_user_data

TEMPLATE = """name: pgvol
version: 0.1.0
capabilities:
  runtime: docker
  features:
    - {name: postgresql, config: {volume: data}}
    - {name: redis, config: {volume: data}}
deploy:
  linode:
    image: linode/debian12
    volumes:
      - {name: data, mount: /var/lib/lcai-data, size_gb: 20}
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


def _files(doc):
    return {w["path"]: w for w in doc["write_files"]}


def _steps(doc):
    return [[str(x) for x in s][1:] for s in doc["runcmd"][1:]]


def test_postgres_and_redis_data_on_the_volume_are_bind_mounts_their_services_require():
    doc = yaml.safe_load(render_text(TEMPLATE).text)
    files = _files(doc)
    pg = files["/etc/systemd/system/var-lib-postgresql.mount"]
    assert pg.get("defer") is True  # after the packages: their own first start runs before the move
    assert "What=/var/lib/lcai-data/postgresql" in pg["content"] and "Where=/var/lib/postgresql" in pg["content"]
    assert "Options=bind" in pg["content"] and "RequiresMountsFor=/var/lib/lcai-data" in pg["content"]
    assert "RequiresMountsFor=/var/lib/postgresql" in \
        files["/etc/systemd/system/postgresql@.service.d/lcai-volume.conf"]["content"]
    assert "RequiresMountsFor=/var/lib/redis" in \
        files["/etc/systemd/system/redis-server.service.d/lcai-volume.conf"]["content"]
    assert "What=/var/lib/lcai-data/redis" in files["/etc/systemd/system/var-lib-redis.mount"]["content"]
    # the role's SQL is not under the bind mount (the volume's older copy would hide the new one)
    assert "/etc/postgresql/lcai-init.sql" in files and "/var/lib/postgresql/lcai-init.sql" not in files
    assert "-f /etc/postgresql/lcai-init.sql" in \
        files["/etc/systemd/system/lcai-postgres-init.service"]["content"]
    steps = _steps(doc)
    at = {tuple(s[:1] + s[4:5]): i for i, s in enumerate(steps) if s[0] == "/usr/local/lib/lcai/volume-data"}
    prep = next(i for i, s in enumerate(steps) if s[0].endswith("volume-prepare"))
    pg_move, redis_move = at[("/usr/local/lib/lcai/volume-data", "/var/lib/postgresql")], \
        at[("/usr/local/lib/lcai/volume-data", "/var/lib/redis")]
    assert prep < pg_move < steps.index(["systemctl", "restart", "postgresql.service"])
    assert prep < redis_move < steps.index(["systemctl", "restart", "redis-server.service"])
    assert steps[pg_move][1:] == ["/var/lib/lcai-data", "var-lib-lcai\\x2ddata.mount", "/var/lib/lcai-data/postgresql",
                                  "/var/lib/postgresql", "var-lib-postgresql.mount", "postgres:postgres",
                                  "15/main/PG_VERSION", "postgresql.service"]


def test_without_config_volume_the_rendering_is_unchanged():
    plain = TEMPLATE.replace("{name: postgresql, config: {volume: data}}", "postgresql") \
        .replace("{name: redis, config: {volume: data}}", "redis")
    r = render_text(plain)
    assert "volume-data" not in r.text and "lcai-volume.conf" not in r.text
    assert "/var/lib/postgresql/lcai-init.sql" in r.text


def test_passes_cloud_init_schema_shellcheck_and_systemd_analyze():
    require_validators()
    assert validate_user_data(render_text(TEMPLATE).text) == []


@pytest.mark.parametrize("feature,where", [("postgresql", "template.yml:6: capabilities.features[0]"),
                                           ("redis", "template.yml:7: capabilities.features[1]")])
def test_a_volume_the_template_lacks_is_refused_naming_the_line(feature, where):
    from lcai_core.errors import ValidationError

    text = TEMPLATE.replace(f"{{name: {feature}, config: {{volume: data}}}}",
                            f"{{name: {feature}, config: {{volume: cache}}}}")
    with pytest.raises(ValidationError) as e:
        render_text(text)
    assert e.value.lines() == [f"{where}: config.volume: no volume named 'cache' in deploy.linode.volumes "
                               "(it has data)"]


def test_a_volume_without_volumes_in_the_template_says_to_add_one():
    from lcai_core.errors import ValidationError

    text = TEMPLATE.replace("    volumes:\n      - {name: data, mount: /var/lib/lcai-data, size_gb: 20}\n", "")
    with pytest.raises(ValidationError) as e:
        render_text(text)
    assert any("no volume named 'data' in deploy.linode.volumes (the template has none: add one there)" in line
               for line in e.value.lines()), e.value.lines()


# ---------------------------------------------------------------- the boot step, with stand-ins


def _run(tmp_path, mounted=True, must="-"):
    """The step with stand-ins: ``systemctl`` logs its arguments (and a bind mount is a copy's symlink here),
    ``mountpoint`` answers ``mounted``, ``stat``/``chown`` are the real ones on files this user owns."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    for name, body in (("systemctl", f'echo systemctl "$@" >> {log}'),
                       ("mountpoint", "exit 0" if mounted else "exit 32")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "volume-data"
    script.write_text(VOLUME_DATA_SCRIPT)
    mnt, service_dir = tmp_path / "mnt", tmp_path / "service"
    mnt.mkdir(exist_ok=True)
    owner = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip() + ":" + \
        subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(["sh", str(script), str(mnt), "mnt.mount", str(mnt / "pg"), str(service_dir), "service.mount",
                        owner, must, "postgresql.service"], capture_output=True, text=True, env=env)
    return r, (log.read_text() if log.exists() else ""), mnt / "pg", service_dir


def test_the_first_use_moves_the_packages_data_to_the_volume(tmp_path):
    (tmp_path / "service" / "15" / "main").mkdir(parents=True)
    (tmp_path / "service" / "15" / "main" / "PG_VERSION").write_text("15\n")
    r, calls, src, _ = _run(tmp_path, must="15/main/PG_VERSION")
    assert r.returncode == 0, r.stderr
    assert (src / "15" / "main" / "PG_VERSION").read_text() == "15\n" and "moves to the volume" in r.stdout
    assert calls.splitlines() == ["systemctl start mnt.mount", "systemctl stop postgresql.service",
                                  "systemctl start service.mount"]


def test_data_the_volume_holds_is_kept_and_the_fresh_disks_is_not_copied_over_it(tmp_path):
    (tmp_path / "service" / "15" / "main").mkdir(parents=True)
    (tmp_path / "service" / "15" / "main" / "PG_VERSION").write_text("15\n")
    (tmp_path / "service" / "fresh").write_text("the new disk's empty cluster")
    old = tmp_path / "mnt" / "pg" / "15" / "main"
    old.mkdir(parents=True)
    (old / "PG_VERSION").write_text("15\n")
    (old / "rows").write_text("the results table")
    r, calls, src, _ = _run(tmp_path, must="15/main/PG_VERSION")
    assert r.returncode == 0, r.stderr
    assert (old / "rows").read_text() == "the results table" and not (src / "fresh").exists()
    assert "is kept" in r.stdout and calls.splitlines()[-1] == "systemctl start service.mount"


def test_kept_data_of_another_version_is_refused_and_nothing_starts(tmp_path):
    (tmp_path / "service").mkdir()
    (tmp_path / "mnt" / "pg" / "16" / "main").mkdir(parents=True)
    r, calls, _src, _ = _run(tmp_path, must="15/main/PG_VERSION")
    assert r.returncode == 1 and "holds data without 15/main/PG_VERSION" in r.stderr
    assert "start service.mount" not in calls


def test_an_unmounted_volume_moves_nothing(tmp_path):
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "data").write_text("x")
    r, calls, src, _ = _run(tmp_path, mounted=False)
    assert r.returncode == 1 and "is not mounted" in r.stderr and not src.exists()
    assert "stop" not in calls
