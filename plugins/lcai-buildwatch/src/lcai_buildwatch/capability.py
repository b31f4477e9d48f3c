"""Capability ``buildwatch``: installs the agent, its config, a hardened systemd unit and logrotate.

The agent comes from one of two places (``config.agent_from``), never from a bare URL:

- ``user-data``: its source travels inside the deployment's user data (plain text in write_files, so the user
  data's own gzip compresses it once): about 6 KiB of the 16 KiB Linode accepts.
- ``package-index``: the user data carries a small fetcher and the agent's sha256; at boot the fetcher takes
  ``lcai-buildwatch==VERSION`` from a package index (PyPI's simple API by default, ``config.index_url`` for a
  mirror) and installs its agent.py only if the hash is the one of the agent.py installed here.
- ``auto`` (the default): ``package-index`` when this lcai-buildwatch was installed from a package index as a
  release (so the index has the same file), else ``user-data`` (a source checkout, an editable or local install).
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from importlib import resources
from typing import Optional
from urllib.parse import urlsplit

from attrs import define

from lcai_core.api import Capability, DeployContext, Fragments, Unit, WriteFile

AGENT_PATH = "/usr/local/bin/build-watcher"
FETCH_PATH = "/usr/local/lib/lcai/buildwatch-fetch"
INDEX_AGENT = "/var/lib/build-watcher/agent.py"
AGENT_FROM = ("auto", "user-data", "package-index")
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
    agent_from: str = "auto"  # auto | user-data | package-index
    index_url: str = "https://pypi.org/simple"


def shipped_agent_source() -> str:
    """The agent as shipped in the user data (see ``shipped_source``)."""
    return shipped_source("agent.py")


def shipped_source(filename: str) -> str:
    """A script of this package as shipped in the user data: its source with docstrings and comments removed,
    indented one space per level and without blank lines (a third smaller; Python only needs consistent
    indentation), shebang kept."""
    import ast
    import re

    src = resources.files("lcai_buildwatch").joinpath(filename).read_text(encoding="utf-8")
    tree = ast.parse(src)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            setattr(node, "body", body[1:] or [ast.Pass()])  # noqa: B010 (mypy: ast.AST has no body)
    # ast.unparse writes every string on one line (escapes, no multi-line literals): leading spaces are indentation
    lines = [re.sub(r"^(    )+", lambda m: " " * (len(m.group(0)) // 4), line)
             for line in ast.unparse(tree).splitlines() if line.strip()]
    text = "\n".join(lines) + "\n"
    tight = compact(text)
    # the same program or none: the compacted source must parse to the very same syntax tree
    if ast.dump(ast.parse(tight)) != ast.dump(ast.parse(text)):  # pragma: no cover (a tokenizer surprise)
        tight = text
    return "#!/usr/bin/env python3\n" + tight


def compact(src: str) -> str:
    """``src`` without the spaces between tokens Python does not need (``a = f(x, y)`` → ``a=f(x,y)``); each
    line keeps its indentation, strings are kept as written, an f-string whole (Python 3.12 splits it into
    tokens). A space stays between two words or numbers, and before a quote."""
    import io
    import tokenize

    lines = src.splitlines(keepends=True)
    out: list[str] = []
    prev, fdepth, fstart, at_start = "", 0, (0, 0), True

    def emit(text: str, col: int, line: str) -> None:
        nonlocal prev, at_start
        if at_start:
            out.append(line[:col])
        elif prev and (prev[-1].isalnum() or prev[-1] == "_") and (text[0].isalnum() or text[0] in "_'\""):
            out.append(" ")
        out.append(text)
        prev, at_start = text, False

    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        name = tokenize.tok_name[tok.type]
        if name == "FSTRING_START":
            if fdepth == 0:
                fstart = tok.start
            fdepth += 1
        elif name == "FSTRING_END":
            fdepth -= 1
            if fdepth == 0:
                (r0, c0), (r1, c1) = fstart, tok.end
                whole = lines[r0 - 1][c0:] + "".join(lines[r0:r1 - 1]) + lines[r1 - 1][:c1] if r1 > r0 \
                    else lines[r0 - 1][c0:c1]
                emit(whole, c0, lines[r0 - 1])
        elif fdepth:
            continue
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            out.append("\n")
            prev, at_start = "", True
        elif tok.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT):
            emit(tok.string, tok.start[1], tok.line)
    return "".join(out)


@lru_cache(maxsize=1)
def fetch_payload() -> str:
    """The fetcher (fetch_agent.py) as shipped in the user data when the agent comes from a package index."""
    return shipped_source("fetch_agent.py")


@lru_cache(maxsize=1)
def agent_payload() -> str:
    """The shipped agent as write_files content: plain text. Linode gzips nothing itself; lcai gzips the whole
    user data once, and an agent already gzipped and base64-encoded inside it would be compressed twice (the
    base64 costs a third more and compresses worse)."""
    return shipped_agent_source()


def agent_sha256() -> str:
    """sha256 of the agent.py installed here: the file a wheel of this version holds (the fetcher checks it)."""
    import hashlib

    return hashlib.sha256(resources.files("lcai_buildwatch").joinpath("agent.py").read_bytes()).hexdigest()


def installed_release() -> Optional[str]:
    """This lcai-buildwatch's version when it was installed from a package index as a release (no
    ``direct_url.json``, which pip writes for editable, local-path and URL installs; no dev or local version
    part), else None."""
    import re
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("lcai-buildwatch")
    except PackageNotFoundError:
        return None
    if dist.read_text("direct_url.json") is not None or not re.fullmatch(r"\d+(\.\d+)*", dist.version or ""):
        return None
    return dist.version


def agent_source(config: "BuildWatchConfig") -> tuple[str, Optional[str]]:
    """(where the agent comes from, the version to fetch when from a package index)."""
    if config.agent_from == "user-data":
        return "user-data", None
    release = installed_release()
    if config.agent_from == "package-index":
        from . import __version__

        return "package-index", release or __version__
    return ("package-index", release) if release else ("user-data", None)


WRAPPER = f"""#!/bin/sh
[ -f {INDEX_AGENT} ] || {{ echo "build-watcher: the agent is not installed yet; it is fetched at boot" \
  "(journalctl -u build-watcher)" >&2; exit 1; }}
