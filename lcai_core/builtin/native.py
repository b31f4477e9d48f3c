"""Runtime ``native``: the app is a host process run by systemd (no container)."""

from __future__ import annotations

from ..capabilities import AppSpec, DeployContext, Fragments, Runtime


class Native(Runtime):
    name = "native"
    summary = "run container.command directly on the host under systemd (no container engine)"

    def check(self, config, template):
        c = template.container
        out = []
        if not c.command:
            out.append((("deploy", "linode", "container", "command"), "the native runtime needs a command"))
        if c.image:
            out.append((("deploy", "linode", "container", "image"),
                        "the native runtime runs no container image; remove it or use runtime: docker"))
        if c.volumes:
            out.append((("deploy", "linode", "container", "volumes"), "volumes need runtime: docker"))
        if c.external_port is not None and c.external_port != c.internal_port:
            out.append((("deploy", "linode", "container", "external_port"),
                        "a native app listens on its own port: external_port must equal internal_port"))
        return out

    def fragments(self, config, ctx: DeployContext) -> Fragments:
        return Fragments(boot_plan=("runtime native: the app runs as a host process under systemd",))

    def exec_start(self, app: AppSpec, ctx: DeployContext) -> list[str]:
        argv = list(app.command)
        if argv and not argv[0].startswith("/"):
            argv.insert(0, "/usr/bin/env")
        return argv

    def service_lines(self, app: AppSpec, ctx: DeployContext) -> str:
        return f"EnvironmentFile={app.env_file}\n"
