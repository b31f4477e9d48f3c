"""PostgreSQL: the image's version from the distribution (14 on Ubuntu 22.04, 16 on Ubuntu 24.04, 15 on
Debian 12), other versions (and extensions the distribution lacks) from the PGDG apt source, whose key ships
inside this plugin (keys/pgdg.asc, written by write_files and read by apt through ``signed-by``: no key server).

The role and database are created idempotently by ``lcai-postgres-init.service`` from a deferred,
postgres-owned 0600 SQL file; the app gets ``DATABASE_URL`` in its 0600 env file. PostgreSQL listens on
localhost and docker0 (172.17.0.1) only, pg_hba admits the app's role from Docker's bridge with
scram-sha-256, and the firewall never opens the port.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Optional
from urllib.parse import quote

from attrs import define

from lcai_core.api import (
    AptSource,
    Capability,
    DeployContext,
    Fragments,
    Unit,
    WriteFile,
    data_on_volume,
    volume_problems,
)

DOCKER0 = "172.17.0.1"
# lcai-core's k3s runtime: the node's address on the pod network (cni0; k3s's cluster CIDR 10.42.0.0/16 as lcai
# pins it, the single node's first /24). The runtime lets services bind it before k3s creates cni0.
K3S_NODE = "10.42.0.1"
K3S_PODS = "10.42.0.0/16"
# the distribution's own PostgreSQL by image
DISTRO_DEFAULT = {"linode/ubuntu22.04": "14", "linode/ubuntu24.04": "16", "linode/debian12": "15"}
VERSIONS = ("13", "14", "15", "16", "17")
PGDG_KEY_FINGERPRINT = "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8"  # apt.postgresql.org signing key
PGDG_KEY_PATH = "/etc/apt/keyrings/lcai-pgdg.asc"
# extension → the apt package that provides it (None: shipped with the server package)
EXTENSIONS = {"vector": "postgresql-{v}-pgvector", "postgis": "postgresql-{v}-postgis-3", "pg_trgm": None,
              "hstore": None, "citext": None, "pgcrypto": None, "uuid-ossp": None, "btree_gin": None,
              "btree_gist": None, "unaccent": None}
# extensions whose package the distribution itself ships, by image
IN_DISTRO = {"linode/ubuntu24.04": {"vector", "postgis"}, "linode/ubuntu22.04": {"postgis"},
             "linode/debian12": {"postgis"}}


def pgdg_key() -> str:
    """PGDG's armored key as Debian's postgresql-common ships it (keys/README.md)."""
    return resources.files("lcai_postgres").joinpath("keys/pgdg.asc").read_text(encoding="ascii")
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PASSWORD_RE = re.compile(r"^[A-Za-z0-9._~+-]{16,128}$")


@define(frozen=True)
class PostgresConfig:
    version: Optional[str] = None  # None = the image's default (14 on 22.04, 16 on 24.04, 15 on Debian 12)
    database: str = "app"
    user: str = "app"
    password: Optional[str] = None
    extensions: tuple[str, ...] = ()
    port: int = 5432
    # a volume of the machine (deploy.linode.volumes[].name) that holds the data directory (/var/lib/postgresql)
    volume: Optional[str] = None


class PostgreSQL(Capability):
    name = "postgresql"
    keeps_data = True  # its data lives on the machine: one per replica would diverge
    aliases = {f"postgresql-{v}": {"version": v} for v in ("14", "15", "16", "17")}
    summary = "PostgreSQL with a scram-sha-256 role + database for the app (DATABASE_URL), extensions like pgvector"
    config_class = PostgresConfig
    provides_env = ("DATABASE_URL",)
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    order = 40

    def ports(self, config) -> dict:
        return {"port": config.port}

    def check(self, config: PostgresConfig, template) -> list:
        out = []
        if config.version is not None and config.version not in VERSIONS:
            out.append(f"config.version must be one of {', '.join(VERSIONS)}, got {config.version!r}")
        for key in ("database", "user"):
            if not IDENT_RE.match(getattr(config, key)):
                out.append(f"config.{key}: lowercase letters, digits and _ (max 63), starting with a letter or _")
        if config.user == "postgres":
            out.append("config.user: pick an application role, not the 'postgres' superuser")
        if config.password is not None and not PASSWORD_RE.match(config.password):
            out.append("config.password: 16-128 characters of letters, digits and ._~+- (or omit it to generate one)")
        for ext in config.extensions:
            if ext not in EXTENSIONS:
                out.append(f"config.extensions: unknown extension {ext!r}; supported: {', '.join(sorted(EXTENSIONS))}")
        if not 1024 <= config.port <= 65535:
            out.append("config.port must be 1024-65535")
        out += volume_problems(config.volume, template)
        return out

    def version_for(self, config: PostgresConfig, ctx: DeployContext) -> str:
        return config.version or DISTRO_DEFAULT.get(ctx.image, "16")

    def fragments(self, config: PostgresConfig, ctx: DeployContext) -> Fragments:
        v = self.version_for(config, ctx)
        image = ctx.image if ctx.image in DISTRO_DEFAULT else "linode/ubuntu24.04"
        docker = ctx.runtime == "docker"
        k3s = ctx.runtime == "k3s"
        password = config.password or ctx.secret("postgres-password")
        ext_pkgs = [EXTENSIONS[e].format(v=v) for e in config.extensions if EXTENSIONS[e]]
        need_pgdg = v != DISTRO_DEFAULT[image] or any(
            EXTENSIONS[e] and e not in IN_DISTRO[image] for e in config.extensions)
        sources = ()
        files = []
        if need_pgdg:
            # a plain file apt reads through signed-by (apt reads armored .asc keyrings itself): no key server at
            # boot, no gpg needed on the image; write_files runs before cloud-init's apt stage
            files.append(WriteFile(PGDG_KEY_PATH, pgdg_key()))
            sources = (AptSource("pgdg", f"deb [signed-by={PGDG_KEY_PATH}] https://apt.postgresql.org/pub/repos/apt "
                                         "$RELEASE-pgdg main"),)
        listen = f"localhost,{DOCKER0}" if docker else (f"localhost,{K3S_NODE}" if k3s else "localhost")
        conf_dir = f"/etc/postgresql/{v}/main"
        sql = [
            "-- lcai: idempotent; re-running it is harmless",
            "SET password_encryption = 'scram-sha-256';",
            f"SELECT 'CREATE ROLE {config.user} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{config.user}')\\gexec",
            f"ALTER ROLE {config.user} WITH LOGIN PASSWORD '{password}';",
            f"SELECT 'CREATE DATABASE {config.database} OWNER {config.user}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{config.database}')\\gexec",
        ]
        if config.extensions:
            sql.append(f"\\c {config.database}")
            sql += [f'CREATE EXTENSION IF NOT EXISTS "{e}";' for e in config.extensions]
        vol = ctx.volume(config.volume) if config.volume else None
        if config.volume and vol is None:
            raise ValueError(f"config.volume: no volume named {config.volume!r} in deploy.linode.volumes")
        # on a volume, the SQL must not sit under the bind mount (the volume's older copy would hide it)
        init_sql = "/etc/postgresql/lcai-init.sql" if vol else "/var/lib/postgresql/lcai-init.sql"
        files += [
            WriteFile(f"{conf_dir}/conf.d/lcai.conf",
                      f"# lcai ({ctx.deployment_id})\nlisten_addresses = '{listen}'\nport = {config.port}\n"
                      "password_encryption = scram-sha-256\n", owner="postgres:postgres", defer=True),
            WriteFile(f"{conf_dir}/pg_hba.conf",
                      f"# lcai: the app's role from Docker's bridge and loopback, with scram-sha-256\n"
                      f"host {config.database} {config.user} 127.0.0.1/32 scram-sha-256\n"
                      + (f"host {config.database} {config.user} 172.17.0.0/16 scram-sha-256\n" if docker else "")
                      + (f"host {config.database} {config.user} {K3S_PODS} scram-sha-256\n" if k3s else ""),
                      owner="postgres:postgres", permissions="0640", append=True, defer=True),
            WriteFile(init_sql, "\n".join(sql) + "\n", owner="postgres:postgres", permissions="0600", defer=True),
        ]
        if docker:
            files.append(WriteFile("/etc/systemd/system/postgresql@.service.d/lcai.conf",
                                   "[Unit]\n# listen on 172.17.0.1 needs docker0\nAfter=docker.service\n"
                                   "Wants=docker.service\n"))
        init_unit = Unit("lcai-postgres-init.service", f"""[Unit]
