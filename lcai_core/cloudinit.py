"""Fragments → one cloud-config: deterministic assembly, conflict detection, the app's units, rendering,
encoding and size accounting.

Boot 1 (cloud-init): bootcmd → write_files → apt sources → packages (one index refresh) → deferred files →
runcmd (daemon-reload, capability steps, enable units, start them unless a reboot is due) → power_state.
Everything that must also happen after a reboot lives in systemd units, never in runcmd.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shlex
from typing import Any, Optional

import yaml
from attrs import define, field

from .capabilities import AppSpec, Command, DeployContext, Fragments, Resolved, Unit, WriteFile
from .errors import InputError, LcaiError

USER_DATA_LIMIT = 16384  # decoded bytes (the gzip stream when compressed): the stricter public limit
ENV_FILE = "/etc/lcai/app.env"
LIB = "/usr/local/lib/lcai"
STATE = "/var/lib/lcai"
APP_UNIT = "lcai-app.service"
HEALTH_UNIT = "lcai-health.service"
SETUP_UNIT = "lcai-setup.service"
POST_START_UNIT = "lcai-post-start.service"


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


def _env_file(env: dict[str, str], line) -> str:
    for k, v in env.items():
        if "\n" in v or "\r" in v or "\x00" in v:
            raise InputError(f"{k}: the value contains a newline or NUL, which the env-file format cannot carry")
    return "".join(line(k, v) + "\n" for k, v in env.items())


def docker_env_file(env: dict[str, str]) -> str:
    """docker --env-file format: one NAME=value line, taken literally (no quotes, no expansion)."""
    return _env_file(env, lambda k, v: f"{k}={v}")


def systemd_env_file(env: dict[str, str]) -> str:
    """systemd EnvironmentFile= format: double-quoted values with \\ and \" escaped (no expansion)."""
    return _env_file(env, lambda k, v: f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')


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


def interpolate(value: str, values: dict[str, str], where: str) -> str:
    """Replace ``${NAME}`` from ``values``; ``$$`` is a literal ``$``. Unknown names are errors."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name not in values:
            raise InputError(f"{where}: references ${{{name}}}, which is not set in .env and has no default",
                             hint=f"add {name}=… to .env, or declare it under env.optional with a default")
        return values[name]

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


@define(frozen=True)
class Rendered:
    doc: dict
    text: str
    boot_plan: tuple
    env_names: tuple  # names only: values are never printed
    units: tuple

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
                "limit": USER_DATA_LIMIT}

    def check_size(self) -> None:
        s = self.sizes()
        if s["gzip"] > USER_DATA_LIMIT:
            raise InputError(
                f"user data is {s['gzip']} bytes gzipped ({s['raw']} raw); Linode accepts at most {USER_DATA_LIMIT}",
                hint="shorten setup.script/setup.files, or install large payloads from a package instead")


def _health_script(tpl, runtime, port: Optional[int]) -> Optional[str]:
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
# lcai health wait: polls the app until healthy, with the template's settings. Failures during the
# initial delay do not count against max_retries. Result: {STATE}/health.json (read by lcai status).
set -u
initial_delay={h.initial_delay_seconds}
interval={h.interval_seconds}
max_retries={h.max_retries}
state={STATE}/health.json
mkdir -p {STATE}
record() {{
  printf '{{"state": "%s", "attempt": %d, "max_retries": %d, "detail": "%s", "time": %d}}\\n' \\
    "$1" "$2" "$max_retries" "$3" "$(date +%s)" > "$state.tmp" && mv -f "$state.tmp" "$state"
}}
probe() {{
  {probe}
}}
start=$(date +%s)
failures=0
attempt=0
detail=""
while :; do
  attempt=$((attempt + 1))
  if probe; then
    record healthy "$attempt" "ok"
    exit 0
  fi
  if [ $(( $(date +%s) - start )) -ge "$initial_delay" ]; then
    failures=$((failures + 1))
  fi
  if [ "$failures" -ge "$max_retries" ]; then
    record unhealthy "$attempt" "$detail"
    echo "lcai: app unhealthy after $attempt attempts: $detail" >&2
    exit 1
  fi
  record waiting "$attempt" "$detail"
  sleep "$interval"
done
"""


def _script(text: str) -> str:
    return text if text.startswith("#!") else "#!/bin/bash\n" + text


def app_fragments(tpl, runtime, ctx: DeployContext, env: dict[str, str],
                  a: Assembled) -> tuple[Fragments, dict, list[str]]:
    """The app's own pieces: env file, app unit, setup/health/post-start units; plus the boot-plan lines of
    what those units do (they run after the reboot, when there is one)."""
    c = tpl.container
    files: list[WriteFile] = []
    units: list[Unit] = []
    requires = ["network-online.target", *a.app_requires]

    files.append(WriteFile(ENV_FILE, runtime.env_file_text(env), permissions="0600"))

    s = tpl.setup
    for sf in s.files:
        files.append(WriteFile(sf.path, sf.content, permissions=sf.permissions, owner=sf.owner, defer=True))
    if s.script:
        files.append(WriteFile(f"{LIB}/setup", _script(s.script), permissions="0700"))
        units.append(Unit(SETUP_UNIT, _oneshot_unit(
            "lcai: the template's setup script (once per instance)", f"{LIB}/setup",
            after=[r for r in requires if r != "network-online.target"] + ["network-online.target"],
            marker=f"{STATE}/setup.done")))
        requires.append(SETUP_UNIT)

    ports: list[tuple[str, int]] = []
    if c.internal_port is not None:
        if c.external_port is not None:
            ports.append((str(c.external_port), c.internal_port))
        else:  # not public: reachable on the instance's loopback only (health checks, BuildWatch)
            ports.append((f"127.0.0.1:{c.internal_port}", c.internal_port))
    command: tuple[str, ...] = ()
    if c.command:
        command = tuple(shlex.split(interpolate(c.command, env, "deploy.linode.container.command")))
    app = AppSpec(image=c.image, command=command, env_file=ENV_FILE, ports=tuple(ports),
                  volumes=tuple(c.volumes), docker_args=tuple(a.docker_args), gpu=a.gpu)
    argv = runtime.exec_start(app, ctx)
    deps = " ".join(requires)
    service_lines = runtime.service_lines(app, ctx)
    units.append(Unit(APP_UNIT, f"""[Unit]
Description=lcai app {ctx.app_name} ({ctx.deployment_id}, env {ctx.env})
After={deps}
Wants=network-online.target
Requires={" ".join(r for r in requires if r != "network-online.target")}
StartLimitIntervalSec=0

[Service]
Type=simple
{service_lines}ExecStart={exec_line(argv)}
Restart=always
RestartSec=5
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
""".replace("Requires=\n", "")))

    # the port the health probe reaches on the instance
    h = c.health
    probe_port = None
    if h is not None and h.type != "exec":
        hp = h.port if h.port is not None else c.internal_port
        probe_port = c.external_port if (runtime.publishes_ports and hp == c.internal_port and c.external_port) else hp
    health = _health_script(tpl, runtime, probe_port)
    if health:
        files.append(WriteFile(f"{LIB}/health-wait", health, permissions="0755"))
        units.append(Unit(HEALTH_UNIT, f"""[Unit]
Description=lcai: wait until {ctx.app_name} is healthy ({h.type} check)
After={APP_UNIT}
Requires={APP_UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={LIB}/health-wait
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""))
    if c.post_start_script:
        files.append(WriteFile(f"{LIB}/post-start", _script(c.post_start_script), permissions="0700"))
        after = HEALTH_UNIT if health else APP_UNIT
        units.append(Unit(POST_START_UNIT, _oneshot_unit(
            "lcai: the template's post_start_script (once, after the app is healthy)", f"{LIB}/post-start",
            after=[after], marker=f"{STATE}/post-start.done")))
    plan = [f"write the app's environment ({len(env)} variables) to {ENV_FILE} (0600)"]
    if s.files:
        plan.append(f"write {len(s.files)} setup file(s) after packages are installed")
    later: list[str] = []  # done by systemd units: after the reboot when there is one
    if s.script:
        later.append("run the setup script once (lcai-setup.service), before the app")
    later.append(f"start the app ({runtime.name}{', GPU' if a.gpu else ''}) as {APP_UNIT} after "
                + ", ".join(r for r in requires if r != "network-online.target"))
    if health:
        later.append(f"wait for health: {h.type} {h.path if h.type == 'http' else ''} every {h.interval_seconds}s,"
                     f" up to {h.max_retries} failures after {h.initial_delay_seconds}s ({HEALTH_UNIT})".replace("  ", " "))
    if c.post_start_script:
        later.append(f"run post_start_script once the app is {'healthy' if health else 'started'}")
    return Fragments(write_files=tuple(files), units=tuple(units), packages=("curl",) if health else (),
                     boot_plan=tuple(plan)), env, later


def _oneshot_unit(description: str, script: str, after: list[str], marker: str) -> str:
    return f"""[Unit]
Description={description}
After={" ".join(after)}
Requires={" ".join(a for a in after if a != "network-online.target")}
ConditionPathExists=!{marker}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={script}
ExecStartPost=/usr/bin/touch {marker}
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
""".replace("Requires=\n", "")


# ---------------------------------------------------------------- the document


def build(tpl, resolved: list[Resolved], ctx: DeployContext, env: dict[str, str]) -> Rendered:
    runtime = resolved[0].capability
    a = assemble([(r.name, r.capability.fragments(r.config, ctx)) for r in resolved])
    full_env = {**a.container_env, **env}
    app, full_env, later = app_fragments(tpl, runtime, ctx, full_env, a)
    a.add("app", app)

    doc: dict[str, Any] = {"package_update": True, "package_upgrade": False}
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
    runcmd: list = [_Flow(["mkdir", "-p", STATE]), _Flow(["systemctl", "daemon-reload"])]
    runcmd.extend(_cmd(c) for c in a.runcmd)
    if enable:
        runcmd.append(_Flow(["systemctl", "enable", *enable]))
        if not a.reboot:
            runcmd.append(_Flow(["systemctl", "start", "--no-block", *enable]))
    doc["runcmd"] = runcmd
    if a.reboot:
        doc["power_state"] = {"mode": "reboot", "delay": "now", "timeout": 1800, "condition": True,
                              "message": "lcai: rebooting once to load kernel drivers"}
    header = (f"#cloud-config\n# lcai: template {tpl.name} {tpl.version}, deployment {ctx.deployment_id} "
              f"(app {ctx.app_name}, env {ctx.env})\n")
    text = header + dump_yaml(doc)
    plan = [line for _, line in a.boot_plan]
    if a.reboot:
        plan.append("reboot once (power_state); after it systemd starts everything in dependency order:")
    plan += later
    return Rendered(doc=doc, text=text, boot_plan=tuple(plan), env_names=tuple(sorted(full_env)),
                    units=tuple(u.name for u in a.units))


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


def summary_json(rendered: Rendered) -> str:
    return json.dumps({"sizes": rendered.sizes(), "boot_plan": list(rendered.boot_plan),
                       "env": list(rendered.env_names), "units": list(rendered.units)}, indent=2)
