"""Capability ``buildwatch``: installs the agent from the deployment's own user data (plain text in write_files,
so the user data's own gzip compresses it once — never downloaded from a URL at boot), its config, a hardened
systemd unit and logrotate."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from importlib import resources

from attrs import define

from lcai_core.api import Capability, DeployContext, Fragments, Unit, WriteFile

AGENT_PATH = "/usr/local/bin/build-watcher"
CONFIG_PATH = "/etc/build-watcher/config.json"
TOKEN_PATH = "/etc/build-watcher/token"
LOG_DIR = "/var/log/build-watcher"
UNIT = "build-watcher.service"


@define(frozen=True)
class BuildWatchConfig:
    port: int = 9090
    log_retention_days: int = 7
    enable_metrics: bool = True
    bind: str = "127.0.0.1"  # anything else requires the per-deployment bearer token
    slow_start_seconds: int = 180
    crash_loop_deaths: int = 5


def shipped_agent_source() -> str:
    """The agent as shipped: its source with docstrings and comments removed, indented one space per level and
    without blank lines (a third smaller; Python only needs consistent indentation), shebang kept."""
    import ast
    import re

    src = resources.files("lcai_buildwatch").joinpath("agent.py").read_text(encoding="utf-8")
    tree = ast.parse(src)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    # ast.unparse writes every string on one line (escapes, no multi-line literals): leading spaces are indentation
    lines = [re.sub(r"^(    )+", lambda m: " " * (len(m.group(0)) // 4), line)
             for line in ast.unparse(tree).splitlines() if line.strip()]
    return "#!/usr/bin/env python3\n" + "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def agent_payload() -> str:
    """The shipped agent as write_files content: plain text. Linode gzips nothing itself; lcai gzips the whole
    user data once, and an agent already gzipped and base64-encoded inside it would be compressed twice (the
    base64 costs a third more and compresses worse)."""
    return shipped_agent_source()


class BuildWatch(Capability):
    name = "buildwatch"
    summary = "BuildWatch agent: OOM kills, crash loops, non-zero exits, slow starts, failing health, GPU checks"
    config_class = BuildWatchConfig
    # python3 >= 3.10 on the image: 3.10 on Ubuntu 22.04, 3.12 on 24.04, 3.11 on Debian 12
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    order = 60

    def check(self, config: BuildWatchConfig, template) -> list:
        out = []
        if template.capabilities.runtime != "docker":
            out.append("buildwatch watches containers: it needs capabilities.runtime: docker")
        if not 1024 <= config.port <= 65535:
            out.append("config.port must be 1024-65535")
        c = template.container
        if config.port in (c.internal_port, c.external_port):
            out.append(f"config.port {config.port} clashes with the app's port")
        if not 1 <= config.log_retention_days <= 365:
            out.append("config.log_retention_days must be 1-365")
        try:
            ipaddress.ip_address(config.bind)
        except ValueError:
            out.append(f"config.bind must be an IP address, got {config.bind!r}")
        if config.slow_start_seconds < 1 or config.crash_loop_deaths < 2:
            out.append("config.slow_start_seconds must be >= 1 and config.crash_loop_deaths >= 2")
        return out

    def fragments(self, config: BuildWatchConfig, ctx: DeployContext) -> Fragments:
        loopback = ipaddress.ip_address(config.bind).is_loopback
        cfg = {"deployment_id": ctx.deployment_id, "app_name": ctx.app_name, "container": "app", "bind": config.bind,
               "port": config.port, "enable_metrics": config.enable_metrics, "log_dir": LOG_DIR,
               "state_dir": "/var/lib/lcai", "token_file": TOKEN_PATH, "slow_start_s": config.slow_start_seconds,
               "crash_loop_deaths": config.crash_loop_deaths}
        files = [
            WriteFile(AGENT_PATH, agent_payload(), permissions="0755"),
            WriteFile(CONFIG_PATH, json.dumps(cfg, separators=(",", ":")) + "\n"),
            WriteFile("/etc/logrotate.d/build-watcher", f"""{LOG_DIR}/*.jsonl {{
    daily
    rotate {config.log_retention_days}
    maxage {config.log_retention_days}
    missingok
    notifempty
    compress
    delaycompress
    copytruncate
}}
"""),
        ]
        if not loopback:
            files.append(WriteFile(TOKEN_PATH, ctx.secret("buildwatch-token") + "\n", permissions="0600"))
        unit = Unit(UNIT, f"""[Unit]
Description=BuildWatch container monitor for {ctx.app_name} ({ctx.deployment_id})
After=docker.service network-online.target
Wants=docker.service network-online.target

[Service]
Type=simple
ExecStart=/usr/bin/python3 {AGENT_PATH} --config {CONFIG_PATH} run
Restart=always
RestartSec=2
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths={LOG_DIR}
LogsDirectory=build-watcher

[Install]
WantedBy=multi-user.target
""")
        where = f"{config.bind}:{config.port}" + ("" if loopback else " (bearer token required)")
        return Fragments(
            packages=("python3", "logrotate"), write_files=tuple(files), units=(unit,),
            boot_plan=(f"install BuildWatch from the user data (no download), API on {where}, "
                       f"logs in {LOG_DIR} kept {config.log_retention_days} days",),
        )
