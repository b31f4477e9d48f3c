"""lcai-postgres: validation, versions and sources, and the generated SQL run twice on a real PostgreSQL."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import pytest

from lcai_core.errors import ValidationError
from lcai_core.testing import app_env as env_of
from lcai_core.testing import render_text, require_plugins
from lcai_core.testing import written as files

TPL = """\
name: pg-app
capabilities:
  runtime: docker
  features:
    - {feature}
deploy:
  linode:
    image: {image}
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


@pytest.fixture(autouse=True)
def installed():
    require_plugins("postgresql")


def render(feature="postgresql", image="linode/ubuntu24.04", **kw):
    return render_text(TPL.format(feature=feature, image=image), **kw)



@pytest.mark.parametrize("image,version", [("linode/ubuntu22.04", "14"), ("linode/ubuntu24.04", "16")])
def test_image_default_version_from_ubuntu(image, version):
    r = render(image=image)
    assert f"postgresql-{version}" in r.doc["packages"] and "apt" not in r.doc
    assert f"/etc/postgresql/{version}/main/conf.d/lcai.conf" in files(r)


@pytest.mark.parametrize("alias,version", [("postgresql-15", "15"), ("postgresql-14", "14")])
def test_seed_aliases_pick_the_version_and_other_versions_use_pgdg(alias, version):
    r = render(alias, image="linode/ubuntu24.04")
    assert f"postgresql-{version}" in r.doc["packages"]
    src = r.doc["apt"]["sources"]["pgdg"]
    assert "$RELEASE-pgdg" in src["source"] and "signed-by=$KEY_FILE" in src["source"]
    assert src["keyid"] == "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8"


def test_pgvector_from_ubuntu_on_noble_from_pgdg_on_jammy():
    noble = render("{name: postgresql, config: {extensions: [vector]}}")
    assert "postgresql-16-pgvector" in noble.doc["packages"] and "apt" not in noble.doc
    jammy = render("{name: postgresql, config: {extensions: [vector]}}", image="linode/ubuntu22.04")
    assert "postgresql-14-pgvector" in jammy.doc["packages"] and "pgdg" in jammy.doc["apt"]["sources"]


def test_database_url_and_private_files():
    r = render("{name: postgresql, config: {database: vectors, user: embedder}}")
    url = urllib.parse.urlparse(env_of(r)["DATABASE_URL"])
    assert (url.username, url.hostname, url.port, url.path) == ("embedder", "host.docker.internal", 5432, "/vectors")
    f = files(r)
    init = f["/var/lib/postgresql/lcai-init.sql"]
    assert init["permissions"] == "0600" and init["owner"] == "postgres:postgres" and init["defer"] is True
    assert url.password in init["content"]
    for path, w in f.items():
        if path != "/var/lib/postgresql/lcai-init.sql" and path != "/etc/lcai/app.env":
            assert url.password not in w["content"], path
    assert url.password not in str(r.doc["runcmd"])
    hba = f["/etc/postgresql/16/main/pg_hba.conf"]
    assert hba["append"] is True and "host vectors embedder 172.17.0.0/16 scram-sha-256" in hba["content"]
    assert "listen_addresses = 'localhost,172.17.0.1'" in f["/etc/postgresql/16/main/conf.d/lcai.conf"]["content"]
    app = f["/etc/systemd/system/lcai-app.service"]["content"]
    assert "postgresql.service lcai-postgres-init.service" in app and "5432" not in app


def test_alias_and_name_together_is_an_error():
    with pytest.raises(ValidationError, match="are the same capability"):
        render_text(TPL.format(feature="postgresql\n    - postgresql-14", image="linode/ubuntu24.04"))


@pytest.mark.parametrize("cfg,msg", [
    ("{version: '12'}", "config.version must be one of"),
    ("{version: 16}", "expected a string, got integer 16"),
    ("{database: 'my-db'}", "config.database"),
    ("{user: postgres}", "not the 'postgres' superuser"),
    ("{extensions: [timescaledb]}", "unknown extension 'timescaledb'"),
    ("{extensions: vector}", "expected a list, got string 'vector'"),
    ("{password: 'has spaces in it!'}", "16-128 characters"),
])
def test_bad_config(cfg, msg):
    with pytest.raises(ValidationError) as e:
        render("{name: postgresql, config: " + cfg + "}")
    assert any(msg in line for line in e.value.lines()), e.value.lines()


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def test_init_sql_is_idempotent_on_a_real_server():
    """Run the generated SQL twice against a throwaway PostgreSQL cluster; then log in as the app role with
    its password over TCP (scram-sha-256) and see the extension."""
    if not (_bin("initdb") and os.geteuid() == 0 and shutil.which("runuser")):
        if os.environ.get("CI"):
            pytest.fail("needs root and PostgreSQL server binaries (apt-get install postgresql)")
        pytest.skip("needs root and PostgreSQL server binaries")
    r = render("{name: postgresql, config: {database: jobs, user: worker, extensions: [pg_trgm, citext]}}")
    sql = files(r)["/var/lib/postgresql/lcai-init.sql"]["content"]
    password = urllib.parse.urlparse(env_of(r)["DATABASE_URL"]).password
    d = tempfile.mkdtemp(prefix="lcai-pg-")
    shutil.chown(d, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    as_pg = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*as_pg, _bin("initdb"), "-D", f"{d}/data", "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256"], check=True, capture_output=True)
        subprocess.run([*as_pg, _bin("pg_ctl"), "-D", f"{d}/data", "-l", f"{d}/log", "-w", "-o",
                        f"-p {port} -k {d} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
        path = f"{d}/init.sql"
        with open(path, "w") as fh:
            fh.write(sql)
        shutil.chown(path, "postgres", "postgres")
        for _ in range(2):
            run = subprocess.run([*as_pg, "psql", "-h", d, "-p", port, "-v", "ON_ERROR_STOP=1", "-f", path],
                                 capture_output=True, text=True)
            assert run.returncode == 0, run.stderr
        login = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "worker", "-d", "jobs", "-tAc",
                                "select current_user || ' ' || string_agg(extname, ',' order by extname) "
                                "from pg_extension where extname <> 'plpgsql'"],
                               capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password})
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == "worker citext,pg_trgm"
        bad = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "worker", "-d", "jobs", "-c", "select 1"],
                             capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "wrong"})
        assert bad.returncode != 0 and "password authentication failed" in bad.stderr
    finally:
        subprocess.run([*as_pg, _bin("pg_ctl"), "-D", f"{d}/data", "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
