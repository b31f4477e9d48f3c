"""Capabilities: named, configurable, pure producers of cloud-init ``Fragments``.

A capability is a pure function of (its config, the DeployContext) → Fragments. No I/O: a plan renders
without credentials, and tests need no machine. Plugins register capabilities through the
``register_capabilities`` hook; the ``Catalog`` owns names, aliases, provenance and validation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from attrs import define, field

from .errors import LcaiError, MissingPlugin, Problem

if TYPE_CHECKING:
    from .template import Template
    from .yamlfile import Document

Command = Union[str, tuple[str, ...]]


@define(frozen=True)
class WriteFile:
    path: str
    content: str
    permissions: str = "0644"
    owner: str = "root:root"
    defer: bool = False
    append: bool = False
    encoding: Optional[str] = None  # e.g. "gz+b64" for large payloads


@define(frozen=True)
class AptSource:
    """An apt source for cloud-init's ``apt.sources``; ``source`` may use ``$KEY_FILE`` and ``$RELEASE``."""

    name: str
    source: str
    key: Optional[str] = None
    keyid: Optional[str] = None


@define(frozen=True)
class Unit:
    """A systemd unit written to /etc/systemd/system and enabled (and started on boot 1 unless a reboot)."""

    name: str
    content: str
    enable: bool = True


@define(frozen=True)
class Fragments:
    bootcmd: tuple[Command, ...] = ()
    apt_sources: tuple[AptSource, ...] = ()
    packages: tuple[str, ...] = ()
    write_files: tuple[WriteFile, ...] = ()
    runcmd: tuple[Command, ...] = ()
    units: tuple[Unit, ...] = ()
    # Contributions to the app container / unit:
    container_env: dict[str, str] = field(factory=dict)
    docker_args: tuple[str, ...] = ()  # one option group, e.g. ("--add-host", "x:y"); identical groups merge
    app_requires: tuple[str, ...] = ()  # units the app starts after (After= + Requires=)
    gpu: bool = False  # the app container gets --gpus all
    reboot: bool = False  # one reboot at the end of boot 1 (power_state)
    boot_plan: tuple[str, ...] = ()  # one human line per step, printed by `lcai plan`


@define(frozen=True)
class MountedVolume:
    """A volume of the machine as a capability sees it (``DeployContext.volumes``): mounted at ``mount``
    before anything that requires it starts (``data_on_volume``)."""

    name: str
    mount: str
    label: str
    size_gb: int


@define(frozen=True)
class DeployContext:
    """What a capability may know about the deployment. Never read globals instead."""

    deployment_id: str
    app_name: str
    env: str = "default"
    image: str = "linode/ubuntu24.04"
    region: str = "us-ord"
    type: str = "g6-standard-2"
    template: str = ""
    runtime: str = "docker"
    container_image: Optional[str] = None
    features: tuple[str, ...] = ()
    secret_seed: bytes = field(default=b"", repr=False)
    # True when the instance gets SSH keys for root: password logins are then turned off (ssh_pwauth: false,
    # root by key only). False keeps the image's SSH settings (the root password is the only way in).
    ssh_keys: bool = False
    #: the template's volumes (``deploy.linode.volumes``), for capabilities that keep their data on one
    volumes: tuple[MountedVolume, ...] = ()

    def volume(self, name: str) -> Optional[MountedVolume]:
        """The machine's volume called ``name`` (a capability's ``config.volume``), or None."""
        return next((v for v in self.volumes if v.name == name), None)

    def secret(self, name: str, length: int = 32) -> str:
        """A per-deployment secret, stable for this context (so plan and deploy agree), URL-safe."""
        if not self.secret_seed:
            raise LcaiError("internal: DeployContext has no secret seed")
        raw = hmac.new(self.secret_seed, name.encode(), hashlib.sha256).digest()
        raw += hmac.new(self.secret_seed, raw, hashlib.sha256).digest()
        return base64.b32encode(raw).decode().lower().rstrip("=")[:length]

    @property
    def ubuntu_release(self) -> Optional[str]:
        m = re.match(r"^linode/ubuntu(\d\d\.\d\d)$", self.image)
        return m.group(1) if m else None

    @property
    def debian_release(self) -> Optional[str]:
        m = re.match(r"^linode/debian(\d+)$", self.image)
        return m.group(1) if m else None


