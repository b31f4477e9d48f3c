"""Fragments → one cloud-config: deterministic assembly, conflict detection, the app's units, rendering,
encoding and size accounting.

Boot 1 (cloud-init): bootcmd → write_files → apt sources → packages (one index refresh) → deferred files →
runcmd (daemon-reload, capability steps, enable units, start them unless a reboot is due) → power_state.
Everything that must also happen after a reboot lives in systemd units, never in runcmd.

runcmd runs as one /bin/sh script: every step goes through ``lcai_step``, which logs it, and on a failure
names it on stderr (in /var/log/cloud-init-output.log, shown by ``lcai logs``), records it in
/var/lib/lcai/failed-step and exits non-zero, so that cloud-init's final stage fails and ``cloud-init status``
says ``error`` instead of ``done``.

The unit graph (the same on every boot; on boot 1 runcmd enables the units and, without a reboot, starts them
with ``--no-block``):

    sysinit → lcai-metadata-guard ─┐ (Before docker/redis/postgres: nothing starts unguarded)
    docker.service, redis, …  ─────┴─→ multi-user.target ─→ cloud-final.service (cloud-init's final stage)
                                             │ After=
              ┌──────────────────────────────┴───────────────┐
              ▼                                              ▼
    lcai-image-pull (docker; bounded, retried)     lcai-setup (once; TimeoutStartSec=setup.timeout_seconds)
              └──────────────┬───────────────────────────────┘
                             ▼ After= + Requires=
                         lcai-app (Restart=always)
                             ▼ After= + Wants= (not Requires=: a crash does not restart the wait)
                         lcai-health (counts the app's restarts; result in /var/lib/lcai/health.json)
                             ▼ After= + Requires= (runs only once the app is healthy)
                         lcai-post-start (once; TimeoutStartSec=container.post_start_timeout_seconds)

On boot 1 without a reboot, runcmd also starts lcai-setup and waits for it (a provisioning step: bounded by its
timeout, its failure fails runcmd and so cloud-init); everything else is started with ``--no-block``.

Every app unit is ``WantedBy=multi-user.target`` (started at boot) but ordered ``After=multi-user.target``:
systemd then does not make the target wait for it (it adds target→unit ordering only when that makes no
cycle), so multi-user.target, cloud-final.service, ``cloud-init status --wait`` and SSH logins never wait for
an image pull, a setup script or a slow health check. The units the app requires (docker, redis, postgres, a
GPU check) stay before the target, which is why the app's own units must all be after it: a unit before the
target cannot order after one behind it.
"""

from __future__ import annotations

import base64
import gzip
import re
import shlex
from typing import Any, Optional, Sequence

import yaml
from attrs import define, field

from .capabilities import AppSpec, Command, DeployContext, Fragments, Resolved, Unit, WriteFile
from .errors import InputError, LcaiError

USER_DATA_LIMIT = 16384  # decoded bytes (the gzip stream): linode/cluster-api-provider-linode's limit
# Linode's OpenAPI spec, metadata.user_data: "Unencoded data must not exceed 65535 bytes, or about 16kb encoded"
USER_DATA_B64_LIMIT = 16384  # characters of base64 (what the API receives)
ENV_FILE = "/etc/lcai/app.env"
LIB = "/usr/local/lib/lcai"
STATE = "/var/lib/lcai"
APP_UNIT = "lcai-app.service"
HEALTH_UNIT = "lcai-health.service"
SETUP_UNIT = "lcai-setup.service"
POST_START_UNIT = "lcai-post-start.service"
# The docker runtime's image pull. Other units that need the app image (a GPU check running it) order
# After=lcai-image-pull.service (and Requires= it); they must then be After=multi-user.target too.
IMAGE_PULL_UNIT = "lcai-image-pull.service"
METADATA_GUARD_UNIT = "lcai-metadata-guard.service"
METADATA_V4 = "169.254.169.254"
METADATA_V6 = "fd00:a9fe:a9fe::1"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-lcai.conf"
START_GRACE = 600  # seconds the health wait allows the app to get running before it counts as failed


class ConflictError(LcaiError):
    exit_code = 2


# ---------------------------------------------------------------- quoting helpers

_SAFE_SYSTEMD = re.compile(r"^[A-Za-z0-9_./:=@+,-]+$")


