"""Redis from the distribution's redis-server package (Ubuntu 22.04: 6.0, Ubuntu 24.04 and Debian 12: 7.0).

Networking: the app container stays on Docker's bridge (so port publishing keeps working) and reaches Redis
at ``host.docker.internal`` (``--add-host host.docker.internal:host-gateway``, i.e. docker0's 172.17.0.1).
Redis binds 127.0.0.1 and 172.17.0.1 only: the docker0 address is not routable from outside the instance,
and the deployment's firewall never opens 6379. A password is always set (generated per deployment unless
configured) and reaches the app only as ``REDIS_URL`` in its 0600 env file, with the user name ``default``
(the ``redis-cli -u`` of Redis 7.0 answers WRONGPASS to an empty user name; ``default`` works with every client
and with Redis 6 and 7).
"""

from __future__ import annotations

import re
from typing import Literal, Optional
from urllib.parse import quote

from attrs import define

from lcai_core.api import Capability, DeployContext, Fragments, WriteFile, data_on_volume, volume_problems

DOCKER0 = "172.17.0.1"
# lcai-core's k3s runtime: the node's address on the pod network (cni0; k3s's cluster CIDR 10.42.0.0/16 as lcai
# pins it, the single node's first /24). The runtime lets services bind it before k3s creates cni0.
K3S_NODE = "10.42.0.1"
POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
            "volatile-random", "volatile-ttl")
PASSWORD_RE = re.compile(r"^[A-Za-z0-9._~+-]{16,128}$")


@define(frozen=True)
class RedisConfig:
    version: Optional[str] = None  # apt version pin of redis-server; None = the image's default (6.0 / 7.0)
    port: int = 6379
    maxmemory: str = "256mb"
    maxmemory_policy: str = "allkeys-lru"
    persistence: Literal["rdb", "aof", "none"] = "rdb"
    password: Optional[str] = None
    # a volume of the machine (deploy.linode.volumes[].name) that holds the data directory (/var/lib/redis)
    volume: Optional[str] = None


class Redis(Capability):
    name = "redis"
    keeps_data = True  # its data lives on the machine: one per replica would diverge
    summary = "Redis server with a generated password, reachable by the app container only (REDIS_URL)"
    config_class = RedisConfig
    provides_env = ("REDIS_URL",)
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    order = 40

    def ports(self, config) -> dict:
        return {"port": config.port}

    def check(self, config: RedisConfig, template) -> list:
        out = []
        if config.version is not None and not re.match(r"^[0-9][A-Za-z0-9.+:~-]*$", config.version):
            out.append(f"config.version: not an apt version: {config.version!r}")
        if not 1024 <= config.port <= 65535:
            out.append("config.port must be 1024-65535")
        if not re.match(r"^[1-9][0-9]*(kb|mb|gb)$", config.maxmemory):
            out.append(f"config.maxmemory must look like 256mb or 2gb, got {config.maxmemory!r}")
        if config.maxmemory_policy not in POLICIES:
            out.append(f"config.maxmemory_policy must be one of {', '.join(POLICIES)}")
        if config.password is not None and not PASSWORD_RE.match(config.password):
            out.append("config.password: 16-128 characters of letters, digits and ._~+- (or omit it to generate one)")
        out += volume_problems(config.volume, template)
        return out

    def fragments(self, config: RedisConfig, ctx: DeployContext) -> Fragments:
        password = config.password or ctx.secret("redis-password")
        docker = ctx.runtime == "docker"
        k3s = ctx.runtime == "k3s"
        binds = f"127.0.0.1 {DOCKER0}" if docker else (f"127.0.0.1 {K3S_NODE}" if k3s else "127.0.0.1")
        if config.persistence == "none":
            persist = 'save ""\nappendonly no\n'
        elif config.persistence == "aof":
            persist = 'save ""\nappendonly yes\nappendfsync everysec\n'
        else:
            # one pair per line: Redis 6.0 silently ignores `save 3600 1 300 100 60 10000` (and so never saves)
            persist = 'save ""\nsave 3600 1\nsave 300 100\nsave 60 10000\nappendonly no\n'
        conf = (f"\n# --- lcai ({ctx.deployment_id}): later directives override the defaults above ---\n"
                f"bind {binds}\nprotected-mode yes\nport {config.port}\nrequirepass {password}\n"
                f"maxmemory {config.maxmemory}\nmaxmemory-policy {config.maxmemory_policy}\n{persist}")
        host = "host.docker.internal" if docker else (K3S_NODE if k3s else "127.0.0.1")
        pkg = "redis-server" if config.version is None else f"redis-server={config.version}"
        dropin = ("[Unit]\n# bind 172.17.0.1 needs docker0\nAfter=docker.service\nWants=docker.service\n"
                  if docker else "")
        files = [WriteFile("/etc/redis/redis.conf", conf, owner="redis:redis", permissions="0640", append=True,
                           defer=True)]
        if dropin:
            files.append(WriteFile("/etc/systemd/system/redis-server.service.d/lcai.conf", dropin))
        vol = ctx.volume(config.volume) if config.volume else None
        if config.volume and vol is None:
            raise ValueError(f"config.volume: no volume named {config.volume!r} in deploy.linode.volumes")
        on_volume = (data_on_volume(vol, "/var/lib/redis", "redis:redis", ("redis-server.service",),
                                    ("redis-server.service",), "redis") if vol else Fragments())
        return Fragments(
            packages=(pkg,),
            write_files=(*files, *on_volume.write_files),
            runcmd=(*on_volume.runcmd, ("systemctl", "enable", "redis-server.service"),
                    ("systemctl", "restart", "redis-server.service")),
            container_env={"REDIS_URL": f"redis://default:{quote(password, safe='')}@{host}:{config.port}/0"},
            docker_args=("--add-host", "host.docker.internal:host-gateway") if docker else (),
            app_requires=("redis-server.service",),
            boot_plan=(f"install Redis ({'image default' if config.version is None else config.version}), "
                       f"password-protected, bound to {binds.replace(' ', ' + ')}, {config.persistence} persistence, "
                       f"maxmemory {config.maxmemory}; the app gets REDIS_URL", *on_volume.boot_plan),
        )