def replicas_refusal(capability: str, n: int) -> str:
    """Why ``n`` replicas cannot run a capability that ``keeps_data``."""
    return (f"capability '{capability}' keeps its data on the machine: each of {n} replicas would hold its own, "
            "served in turn by the load balancer (and `lcai scale` down would delete one); use replicas: 1, or a "
            "database the replicas reach over the network")


class Capability:
    """Base class for capabilities. Subclasses set ``name`` and implement ``fragments``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "feature"  # "runtime" or "feature"
    summary: ClassVar[str] = ""
    config_class: ClassVar[Optional[type]] = None
    # alias name -> config values it implies (e.g. "postgresql-14": {"version": "14"})
    aliases: ClassVar[dict[str, dict[str, Any]]] = {}
    # Linode images it supports; None = any
    images: ClassVar[Optional[tuple[str, ...]]] = None
    # assembly order among features (lower first); ties broken by name, never by plugin load order
    order: ClassVar[int] = 50
    # True: the machine needs a GPU (providers without one refuse the template, saying why)
    requires_gpu: ClassVar[bool] = False
    # True: it keeps data on the machine (a database, a queue): replicas would each hold their own, served in
    # turn behind the load balancer, so a deployment with more than one replica is refused
    keeps_data: ClassVar[bool] = False

    # the names this capability puts in the app's environment (``Fragments.container_env``): a template may
    # reference them as ``${NAME}`` without declaring them (`lcai templates validate` checks references)
    provides_env: ClassVar[tuple[str, ...]] = ()

    def check(self, config: Any, template: "Template") -> list[str]:
        """Extra semantic checks: messages about this capability's use in ``template``."""
        return []

    def ports(self, config: Any) -> dict[str, int]:
        """The TCP ports this capability listens on on the instance, by config field (``{"port": 6379}``): the
        loader refuses two capabilities on one port, or one on the app's port (SSH's 22 is taken too)."""
        return {}

    def fragments(self, config: Any, ctx: DeployContext) -> Fragments:
        raise NotImplementedError(f"capability {self.name!r} does not implement fragments()")


