"""The cloud-config document, rendered in one direction:

1. the capabilities' fragments (runtime first, then the features in order) and the metadata guard, assembled;
2. the app's environment and command, with the values those fragments provide (``REDIS_URL``, …) available to
   ``container.env`` and ``container.command`` (``lcai_core.env``);
3. the app's own units and files (``app.py``), for that environment;
4. the document: packages, write_files, units, the checked runcmd steps, the reboot.
"""

from __future__ import annotations

import base64
import gzip
import os
from pathlib import Path
from functools import cached_property
from typing import Any, Optional, Sequence, Union

from attrs import define, field

from ..capabilities import Command, DeployContext, Fragments, Resolved, WriteFile
from ..errors import InputError
from .app import app_fragments, command_warnings
from .assembly import Assembled, assemble
from .guard import guard_fragments
from .layout import SETUP_UNIT, SSHD_DROP_IN, STATE, USER_DATA_B64_LIMIT, USER_DATA_LIMIT
from .stack import Stack
from .volumes import volume_fragments
from .yamldump import Flow, dump_yaml


@define(frozen=True)
class Rendered:
    doc: dict
    text: str
    boot_plan: tuple
    env_names: tuple  # names only: values are never printed
    units: tuple
    warnings: tuple = ()  # one line each, for plan/deploy to print (never a value)
    env: dict = field(factory=dict, repr=False)  # the app's environment (values: secrets; never printed)

    @cached_property
    def gzipped(self) -> bytes:
        """gzip of the text, compressed once (plan's sizes, the size check and the create body share it)."""
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


SSHD_KEYS_ONLY = """# lcai: deployed with SSH keys: no password logins; root logs in by key only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
"""

STEP_FUNCTION = (
    "lcai_step() { echo \"lcai: step: $*\"; \"$@\" && return 0; rc=$?; "
    "echo \"lcai: step failed (exit $rc): $*\" >&2; echo \"$* (exit $rc)\" > " + STATE + "/failed-step; "
    "exit $rc; }")


def capability_fragments(stack: Stack, ctx: DeployContext, volumes: Sequence[Any] = ()) -> Assembled:
    """Step 1: the volumes (their boot steps first: nothing uses a volume before it is ready), every capability's
    fragments (the runtime's first) and the metadata guard, assembled."""
    first = [("volumes", volume_fragments(volumes, ctx.app_name, ctx.env))] if volumes else []
    a = assemble(first + [(r.name, r.capability.fragments(r.config, ctx)) for r in stack.all])
    a.add("lcai", guard_fragments())
    return a


def build(tpl: Any, resolved: Union[Stack, Sequence[Resolved]], ctx: DeployContext, dotenv: dict[str, str],
          env_path: Path = Path(".env"), template_file: Optional[Union[str, os.PathLike]] = None) -> Rendered:
    """Render ``tpl`` for ``ctx`` with the deployment's .env values ``dotenv`` (read from ``env_path``;
    ``template_file`` locates errors in the template). See the module docstring for the order."""
    from ..env import app_command, app_environment, overridden

    stack = Stack.of(resolved)
    a = capability_fragments(stack, ctx, tpl.deploy.linode.volumes)
    provided = dict(a.container_env)
    env = app_environment(tpl, dotenv, env_path, provided=provided, template_file=template_file)
    command = app_command(tpl, env, template_file)
    app = app_fragments(tpl, stack, ctx, env, command, a)
    a.add("app", app.fragments)
    warnings = [*overridden(dotenv, {k: a.provider_of(k) for k in provided}, env_path),
                *command_warnings(tpl, provided, dotenv)]
    return document(tpl, ctx, a, app.later, env, tuple(warnings))


def document(tpl: Any, ctx: DeployContext, a: Assembled, later: Sequence[str], env: dict[str, str],
             warnings: tuple[str, ...] = ()) -> Rendered:
    """Step 4: the cloud-config for the assembled fragments (the app's included)."""
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
    doc["runcmd"] = [STEP_FUNCTION] + [Flow(["lcai_step", *_argv(c)]) for c in steps]
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
    return Rendered(doc=doc, text=text, boot_plan=tuple(plan), env_names=tuple(sorted(env)),
                    units=tuple(u.name for u in a.units), warnings=warnings, env=dict(env))


def _argv(c: Command) -> list[str]:
    """A runcmd step as argv: a string step is run by /bin/sh -c."""
    return ["sh", "-c", c] if isinstance(c, str) else list(c)


def _cmd(c: Command) -> Any:
    return c if isinstance(c, str) else Flow(c)


def _wf(w: WriteFile) -> dict:
    d: dict[str, Any] = {"path": w.path, "content": w.content, "permissions": w.permissions, "owner": w.owner}
    if w.encoding:
        d["encoding"] = w.encoding
    if w.append:
        d["append"] = True
    if w.defer:
        d["defer"] = True
    return d
