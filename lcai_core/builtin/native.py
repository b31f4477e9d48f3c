"""Runtime ``native``: the app is a host process run by systemd (no container).

By default the app runs as the dedicated system user ``lcai-app`` inside a systemd sandbox: no new
privileges, a read-only file system except its state directory (/var/lib/lcai-app) and the template's
``container.writable_paths``, a private /tmp, no home directories, no kernel tunables. ``container.sandbox:
false`` runs it as root without the sandbox (for apps that must administer the machine).
"""

from __future__ import annotations

from ..capabilities import AppSpec, DeployContext, Fragments, Runtime

APP_USER = "lcai-app"
APP_HOME = f"/var/lib/{APP_USER}"


def sandbox_lines(app: AppSpec) -> list[str]:
    low_port = any(int(container) < 1024 for _, container in app.ports)
    caps = "CAP_NET_BIND_SERVICE" if low_port else ""
    lines = [
        f"User={APP_USER}", f"Group={APP_USER}", f"StateDirectory={APP_USER}", f"WorkingDirectory={APP_HOME}",
        "UMask=0027", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
        "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes", "ProtectProc=invisible",
        "RestrictSUIDSGID=yes", "RestrictRealtime=yes", "RestrictNamespaces=yes", "LockPersonality=yes",
        "RemoveIPC=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallArchitectures=native", "SystemCallFilter=@system-service",
        f"CapabilityBoundingSet={caps}", f"AmbientCapabilities={caps}",
    ]
    if not app.devices:  # a GPU app keeps /dev (the NVIDIA device nodes)
        lines.append("PrivateDevices=yes")
    if app.writable_paths:
        lines.append("ReadWritePaths=" + " ".join(app.writable_paths))
    return lines


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

    def app_fragments(self, app: AppSpec, ctx: DeployContext, deps: tuple[str, ...] = ()) -> Fragments:
        if not app.sandbox:
            return Fragments(boot_plan=("the app runs as root without a sandbox (container.sandbox: false)",))
        # bootcmd: early on every boot, before write_files, so setup.files may be owned by the user
        return Fragments(
            bootcmd=(("systemd-sysusers", "--inline",
                      f'u {APP_USER} - "lcai app" {APP_HOME} /usr/sbin/nologin'),),
            boot_plan=(f"create the system user {APP_USER}; the app runs as it in a systemd sandbox "
                       f"(read-only system, writable {APP_HOME}"
                       + "".join(f", {p}" for p in app.writable_paths) + ")",),
        )

    def exec_start(self, app: AppSpec, ctx: DeployContext) -> list[str]:
        argv = list(app.command)
        if argv and not argv[0].startswith("/"):
            argv.insert(0, "/usr/bin/env")
        return argv

    def service_lines(self, app: AppSpec, ctx: DeployContext) -> str:
        lines = [f"EnvironmentFile={app.env_file}"]
        if app.sandbox:
            lines += sandbox_lines(app)
        return "".join(line + "\n" for line in lines)