class Runtime(Capability):
    """A runtime also says how the app is started: the app unit's ExecStart argv, extra [Service] lines,
    the env file format, and how an ``exec`` health check runs."""

    kind: ClassVar[str] = "runtime"
    publishes_ports: ClassVar[bool] = False  # True: internal_port is reached on the host via external_port

    def exec_start(self, app: "AppSpec", ctx: DeployContext) -> list[str]:
        raise NotImplementedError(f"runtime {self.name!r} does not implement exec_start()")

    def service_lines(self, app: "AppSpec", ctx: DeployContext) -> str:
        return ""

    def env_file_text(self, env: dict[str, str]) -> str:
        from .envfile import systemd_env_file

        return systemd_env_file(env)

    def exec_probe(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", command]

    def running_check(self, app: "AppSpec") -> str:
        """A shell condition, true once the app itself runs (the health wait's clock starts then)."""
        return "systemctl is-active --quiet lcai-app.service"

    def app_fragments(self, app: "AppSpec", ctx: DeployContext, deps: tuple[str, ...] = ()) -> "Fragments":
        """Extra pieces the runtime needs for this app (users, units, packages). ``deps``: the units the app
        requires that a unit of the runtime's may order after too (none of them orders after the app)."""
        return Fragments()


@define(frozen=True)
class AppSpec:
    """What the runtime needs to start the app (resolved from the template + fragments)."""

    image: Optional[str]
    command: tuple[str, ...]
    env_file: str
    ports: tuple[tuple[str, int], ...]  # (host side as docker -p takes it: "8080" or "127.0.0.1:8080", container)
    volumes: tuple[str, ...]
    docker_args: tuple[str, ...]
    gpu: bool
    container_name: str = "app"
    sandbox: bool = True  # native: dedicated user + systemd hardening (container.sandbox)
    writable_paths: tuple[str, ...] = ()  # native sandbox: extra ReadWritePaths= (container.writable_paths)
    devices: bool = False  # a capability needs the machine's devices (a GPU): no PrivateDevices=
    # For runtimes that render the app as objects of their own (k3s: a Secret, probes): the app's environment
    # (values are secrets: never printed), its health check (``template.Health`` or None) and its port.
    env: dict = field(factory=dict, repr=False, eq=False)
    health: Any = None
    internal_port: Optional[int] = None


@define(frozen=True)
class Resolved:
    capability: Capability
    config: Any
    name: str  # as written in the template (may be an alias)
    path: tuple  # where in the template it was declared


@define
class Registered:
    capability: Capability
    plugin: str  # distribution (or plugin) name that provided it


class Catalog:
    """All registered capabilities by name and alias, with provenance."""

    def __init__(self) -> None:
        self.by_name: dict[str, Registered] = {}
        self.alias_of: dict[str, tuple[str, dict[str, Any]]] = {}
        # the last template resolved, by identity: validation, prepare and the spec share one resolution
        self._last: Optional[tuple[Any, Any, tuple[list[Resolved], list[Problem]]]] = None

    def add(self, cap: Capability, plugin: str) -> None:
        if not isinstance(cap, Capability) or not cap.name:
            raise LcaiError(f"register_capabilities got {cap!r}, expected a Capability with a name")
        if cap.config_class is not None:
            import attrs

            if not (isinstance(cap.config_class, type) and attrs.has(cap.config_class)):
                raise LcaiError(f"capability {cap.name!r}: config_class {cap.config_class!r} is not an attrs class "
                                "(lcai validates configs strictly through attrs + cattrs)")
        for n in (cap.name, *cap.aliases):
            if n in self.by_name or n in self.alias_of:
                other = self.by_name[n].plugin if n in self.by_name else self.by_name[self.alias_of[n][0]].plugin
                raise LcaiError(f"capability name {n!r} is registered by both {other} and {plugin}",
                                hint="uninstall one of them, or disable it with LCAI_DISABLE_PLUGINS")
        self.by_name[cap.name] = Registered(cap, plugin)
        self._last = None
        for alias, cfg in cap.aliases.items():
            self.alias_of[alias] = (cap.name, dict(cfg))

    def names(self, kind: Optional[str] = None) -> list[str]:
        return sorted(n for n, r in self.by_name.items() if kind is None or r.capability.kind == kind)

    def lookup(self, name: str) -> Optional[tuple[Registered, dict[str, Any]]]:
        if name in self.by_name:
            return self.by_name[name], {}
        if name in self.alias_of:
            real, cfg = self.alias_of[name]
            return self.by_name[real], cfg
        return None

    @staticmethod
    def _unknown_problem(doc: "Document", path: tuple, name: str, message: str) -> Problem:
        """The problem of an unknown capability name: a ``MissingPlugin`` when a first-party plugin provides it."""
        from .first_party import CAPABILITIES

        p = doc.problem(path, message)
        if name in CAPABILITIES:
            return MissingPlugin(p.file, p.line, p.path, p.message, CAPABILITIES[name][0])
        return p

    def unknown_message(self, name: str, kind: str) -> str:
        # the first-party plugins' names, generated from their own declarations (scripts/first_party.py)
        from .first_party import CAPABILITIES

        if name in CAPABILITIES:
            dist = CAPABILITIES[name][0]
            return f"capability '{name}' is not installed (pip install {dist})"
        from .convert import did_you_mean

        choices = self.names(kind) + [a for a, (real, _) in self.alias_of.items()
                                      if self.by_name[real].capability.kind == kind]
        known = [n for n, (_, k) in CAPABILITIES.items() if k == kind]
        return (f"unknown {'runtime' if kind == 'runtime' else 'capability'} '{name}'"
                f"{did_you_mean(name, sorted(set(choices + known)))}"
                f" (installed: {', '.join(sorted(choices)) or 'none'})")

    # ------------------------------------------------------------ validation + resolution

    def check_template(self, tpl: "Template", doc: "Document") -> list[Problem]:
        _, problems = self._resolve(tpl, doc)
        return problems

    def resolve(self, tpl: "Template", doc: "Document | None" = None) -> list[Resolved]:
        from .errors import ValidationError
        from .yamlfile import Document

        last = self._last
        if doc is None and last is not None and last[0] is tpl:  # resolved already (its problems located)
            resolved, problems = list(last[2][0]), list(last[2][1])
        else:
            resolved, problems = self._resolve(tpl, doc or Document({}, tpl.name, {}))
        if problems:
            raise ValidationError(problems)
        return resolved

    def _resolve(self, tpl: "Template", doc: "Document") -> tuple[list[Resolved], list[Problem]]:
        last = self._last
        if last is not None and last[0] is tpl and last[1] is doc:
            return list(last[2][0]), list(last[2][1])
        out = self._resolve_anew(tpl, doc)
        self._last = (tpl, doc, (list(out[0]), list(out[1])))
        return out

    def _resolve_anew(self, tpl: "Template", doc: "Document") -> tuple[list[Resolved], list[Problem]]:
        from . import convert

        problems: list[Problem] = []
        runtime: list[Resolved] = []
        features: list[Resolved] = []
        rt_name = tpl.capabilities.runtime
        found = self.lookup(rt_name)
        rt_path = ("capabilities", "runtime")
        if found is None or found[0].capability.kind != "runtime":
            msg = self.unknown_message(rt_name, "runtime")
            if found is not None:
                msg = f"'{rt_name}' is a feature, not a runtime; runtimes: {', '.join(self.names('runtime'))}"
            problems.append(self._unknown_problem(doc, rt_path, rt_name, msg) if found is None else
                            doc.problem(rt_path, msg))
        else:
            runtime.append(Resolved(found[0].capability, None, rt_name, rt_path))

        for i, feat in enumerate(tpl.capabilities.features):
            path = ("capabilities", "features", i)
            found = self.lookup(feat.name)
            if found is None:
                problems.append(self._unknown_problem(doc, path, feat.name,
                                                      self.unknown_message(feat.name, "feature")))
                continue
            reg, alias_cfg = found
            cap = reg.capability
            if cap.kind == "runtime":
                problems.append(doc.problem(path, f"'{feat.name}' is a runtime; set it as capabilities.runtime"))
                continue
            raw = {**alias_cfg, **(feat.config or {})}
            cfg_path = path + ("config",)
            if cap.config_class is None:
                if feat.config:
                    problems.append(doc.problem(cfg_path, f"capability '{feat.name}' takes no config"))
                    continue
                config = None
            else:
                config, errs = convert.structure(raw, cap.config_class, doc, cfg_path)
                if errs:
                    problems.extend(errs)
                    continue
            features.append(Resolved(cap, config, feat.name, path))

        if tpl.capabilities.packages:
            found = self.lookup("apt-packages")
            if found is not None and found[0].capability.config_class is not None:
                cfg = found[0].capability.config_class(packages=tpl.capabilities.packages)
                features.append(Resolved(found[0].capability, cfg, "packages", ("capabilities", "packages")))

        # duplicates through aliases (postgresql + postgresql-14)
        seen: dict[str, Resolved] = {}
        for r in features:
            if r.capability.name in seen and r.name != seen[r.capability.name].name:  # same name: check() says it
                problems.append(doc.problem(
                    r.path, f"'{r.name}' and '{seen[r.capability.name].name}' are the same capability"))
            seen.setdefault(r.capability.name, r)

        for r in runtime + features:
            if r.capability.images is not None and tpl.deploy.linode.image not in r.capability.images:
                problems.append(doc.problem(("deploy", "linode", "image"),
                                            f"capability '{r.name}' supports only {', '.join(r.capability.images)}"))
            for item in r.capability.check(r.config, tpl):
                path, msg = item if isinstance(item, tuple) else (r.path, item)
                problems.append(doc.problem(path, msg))
        if tpl.deploy.linode.replicas > 1:
            for r in features:
                if r.capability.keeps_data:
                    problems.append(doc.problem(("deploy", "linode", "replicas"), replicas_refusal(
                        r.name, tpl.deploy.linode.replicas)))
        features.sort(key=lambda r: (r.capability.order, r.capability.name))
        return runtime + features, problems


# ---------------------------------------------------------------- a service's data on a volume

#: the boot step that puts a service's data directory on a volume (``data_on_volume``)
VOLUME_DATA = "/usr/local/lib/lcai/volume-data"
# $1 the volume's mount point, $2 its mount unit, $3 the directory on it, $4 the service's directory, $5 the bind
# mount unit of that directory, $6 owner:group, $7 a path kept data must hold ("-": any), $8... the services
VOLUME_DATA_SCRIPT = """#!/bin/sh
# lcai: keep a service's data directory on a Block Storage volume: a bind mount of a directory on the volume
# over the service's own; the data the package made at install moves there on the volume's first use, the data
# a volume already holds is kept (a redeploy's fresh disk never replaces it)
set -eu
mnt=$1 mnt_unit=$2 src=$3 dir=$4 dir_unit=$5 owner=$6 must=$7
shift 7
systemctl start "$mnt_unit"
if ! mountpoint -q "$mnt"; then
  echo "lcai: volume at $mnt is not mounted: $dir is not moved there, and $* do not start" >&2
  exit 1
fi
systemctl stop "$@"
if [ -d "$src" ]; then
  if [ "$must" != - ] && [ ! -e "$src/$must" ]; then
    echo "lcai: $src holds data without $must (another version's?): not using it; $* do not start" >&2
    exit 1
  fi
  echo "lcai: $dir: the data on the volume ($src) is kept"
else
  echo "lcai: $dir: its data moves to the volume ($src), once"
  rm -rf "$src.lcai-new"
  cp -a "$dir" "$src.lcai-new"
  mv "$src.lcai-new" "$src"
fi
[ "$(stat -c %U:%G "$src")" = "$owner" ] || chown -R "$owner" "$src"
systemctl start "$dir_unit"
"""


def escape_path(path: str) -> str:
    """``systemd-escape --path``: a path's unit name without its suffix."""
    parts = [p for p in path.split("/") if p]
    out = []
    for i, part in enumerate(parts):
        esc = ""
        for j, b in enumerate(part.encode()):
            c = chr(b)
            keep = (c.isascii() and c.isalnum()) or c in ":_" or (c == "." and not (i == 0 and j == 0))
            esc += c if keep else f"\\x{b:02x}"
        out.append(esc)
    return "-".join(out) or "-"


def data_on_volume(vol: MountedVolume, directory: str, owner: str, services: tuple[str, ...],
                   units: tuple[str, ...], subdir: str, must: str = "-") -> Fragments:
    """A service's data ``directory`` kept on ``vol``, in ``<mount>/<subdir>``: a bind mount of it over
    ``directory`` that every unit in ``units`` (templates like ``postgresql@.service`` too) requires
    (``RequiresMountsFor=``: with the volume missing, the service does not start on the root disk), and a
    boot step (put it first in the capability's runcmd) that stops ``services``, moves the data the package
    made there on the volume's first use or keeps what the volume holds (``must``: a path it must hold, e.g.
    ``15/main/PG_VERSION``), fixes ``owner`` and mounts it. Files are deferred (written after the packages: a
    package's own start at install runs on the root disk, then the step moves it)."""
    src = f"{vol.mount.rstrip('/')}/{subdir}"
    bind = escape_path(directory) + ".mount"
    files = [WriteFile(VOLUME_DATA, VOLUME_DATA_SCRIPT, permissions="0755"),
             WriteFile(f"/etc/systemd/system/{bind}",
                       f"[Unit]\nDescription=lcai: {directory} on volume {vol.name} ({vol.label})\n"
                       f"RequiresMountsFor={vol.mount}\n\n[Mount]\nWhat={src}\nWhere={directory}\nType=none\n"
                       "Options=bind\n", defer=True)]
    files += [WriteFile(f"/etc/systemd/system/{u}.d/lcai-volume.conf",
                        f"[Unit]\n# lcai: its data is on volume {vol.name}: never on the root disk in its place\n"
                        f"RequiresMountsFor={directory}\n", defer=True) for u in units]
    step = (VOLUME_DATA, vol.mount, escape_path(vol.mount) + ".mount", src, directory, bind, owner, must, *services)
    return Fragments(write_files=tuple(files), runcmd=(step,),
                     boot_plan=(f"{directory} on volume {vol.name} ({src}, bind-mounted): moved there on the volume's "
                                f"first use, kept by redeploys and destroy; {', '.join(services)} "
                                f"{'requires' if len(services) == 1 else 'require'} it",))


def volume_problems(name: Optional[str], template: Any) -> list[str]:
    """For a capability's ``check``: its ``config.volume`` (None: not on a volume) must name one of the
    template's volumes (``deploy.linode.volumes``)."""
    if name is None:
        return []
    have = [v.name for v in template.deploy.linode.volumes] if template is not None else []
    if name in have:
        return []
    return [f"config.volume: no volume named {name!r} in deploy.linode.volumes"
            + (f" (it has {', '.join(have)})" if have else " (the template has none: add one there)")]