Description=lcai: create the app's PostgreSQL role and database (idempotent)
After=postgresql.service
Requires=postgresql.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/runuser -u postgres -- /usr/bin/psql -v ON_ERROR_STOP=1 -p {config.port} -f {init_sql}

[Install]
WantedBy=multi-user.target
""")
        host = "host.docker.internal" if docker else (K3S_NODE if k3s else "127.0.0.1")
        url = f"postgresql://{config.user}:{quote(password, safe='')}@{host}:{config.port}/{config.database}"
        on_volume = (data_on_volume(vol, "/var/lib/postgresql", "postgres:postgres", ("postgresql.service",),
                                    ("postgresql@.service",), "postgresql", must=f"{v}/main/PG_VERSION")
                     if vol else Fragments())
        return Fragments(
            apt_sources=sources,
            packages=(f"postgresql-{v}", f"postgresql-client-{v}", *ext_pkgs),
            write_files=(*files, *on_volume.write_files),
            units=(init_unit,),
            runcmd=(*on_volume.runcmd, ("systemctl", "restart", "postgresql.service")),
            container_env={"DATABASE_URL": url},
            docker_args=("--add-host", "host.docker.internal:host-gateway") if docker else (),
            app_requires=("postgresql.service", "lcai-postgres-init.service"),
            boot_plan=(f"install PostgreSQL {v}{' from PGDG' if need_pgdg else ''}"
                       f"{' with ' + ', '.join(config.extensions) if config.extensions else ''}; "
                       f"role {config.user} + database {config.database} (scram-sha-256) via lcai-postgres-init; "
                       f"listening on {listen}; the app gets DATABASE_URL", *on_volume.boot_plan),
        )
