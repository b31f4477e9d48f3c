"""The app's own pieces, built after the capabilities' fragments and the app's environment: the env file, the
app unit, the setup, health and post-start units, and the boot-plan lines of what those units do."""

from __future__ import annotations

import re
from typing import Any, Optional

from attrs import define

from ..capabilities import AppSpec, DeployContext, Fragments, Unit, WriteFile
from .assembly import Assembled
from .healthwait import health_script, health_unit, probe_body
from .healthwait import SCRIPT as HEALTH_SCRIPT
from .layout import APP_UNIT, ENV_FILE, HEALTH_UNIT, IMAGE_PULL_UNIT, LIB, POST_START_UNIT, SETUP_UNIT, STATE
from .scripts import strict_script
from .stack import Stack
from .units import INSTALL, directives_of, exec_line, names, oneshot_unit, unit_text


@define(frozen=True)
class AppPieces:
    """What ``app_fragments`` adds to the document, and the boot-plan lines of what its units do later (after
    the reboot, when there is one)."""

    fragments: Fragments
    later: tuple[str, ...]


def app_spec(tpl: Any, stack: Stack, env_file: str, command: tuple[str, ...], a: Assembled,
             env: Optional[dict[str, str]] = None) -> AppSpec:
    c = tpl.container
    ports: list[tuple[str, int]] = []
    if c.internal_port is not None:
        if c.external_port is not None:
            ports.append((str(c.external_port), c.internal_port))
        else:  # not public: reachable on the instance's loopback only (health checks, BuildWatch)
            ports.append((f"127.0.0.1:{c.internal_port}", c.internal_port))
    return AppSpec(image=c.image, command=command, env_file=env_file, ports=tuple(ports),
                   volumes=tuple(c.volumes), docker_args=tuple(a.docker_args), gpu=a.gpu, sandbox=c.sandbox,
                   writable_paths=tuple(c.writable_paths), devices=stack.requires_gpu, env=dict(env or {}),
                   health=c.health, internal_port=c.internal_port)


def app_unit(stack: Stack, app: AppSpec, ctx: DeployContext, deps: list[str], before_app: list[str],
             mounts: tuple[str, ...] = ()) -> str:
    runtime = stack.runtime_capability
    return unit_text([
        ("Unit", [("Description", f"lcai app {ctx.app_name} ({ctx.deployment_id}, env {ctx.env})"),
                  ("After", ["network-online.target", "multi-user.target", *deps, *before_app]),
                  ("Wants", "network-online.target"),
                  ("Requires", [*deps, *before_app]),
                  ("RequiresMountsFor", list(mounts)),  # the volumes: never the root disk in their place
                  ("StartLimitIntervalSec", "0")]),
        ("Service", [("Type", "simple"),
                     *directives_of(runtime.service_lines(app, ctx), f"runtime {runtime.name!r}"),
                     ("ExecStart", exec_line(runtime.exec_start(app, ctx))),
                     ("Restart", "always"), ("RestartSec", "5"), ("TimeoutStartSec", "300")]),
        INSTALL,
    ])


def probe_port(tpl: Any, stack: Stack) -> Any:
    """The port the health probe reaches on the instance (None for an exec check)."""
    c, h = tpl.container, tpl.container.health
    if h is None or h.type == "exec":
        return None
    hp = h.port if h.port is not None else c.internal_port
    published = stack.runtime_capability.publishes_ports and hp == c.internal_port and c.external_port
    return c.external_port if published else hp