exec /usr/bin/python3 {INDEX_AGENT} "$@"
"""


class BuildWatch(Capability):
    name = "buildwatch"
    summary = "BuildWatch agent: OOM kills, crash loops, non-zero exits, slow starts, failing health, GPU checks"
    config_class = BuildWatchConfig
    # python3 >= 3.10 on the image: 3.10 on Ubuntu 22.04, 3.12 on 24.04, 3.11 on Debian 12
    images = ("linode/ubuntu22.04", "linode/ubuntu24.04", "linode/debian12")
    order = 60

    def ports(self, config) -> dict:
        return {"port": config.port}

    def check(self, config: BuildWatchConfig, template) -> list:
        out = []
        if template.capabilities.runtime != "docker":
            why = ("buildwatch watches containers: it needs capabilities.runtime: docker (it reads Docker's container "
                   "events")
            if template.capabilities.runtime == "k3s":
                why += "; k3s runs the app under containerd, and `lcai logs` shows its pod's state and events"
            out.append(why + ")")
        if not 1024 <= config.port <= 65535:
            out.append("config.port must be 1024-65535")
        if not 1 <= config.log_retention_days <= 365:
            out.append("config.log_retention_days must be 1-365")
        try:
            ipaddress.ip_address(config.bind)
        except ValueError:
            out.append(f"config.bind must be an IP address, got {config.bind!r}")
        if config.slow_start_seconds < 1 or config.crash_loop_deaths < 2:
            out.append("config.slow_start_seconds must be >= 1 and config.crash_loop_deaths >= 2")
        if config.agent_from not in AGENT_FROM:
            out.append(f"config.agent_from must be one of {', '.join(AGENT_FROM)}, got {config.agent_from!r}")
        u = urlsplit(config.index_url)
        if u.scheme not in ("https", "http") or not u.hostname or any(c in config.index_url for c in " \"'\\"):
            out.append(f"config.index_url must be an http(s) URL of a package index's simple API, "
                       f"got {config.index_url!r}")
        elif u.username or u.password:
            out.append("config.index_url must not hold credentials (the config on the instance is not secret); "
                       "use an index that needs none, or agent_from: user-data")
        return out

    def fragments(self, config: BuildWatchConfig, ctx: DeployContext) -> Fragments:
        loopback = ipaddress.ip_address(config.bind).is_loopback
        cfg = {"deployment_id": ctx.deployment_id, "app_name": ctx.app_name, "container": "app", "bind": config.bind,
               "port": config.port, "enable_metrics": config.enable_metrics, "log_dir": LOG_DIR,
               "state_dir": "/var/lib/lcai", "token_file": TOKEN_PATH, "slow_start_s": config.slow_start_seconds,
               "crash_loop_deaths": config.crash_loop_deaths}
        source, version = agent_source(config)
        if source == "package-index":
            pin = agent_sha256()
            cfg.update(agent_index=config.index_url, agent_version=version, agent_sha256=pin)
            agent = [WriteFile(FETCH_PATH, fetch_payload(), permissions="0755"),
                     WriteFile(AGENT_PATH, WRAPPER, permissions="0755")]
            start = FETCH_PATH
            # the fetched agent lives in the unit's state directory; a missing version or a wrong hash (exit 78)
            # is permanent: the unit stays failed instead of asking the index again every 2 s
            service = "StateDirectory=build-watcher\nRestartPreventExitStatus=78\n"
            how = (f"install BuildWatch {version} from {config.index_url} at boot (agent.py sha256 pinned: "
                   f"{pin[:12]}…)")
        else:
            agent = [WriteFile(AGENT_PATH, agent_payload(), permissions="0755")]
            start, service = AGENT_PATH, ""
            how = "install BuildWatch from the user data (no download)"
        files = [
            *agent,
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
ExecStart=/usr/bin/python3 {start} --config {CONFIG_PATH} run
Restart=always
RestartSec=2
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths={LOG_DIR}
LogsDirectory=build-watcher
{service}
[Install]
WantedBy=multi-user.target
""")
        where = f"{config.bind}:{config.port}" + ("" if loopback else " (bearer token required)")
        return Fragments(
            packages=("python3", "logrotate"), write_files=tuple(files), units=(unit,),
            boot_plan=(f"{how}, API on {where}, "
                       f"logs in {LOG_DIR} kept {config.log_retention_days} days",),
        )
