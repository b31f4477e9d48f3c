"""lcai-postgres: validation, versions and sources, and the generated SQL run twice on a real PostgreSQL."""

import os
import shutil
from pathlib import Path
import socket
import subprocess
import tempfile
import urllib.parse

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import app_env as env_of
from lcai_testing import tools
from lcai_testing import render_text, require_plugins, require_validators, validate_many
from lcai_testing import written as files

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



@pytest.mark.parametrize("image,version", [("linode/ubuntu22.04", "14"), ("linode/ubuntu24.04", "16"),
                                           ("linode/debian12", "15")])
def test_image_default_version_from_the_distribution(image, version):
    r = render(image=image)
    assert f"postgresql-{version}" in r.doc["packages"] and "apt" not in r.doc
    assert f"/etc/postgresql/{version}/main/conf.d/lcai.conf" in files(r)


@pytest.mark.parametrize("alias,version,image", [("postgresql-15", "15", "linode/ubuntu24.04"),
                                                 ("postgresql-14", "14", "linode/ubuntu24.04"),
                                                 ("postgresql-16", "16", "linode/debian12")])
def test_seed_aliases_pick_the_version_and_other_versions_use_pgdg(alias, version, image):
    from lcai_postgres.capability import pgdg_key

    r = render(alias, image=image)
    assert f"postgresql-{version}" in r.doc["packages"]
    src = r.doc["apt"]["sources"]["pgdg"]
    # no key server at boot: the shipped key is a file written before apt runs, read by apt through signed-by
    assert src == {"source": "deb [signed-by=/etc/apt/keyrings/lcai-pgdg.asc] "
                             "https://apt.postgresql.org/pub/repos/apt $RELEASE-pgdg main"}
    key = files(r)["/etc/apt/keyrings/lcai-pgdg.asc"]
    assert key["content"] == pgdg_key() and not key.get("defer")


def test_no_pgdg_key_written_without_pgdg():
    assert "/etc/apt/keyrings/lcai-pgdg.asc" not in files(render())


def test_shipped_pgdg_key_is_the_pinned_key():
    """Fingerprint pinned in the plugin; and byte for byte the key Debian's postgresql-common ships, when it is
    installed here."""
    import lcai_postgres
    from lcai_postgres.capability import PGDG_KEY_FINGERPRINT

    shipped = Path(lcai_postgres.__file__).parent / "keys" / "pgdg.asc"
    (gpg,) = tools.need("gpg")
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([gpg, "--homedir", home, "--show-keys", "--with-colons", str(shipped)],
                             capture_output=True, text=True, check=True).stdout
    recs = [line.split(":") for line in out.splitlines()]
    assert [r[9] for r in recs if r[0] == "fpr"] == [PGDG_KEY_FINGERPRINT]
    pub = next(r for r in recs if r[0] == "pub")
    assert pub[1] not in ("e", "r", "i") and "s" in pub[11], pub
    debian = Path("/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc")
    if debian.exists():
        assert shipped.read_bytes() == debian.read_bytes()


def test_pgvector_from_ubuntu_on_noble_from_pgdg_on_jammy_and_bookworm():
    noble = render("{name: postgresql, config: {extensions: [vector]}}")
    assert "postgresql-16-pgvector" in noble.doc["packages"] and "apt" not in noble.doc
    jammy = render("{name: postgresql, config: {extensions: [vector]}}", image="linode/ubuntu22.04")
    assert "postgresql-14-pgvector" in jammy.doc["packages"] and "pgdg" in jammy.doc["apt"]["sources"]
    bookworm = render("{name: postgresql, config: {extensions: [vector, postgis]}}", image="linode/debian12")
    assert {"postgresql-15-pgvector", "postgresql-15-postgis-3"} <= set(bookworm.doc["packages"])
    assert "pgdg" in bookworm.doc["apt"]["sources"]  # Debian 12 has no pgvector package
    postgis = render("{name: postgresql, config: {extensions: [postgis]}}", image="linode/debian12")
    assert "postgresql-15-postgis-3" in postgis.doc["packages"] and "apt" not in postgis.doc


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


def test_init_sql_is_idempotent_on_a_real_server():
    """Run the generated SQL twice against a throwaway PostgreSQL cluster; then log in as the app role with
    its password over TCP (scram-sha-256) and see the extension."""
    if os.geteuid() != 0:
        tools.skip_or_fail("needs root (to run PostgreSQL as the postgres user)")
    initdb, pg_ctl, psql, runuser = tools.need("initdb", "pg_ctl", "psql", "runuser",
                                               why="needs PostgreSQL server binaries:")
    r = render("{name: postgresql, config: {database: jobs, user: worker, extensions: [pg_trgm, citext]}}")
    sql = files(r)["/var/lib/postgresql/lcai-init.sql"]["content"]
    password = urllib.parse.urlparse(env_of(r)["DATABASE_URL"]).password
    d = tempfile.mkdtemp(prefix="lcai-pg-")
    shutil.chown(d, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    as_pg = [runuser, "-u", "postgres", "--"]
    try:
        subprocess.run([*as_pg, initdb, "-D", f"{d}/data", "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256"], check=True, capture_output=True)
        subprocess.run([*as_pg, pg_ctl, "-D", f"{d}/data", "-l", f"{d}/log", "-w", "-o",
                        f"-p {port} -k {d} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
        path = f"{d}/init.sql"
        with open(path, "w") as fh:
            fh.write(sql)
        shutil.chown(path, "postgres", "postgres")
        for _ in range(2):
            run = subprocess.run([*as_pg, psql, "-h", d, "-p", port, "-v", "ON_ERROR_STOP=1", "-f", path],
                                 capture_output=True, text=True)
            assert run.returncode == 0, run.stderr
        login = subprocess.run([psql, "-h", "127.0.0.1", "-p", port, "-U", "worker", "-d", "jobs", "-tAc",
                                "select current_user || ' ' || string_agg(extname, ',' order by extname) "
                                "from pg_extension where extname <> 'plpgsql'"],
                               capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password})
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == "worker citext,pg_trgm"
        bad = subprocess.run([psql, "-h", "127.0.0.1", "-p", port, "-U", "worker", "-d", "jobs", "-c", "select 1"],
                             capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "wrong"})
        assert bad.returncode != 0 and "password authentication failed" in bad.stderr
    finally:
        subprocess.run([*as_pg, pg_ctl, "-D", f"{d}/data", "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_static_matrix_passes_the_validators():
    """Every image (Ubuntu 22.04, 24.04, Debian 12) with the distribution's version, a PGDG version and pgvector:
    cloud-init's schema, shellcheck and systemd-analyze."""
    require_validators()
    cases = [(img, feat) for img in ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
             for feat in ("postgresql", "postgresql-17", "{name: postgresql, config: {extensions: [vector]}}")]
    findings = validate_many([render(feat, image=img).text for img, feat in cases])
    assert not {f"{img} {feat}": f for (img, feat), f in zip(cases, findings) if f}