def app_fragments(tpl: Any, stack: Stack, ctx: DeployContext, env: dict[str, str], command: tuple[str, ...],
                  a: Assembled) -> AppPieces:
    """The app's pieces for the environment ``env`` and the argv ``command`` (both resolved before, with
    the capabilities' values), after the capabilities' fragments ``a``."""
    c = tpl.container
    runtime = stack.runtime_capability
    files: list[WriteFile] = []
    units: list[Unit] = []
    deps = list(a.app_requires)  # units the app requires (docker, redis, a GPU check, …)

    files.append(WriteFile(ENV_FILE, runtime.env_file_text(env), permissions="0600"))
    app = app_spec(tpl, stack, ENV_FILE, command, a, env)

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
        units.append(Unit(SETUP_UNIT, oneshot_unit(
            "lcai: the template's setup script (once per instance)", f"{LIB}/setup", after=deps,
            marker=f"{STATE}/setup.done", timeout=s.timeout_seconds, network=True)))
        before_app.append(SETUP_UNIT)

    mounts = tuple(v.mount for v in tpl.deploy.linode.volumes)
    units.append(Unit(APP_UNIT, app_unit(stack, app, ctx, deps, before_app, mounts)))

    h = c.health
    if h is not None:
        probe = probe_body(h, runtime.exec_probe(h.command) if h.type == "exec" else [], probe_port(tpl, stack))
        files.append(WriteFile(HEALTH_SCRIPT, health_script(h, probe, runtime.running_check(app)),
                               permissions="0755"))
        units.append(Unit(HEALTH_UNIT, health_unit(ctx.app_name, h)))
    if c.post_start_script:
        files.append(WriteFile(f"{LIB}/post-start", strict_script(c.post_start_script, "post_start_script"),
                               permissions="0700"))
        units.append(Unit(POST_START_UNIT, oneshot_unit(
            "lcai: the template's post_start_script (once, after the app is healthy)", f"{LIB}/post-start",
            after=[HEALTH_UNIT if h else APP_UNIT], marker=f"{STATE}/post-start.done",
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
                 + ", ".join(names(deps, before_app)))
    if h is not None:
        later.append(f"wait for health: {h.type} {h.path if h.type == 'http' else ''} every {h.interval_seconds}s,"
                     f" up to {h.max_retries} failures after {h.initial_delay_seconds}s from the app running, "
                     f"or {h.max_restarts} app restarts ({HEALTH_UNIT})".replace("  ", " "))
    if c.post_start_script:
        later.append(f"run post_start_script once the app is {'healthy' if h else 'started'} "
                     f"(at most {c.post_start_timeout_seconds}s)")
    later.append("none of these holds up multi-user.target or cloud-init's final stage")
    out = Fragments(write_files=(*rt.write_files, *files), units=(*rt.units, *units),
                    packages=tuple(dict.fromkeys([*rt.packages, *(("curl",) if h is not None else ())])),
                    bootcmd=rt.bootcmd, boot_plan=tuple(plan))
    return AppPieces(out, tuple(later))


def command_warnings(tpl: Any, provided: dict[str, str], dotenv: dict[str, str] | None = None) -> list[str]:
    """Values from .env or a default (or generated by a capability) used in container.command end up in ``ps``,
    the unit file, ``systemctl status`` and ``docker inspect``: say so, and where the value comes from (.env
    only when ``dotenv`` sets it; secret variables are refused by the loader)."""
    from ..template import references

    c = tpl.container
    if not c.command:
        return []
    declared = {v.name for v in (*tpl.env.required, *tpl.env.optional)}
    defaults = {v.name for v in tpl.env.optional if v.default is not None}
    out = []
    for name in references(c.command):
        if name in declared or (name not in c.env and name not in provided):
            source = ("with its env.optional default (.env does not set it)" if dotenv is not None
                      and name not in dotenv and name in defaults else "from .env")
            out.append(f"deploy.linode.container.command uses ${{{name}}} {source}: its value is visible in ps, "
                       "the unit file, systemctl status and docker inspect (fine for settings; pass anything "
                       "sensitive through container.env)")
        elif name in provided and name not in c.env:
            out.append(f"deploy.linode.container.command uses ${{{name}}}, which a capability generates (it may "
                       "hold a password): its value is visible in ps and the unit file; read it from the "
                       "environment instead")
    return out