def systemd_quote(arg: str) -> str:
    """One argv element for ExecStart=: quoted so systemd neither splits, unescapes nor expands it."""
    if "\n" in arg or "\x00" in arg:
        raise InputError(f"argument {arg!r} contains a newline or NUL")
    if _SAFE_SYSTEMD.match(arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def exec_line(argv: list[str]) -> str:
    return " ".join(systemd_quote(a) for a in argv)


from .envfile import docker_env_file, interpolate, systemd_env_file  # noqa: E402,F401  (re-exported)


# ---------------------------------------------------------------- assembly


@define
class Assembled:
    """Fragments merged in a deterministic order. Identical pieces are de-duplicated; two capabilities writing
    the same file, unit, apt source or env variable differently is a ConflictError naming both."""

    bootcmd: list = field(factory=list)
    apt_sources: dict = field(factory=dict)
    packages: list = field(factory=list)
    write_files: list = field(factory=list)
    runcmd: list = field(factory=list)
    units: list = field(factory=list)
    container_env: dict = field(factory=dict)
    docker_args: list = field(factory=list)
    app_requires: list = field(factory=list)
    gpu: bool = False
    reboot: bool = False
    boot_plan: list = field(factory=list)  # (who, line)
    _owners: dict = field(factory=dict, repr=False)  # (kind, key) -> (who, value)
    _arg_groups: list = field(factory=list, repr=False)

    def _claim(self, kind: str, key: str, value: Any, who: str) -> bool:
        """True if new; False if an identical piece is already there; raises on a conflict."""
        k = (kind, key)
        if k in self._owners:
            other, existing = self._owners[k]
            if existing == value:
                return False
            raise ConflictError(f"capabilities '{other}' and '{who}' both define {kind} {key} differently",
                                hint="remove one of them from capabilities.features, or configure them to agree")
        self._owners[k] = (who, value)
        return True

    def add(self, who: str, f: Fragments) -> "Assembled":
        for target, items in ((self.bootcmd, f.bootcmd), (self.runcmd, f.runcmd), (self.packages, f.packages),
                              (self.app_requires, f.app_requires)):
            target.extend(x for x in dict.fromkeys(items) if x not in target)
        for src in f.apt_sources:
            if self._claim("apt source", src.name, src, who):
                self.apt_sources[src.name] = src
        for w in f.write_files:
            if w.append or self._claim("file", w.path, w, who):
                self.write_files.append(w)
        for u in f.units:
            if self._claim("unit", u.name, u, who):
                self.units.append(u)
        for k, v in f.container_env.items():
            if self._claim("container env", k, v, who):
                self.container_env[k] = v
        if f.docker_args and tuple(f.docker_args) not in self._arg_groups:
            self._arg_groups.append(tuple(f.docker_args))
            self.docker_args.extend(f.docker_args)
        self.gpu = self.gpu or f.gpu
        self.reboot = self.reboot or f.reboot
        self.boot_plan.extend((who, line) for line in f.boot_plan)
        return self


def assemble(parts: list[tuple[str, Fragments]]) -> Assembled:
    """Merge fragments in the given (deterministic) order (see ``Assembled``)."""
    a = Assembled()
    for who, f in parts:
        a.add(who, f)
    return a


# ---------------------------------------------------------------- the app


@define(frozen=True)
class Rendered:
    doc: dict
    text: str
    boot_plan: tuple
    env_names: tuple  # names only: values are never printed
    units: tuple
    warnings: tuple = ()  # one line each, for plan/deploy to print (never a value)

    @property
    def gzipped(self) -> bytes:
        return gzip.compress(self.text.encode(), compresslevel=9, mtime=0)

    @property
    def user_data_b64(self) -> str:
        """What deploy sends as metadata.user_data: base64(gzip(cloud-config))."""
        return base64.b64encode(self.gzipped).decode()

    def sizes(self) -> dict[str, int]:
        gz = self.gzipped
        return {"raw": len(self.text.encode()), "gzip": len(gz), "base64": len(base64.b64encode(gz)),
                "limit": USER_DATA_LIMIT, "base64_limit": USER_DATA_B64_LIMIT}

    def check_size(self) -> None:
        """Both public limits: the decoded (gzip) bytes and the base64 text the API receives."""
        s = self.sizes()
        if s["gzip"] > USER_DATA_LIMIT or s["base64"] > USER_DATA_B64_LIMIT:
            raise InputError(
                f"user data is too large: {s['gzip']} bytes gzipped (limit {USER_DATA_LIMIT}) and {s['base64']} "
                f"characters base64-encoded (Linode's limit: about {USER_DATA_B64_LIMIT}); {s['raw']} bytes raw",
                hint="shorten setup.script/setup.files, or install large payloads from a package instead")


def _json_text(expr: str) -> str:
    """Shell: ``expr`` made safe inside a JSON string (no quotes, backslashes, newlines; at most 300 chars)."""
    return f"$(printf '%s' {expr} | tr -d '\\042\\134' | tr '\\n\\t' '  ' | cut -c1-300)"


def health_timeout(h) -> int:
    """TimeoutStartSec of the health unit: a backstop above the script's own bound."""
    return START_GRACE + h.initial_delay_seconds + h.max_retries * (h.interval_seconds + h.timeout_seconds + 5) + 300


def _health_script(tpl, runtime, app: AppSpec, port: Optional[int]) -> Optional[str]:
    h = tpl.container.health
    if h is None:
        return None
    q = shlex.quote
    if h.type == "http":
        probe = (f"code=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time {h.timeout_seconds} "
                 f"{q(f'http://127.0.0.1:{port}{h.path}')} 2>/dev/null) || code=000\n"
                 f"  case \"$code\" in {'|'.join(str(c) for c in h.success_codes)}) return 0 ;; esac\n"
                 f"  detail=\"HTTP $code from \"{q(h.path)}\n  return 1")
    elif h.type == "tcp":
        probe = (f"if timeout {h.timeout_seconds} bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; "
                 f"then return 0; fi\n  detail=\"no TCP connection on port {port}\"\n  return 1")
    else:
        argv = " ".join(q(a) for a in runtime.exec_probe(h.command))
        probe = (f"if timeout {h.timeout_seconds} {argv} >/dev/null 2>&1; then return 0; fi\n"
                 f"  detail=\"exec check failed\"\n  return 1")
    return f"""#!/bin/bash
# lcai health wait (template settings): the clock starts once the app runs; a crash loop or an app that does
# not run ends it as unhealthy. Result and reason: {STATE}/health.json
set -u
initial_delay={h.initial_delay_seconds}
interval={h.interval_seconds}
max_retries={h.max_retries}
max_restarts={h.max_restarts}
start_grace=${{LCAI_START_GRACE:-{START_GRACE}}}
app={APP_UNIT}
state={STATE}/health.json
mkdir -p {STATE}
attempt=0
restarts=0
record() {{
  printf '{{"state": "%s", "attempt": %d, "max_retries": %d, "restarts": %d, "detail": "%s", "time": %d}}\\n' \\
    "$1" "$2" "$max_retries" "$restarts" "{_json_text('"$3"')}" "$(date +%s)" > "$state.tmp" \\
    && mv -f "$state.tmp" "$state"
}}
unhealthy() {{
  record unhealthy "$attempt" "$1"
  echo "lcai: app unhealthy: $1" >&2
  exit 1
}}
show() {{
  systemctl show -p "$1" --value "$app" 2>/dev/null
}}
probe() {{
  {probe}
}}
running() {{
  {runtime.running_check(app)}
}}
why_not_running() {{
  for dep in $(show Requires); do
    if systemctl is-failed --quiet "$dep" 2>/dev/null; then
      echo "$dep failed (see journalctl -u $dep)"
      return
    fi
  done
  echo "see journalctl -u $app"
}}
restarts0=$(show NRestarts)
waiting_since=$(date +%s)
start=""
failures=0
detail=""
last_status=""
while :; do
  n=$(show NRestarts)
  restarts=$(( ${{n:-0}} - ${{restarts0:-0}} ))
  st=$(show ExecMainStatus)
  [ "${{st:-0}}" = 0 ] || last_status=$st
  if [ "$restarts" -ge "$max_restarts" ]; then
    unhealthy "crash loop: the app restarted $restarts times (last exit status ${{last_status:-$st}});\
 see journalctl -u $app"
  fi
  active=$(show ActiveState)
  case "$active" in
    failed|inactive) unhealthy "the app is not running ($active): $(why_not_running)" ;;
  esac
  if [ -z "$start" ]; then
    if running; then
      start=$(date +%s)
    elif [ $(( $(date +%s) - waiting_since )) -ge "$start_grace" ]; then
      unhealthy "the app did not get running within ${{start_grace}}s ($active): $(why_not_running)"
    else
      record waiting "$attempt" "the app is starting ($active)"
      sleep "$interval"
      continue
    fi
  fi
  attempt=$((attempt + 1))
  if probe; then
    record healthy "$attempt" "ok"
    exit 0
  fi
  if [ $(( $(date +%s) - start )) -ge "$initial_delay" ]; then
    failures=$((failures + 1))
  fi
  if [ "$failures" -ge "$max_retries" ]; then
    unhealthy "$detail (after $attempt attempts)"
  fi
  record waiting "$attempt" "$detail"
  sleep "$interval"
done
"""


_SHELLS = {"bash": "bash", "sh": "sh", "dash": "sh"}


def strict_script(text: str, step: str) -> str:
    """The template's script, stopping at the first failing command (``set -euo pipefail``) and naming the
    failure on stderr (the unit's journal). No shebang: bash. A non-shell shebang (python, …) is kept as is."""
    first, _, rest = text.partition("\n")
    offset = 1  # lines the prelude adds before the script's own line numbers
    if not first.startswith("#!"):
        first, rest, offset = "#!/bin/bash", text, 2
    parts = first[2:].split()
    interp = parts[0].rsplit("/", 1)[-1] if parts else ""
    if interp == "env" and len(parts) > 1:
        interp = parts[1].rsplit("/", 1)[-1]
    shell = _SHELLS.get(interp)
    if shell == "bash":
        prelude = (f"set -euo pipefail; trap 'echo \"lcai: step {step} failed (exit $?) at line "
                   f"$((LINENO - {offset})): $BASH_COMMAND\" >&2' ERR")
    elif shell == "sh":  # dash has no ERR trap and (before 0.5.13) no pipefail
        prelude = ("# shellcheck disable=SC3040\n"
                   "set -eu; if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi; "
                   f"lcai_exit() {{ st=$?; [ \"$st\" -eq 0 ] || echo \"lcai: step {step} failed (exit $st)\" >&2; }}; "
                   "trap lcai_exit EXIT")
    else:
        return text
    return f"{first}\n{prelude}\n{rest}"


def app_fragments(tpl, runtime, ctx: DeployContext, env: dict[str, str], a: Assembled,
                  resolved: Sequence[Resolved] = ()) -> tuple[Fragments, dict, list[str]]:
    """The app's own pieces: env file, app unit, setup/health/post-start units; plus the boot-plan lines of
    what those units do (they run after the reboot, when there is one)."""
    c = tpl.container
    files: list[WriteFile] = []
    units: list[Unit] = []
    deps = list(a.app_requires)  # units the app requires (docker, redis, a GPU check, …)

    files.append(WriteFile(ENV_FILE, runtime.env_file_text(env), permissions="0600"))

    ports: list[tuple[str, int]] = []
    if c.internal_port is not None:
        if c.external_port is not None:
            ports.append((str(c.external_port), c.internal_port))
        else:  # not public: reachable on the instance's loopback only (health checks, BuildWatch)
            ports.append((f"127.0.0.1:{c.internal_port}", c.internal_port))
    app = AppSpec(image=c.image, command=split_command(c.command, env), env_file=ENV_FILE, ports=tuple(ports),
                  volumes=tuple(c.volumes), docker_args=tuple(a.docker_args), gpu=a.gpu, sandbox=c.sandbox,
                  writable_paths=tuple(c.writable_paths),
                  devices=any(r.capability.requires_gpu for r in resolved))

    # the runtime's own pieces (the docker image pull, the native app's user); the pull may order after
    # every dependency of the app that does not itself order after the pull (a GPU check that runs the image)
    by_name = {u.name: u.content for u in a.units}
    pull_deps = tuple(d for d in deps if not re.search(
        rf"^(After|Requires|BindsTo|Requisite)=.*(?<![\w.-]){re.escape(IMAGE_PULL_UNIT)}", by_name.get(d, ""), re.M))
    rt = runtime.app_fragments(app, ctx, pull_deps)
    before_app = [u.name for u in rt.units if u.name == IMAGE_PULL_UNIT]

    s = tpl.setup
    for sf in s.files:
        files.append(WriteFile(sf.path, sf.content, permissions=sf.permissions, owner=sf.owner, defer=True))
    if s.script:
        files.append(WriteFile(f"{LIB}/setup", strict_script(s.script, "setup.script"), permissions="0700"))
        units.append(Unit(SETUP_UNIT, _oneshot_unit(
            "lcai: the template's setup script (once per instance)", f"{LIB}/setup", after=deps,
            marker=f"{STATE}/setup.done", timeout=s.timeout_seconds, network=True)))
        before_app.append(SETUP_UNIT)

    argv = runtime.exec_start(app, ctx)
    requires = " ".join(dict.fromkeys([*deps, *before_app]))
    units.append(Unit(APP_UNIT, f"""[Unit]
Description=lcai app {ctx.app_name} ({ctx.deployment_id}, env {ctx.env})
After={" ".join(dict.fromkeys(["network-online.target", "multi-user.target", *deps, *before_app]))}
Wants=network-online.target
Requires={requires}
StartLimitIntervalSec=0

[Service]
Type=simple
{runtime.service_lines(app, ctx)}ExecStart={exec_line(argv)}
Restart=always
RestartSec=5
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
""".replace("Requires=\n", "")))

    # the port the health probe reaches on the instance
    h = c.health
    probe_port = None
    if h is not None and h.type != "exec":
        hp = h.port if h.port is not None else c.internal_port
        probe_port = c.external_port if (runtime.publishes_ports and hp == c.internal_port and c.external_port) else hp
    health = _health_script(tpl, runtime, app, probe_port)
    if health:
        files.append(WriteFile(f"{LIB}/health-wait", health, permissions="0755"))
        units.append(Unit(HEALTH_UNIT, f"""[Unit]
Description=lcai: wait until {ctx.app_name} is healthy ({h.type} check)
After=multi-user.target {APP_UNIT}
Wants={APP_UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={LIB}/health-wait
TimeoutStartSec={health_timeout(h)}

[Install]
WantedBy=multi-user.target
"""))
    if c.post_start_script:
        files.append(WriteFile(f"{LIB}/post-start", strict_script(c.post_start_script, "post_start_script"),
                               permissions="0700"))
        units.append(Unit(POST_START_UNIT, _oneshot_unit(
            "lcai: the template's post_start_script (once, after the app is healthy)", f"{LIB}/post-start",
            after=[HEALTH_UNIT if health else APP_UNIT], marker=f"{STATE}/post-start.done",
            timeout=c.post_start_timeout_seconds)))
    plan = [f"write the app's environment ({len(env)} variables) to {ENV_FILE} (0600)"]
    plan += list(rt.boot_plan)
    if s.files:
        plan.append(f"write {len(s.files)} setup file(s) after packages are installed")
    later: list[str] = []  # done by systemd units: after the reboot when there is one
    if IMAGE_PULL_UNIT in before_app:
        later.append(f"pull {c.image} ({IMAGE_PULL_UNIT}: each attempt bounded, retried, result in "
                     f"{STATE}/image-pull.json)")
    if s.script:
        later.append(f"run the setup script once ({SETUP_UNIT}, at most {s.timeout_seconds}s), before the app"
                     + ("" if a.reboot else "; cloud-init waits for it and reports its failure"))
    later.append(f"start the app ({runtime.name}{', GPU' if a.gpu else ''}) as {APP_UNIT} after "
                 + ", ".join(d for d in dict.fromkeys([*deps, *before_app])))
    if health:
        later.append(f"wait for health: {h.type} {h.path if h.type == 'http' else ''} every {h.interval_seconds}s,"
                     f" up to {h.max_retries} failures after {h.initial_delay_seconds}s from the app running, "
                     f"or {h.max_restarts} app restarts ({HEALTH_UNIT})".replace("  ", " "))
    if c.post_start_script:
        later.append(f"run post_start_script once the app is {'healthy' if health else 'started'} "
                     f"(at most {c.post_start_timeout_seconds}s)")
    later.append("none of these holds up multi-user.target or cloud-init's final stage")
    out = Fragments(write_files=(*rt.write_files, *files), units=(*rt.units, *units),
                    packages=tuple(dict.fromkeys([*rt.packages, *(("curl",) if health else ())])),
                    bootcmd=rt.bootcmd, boot_plan=tuple(plan))
    return out, env, later


def split_command(command: Optional[str], env: dict[str, str]) -> tuple[str, ...]:
    """container.command → argv: split first (shell-like quoting), then ``${NAME}`` in each argument, so a
    value with spaces or quotes stays one argument and is never parsed."""
    if not command:
        return ()
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise InputError(f"deploy.linode.container.command: cannot split into arguments: {e}") from None
    return tuple(interpolate(w, env, "deploy.linode.container.command") for w in words)


def command_warnings(tpl, provided: dict[str, str]) -> list[str]:
    """Values from .env (or generated by a capability) used in container.command end up in ``ps``, the unit
    file, ``systemctl status`` and ``docker inspect``: say so (secret variables are refused by the loader)."""
    from .template import references

    c = tpl.container
    if not c.command:
        return []
    declared = {v.name for v in (*tpl.env.required, *tpl.env.optional)}
    out = []
    for name in references(c.command):
        if name in declared or (name not in c.env and name not in provided):
            out.append(f"deploy.linode.container.command uses ${{{name}}} from .env: its value is visible in ps, "
                       "the unit file, systemctl status and docker inspect (fine for settings; pass anything "
                       "sensitive through container.env)")
        elif name in provided and name not in c.env:
            out.append(f"deploy.linode.container.command uses ${{{name}}}, which a capability generates (it may "
                       "hold a password): its value is visible in ps and the unit file; read it from the "
                       "environment instead")
    return out


def _oneshot_unit(description: str, script: str, after: list[str], marker: str, timeout: int,
                  network: bool = False) -> str:
    order = (["network-online.target"] if network else []) + ["multi-user.target", *after]
    lines = ["[Unit]", f"Description={description}", f"After={' '.join(dict.fromkeys(order))}"]
    if network:
        lines.append("Wants=network-online.target")
    if after:
        lines.append(f"Requires={' '.join(after)}")
    lines += [f"ConditionPathExists=!{marker}", "", "[Service]", "Type=oneshot", "RemainAfterExit=yes",
              "Environment=HOME=/root", f"ExecStart={script}", f"ExecStartPost=/usr/bin/touch {marker}",
              f"TimeoutStartSec={timeout}", "", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the metadata guard

# raw PREROUTING (not lo): packets the host forwards (containers, other namespaces) are dropped before routing;
# OUTPUT: new connections of any user but root are refused (NEW only: kernel-sent packets of root's connections
# have no socket owner, and ICMP errors must pass)
GUARD_SCRIPT = f"""#!/bin/sh
# lcai: only root on this host may reach the metadata service (it serves the user data)
set -eu
guard() {{  # $1: iptables or ip6tables, $2: the address
  if ! "$1" -t raw -C PREROUTING ! -i lo -d "$2" -j DROP 2>/dev/null; then
    "$1" -t raw -I PREROUTING ! -i lo -d "$2" -j DROP
  fi
  if ! "$1" -C OUTPUT -d "$2" -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT 2>/dev/null; then
    "$1" -I OUTPUT -d "$2" -m conntrack --ctstate NEW -m owner ! --uid-owner 0 -j REJECT
  fi
}}
guard iptables {METADATA_V4}
if ip6tables -t raw -S PREROUTING >/dev/null 2>&1; then
  guard ip6tables {METADATA_V6}
else
  echo "lcai: ip6tables is not usable here (no IPv6): only {METADATA_V4} is guarded" >&2
fi
"""


def guard_fragments() -> Fragments:
    return Fragments(
        packages=("iptables",),
        write_files=(WriteFile(f"{LIB}/metadata-guard", GUARD_SCRIPT, permissions="0755"),),
        units=(Unit(METADATA_GUARD_UNIT, f"""[Unit]
Description=lcai: only root on this host may reach the metadata service
Before=docker.service redis-server.service postgresql.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={LIB}/metadata-guard

[Install]
WantedBy=multi-user.target
"""),),
        app_requires=(METADATA_GUARD_UNIT,),
        boot_plan=(f"guard the metadata service ({METADATA_V4}, {METADATA_V6}): containers and non-root "
                   "processes cannot read the user data",),
    )


SSHD_KEYS_ONLY = """# lcai: deployed with SSH keys: no password logins; root logs in by key only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
"""

STEP_FUNCTION = (
    "lcai_step() { echo \"lcai: step: $*\"; \"$@\" && return 0; rc=$?; "
    "echo \"lcai: step failed (exit $rc): $*\" >&2; echo \"$* (exit $rc)\" > " + STATE + "/failed-step; "
    "exit $rc; }")


# ---------------------------------------------------------------- the document


def build(tpl, resolved: list[Resolved], ctx: DeployContext, env: dict[str, str]) -> Rendered:
    runtime = resolved[0].capability
    a = assemble([(r.name, r.capability.fragments(r.config, ctx)) for r in resolved])
    a.add("lcai", guard_fragments())
    full_env = {**a.container_env, **env}
    app, full_env, later = app_fragments(tpl, runtime, ctx, full_env, a, resolved)
    a.add("app", app)
    warnings = command_warnings(tpl, a.container_env)

    doc: dict[str, Any] = {"package_update": True, "package_upgrade": False}
    if ctx.ssh_keys:
        doc["ssh_pwauth"] = False
        a.add("ssh", Fragments(write_files=(WriteFile(SSHD_DROP_IN, SSHD_KEYS_ONLY),),
                               boot_plan=("SSH: keys only (no password logins; root by key)",)))
    if a.apt_sources:
        sources = {}
        for name, s in sorted(a.apt_sources.items()):
            entry = {"source": s.source}
            if s.key:
                entry["key"] = s.key
            if s.keyid:
                entry["keyid"] = s.keyid
            sources[name] = entry
        doc["apt"] = {"sources": sources}
    if a.packages:
        doc["packages"] = list(a.packages)
    if a.bootcmd:
        doc["bootcmd"] = [_cmd(c) for c in a.bootcmd]
    write_files = [_wf(w) for w in a.write_files]
    for u in a.units:
        write_files.append({"path": f"/etc/systemd/system/{u.name}", "content": u.content, "permissions": "0644",
                            "owner": "root:root"})
    doc["write_files"] = write_files
    enable = [u.name for u in a.units if u.enable]
    steps: list = [["mkdir", "-p", STATE], ["systemctl", "daemon-reload"]]
    steps.extend(a.runcmd)
    if enable:
        steps.append(["systemctl", "enable", *enable])
        if not a.reboot:
            if SETUP_UNIT in enable:
                # provisioning: cloud-init waits for it (bounded by its TimeoutStartSec) and reports its failure;
                # after a reboot (or with one due) it runs after multi-user.target like the rest
                steps.append(["systemctl", "start", SETUP_UNIT])
            steps.append(["systemctl", "start", "--no-block", *enable])
    if ctx.ssh_keys:
        steps.append(["systemctl", "try-reload-or-restart", "ssh.service"])
    doc["runcmd"] = [STEP_FUNCTION] + [_Flow(["lcai_step", *_argv(c)]) for c in steps]
    if a.reboot:
        doc["power_state"] = {"mode": "reboot", "delay": "now", "timeout": 1800, "condition": True,
                              "message": "lcai: rebooting once to load kernel drivers"}
    header = (f"#cloud-config\n# lcai: template {tpl.name} {tpl.version}, deployment {ctx.deployment_id} "
              f"(app {ctx.app_name}, env {ctx.env})\n")
    text = header + dump_yaml(doc)
    plan = [line for _, line in a.boot_plan]
    plan.append("every boot step is checked: a failing one stops runcmd, is named in the log, and "
                "cloud-init status says error")
    if a.reboot:
        plan.append("reboot once (power_state); after it systemd starts everything in dependency order:")
    plan += later
    return Rendered(doc=doc, text=text, boot_plan=tuple(plan), env_names=tuple(sorted(full_env)),
                    units=tuple(u.name for u in a.units), warnings=tuple(warnings))


def _argv(c: Command) -> list[str]:
    """A runcmd step as argv: a string step is run by /bin/sh -c."""
    return ["sh", "-c", c] if isinstance(c, str) else list(c)


class _Flow(list):
    """A command in list form, rendered on one line: [systemctl, enable, x]."""


def _cmd(c: Command) -> Any:
    return c if isinstance(c, str) else _Flow(c)


def _wf(w: WriteFile) -> dict:
    d: dict[str, Any] = {"path": w.path, "content": w.content, "permissions": w.permissions, "owner": w.owner}
    if w.encoding:
        d["encoding"] = w.encoding
    if w.append:
        d["append"] = True
    if w.defer:
        d["defer"] = True
    return d


class _Dumper(yaml.SafeDumper):
    pass


def _str_rep(dumper: yaml.SafeDumper, data: str):
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")) and "\t" not in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_rep)
_Dumper.add_representer(_Flow, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)
