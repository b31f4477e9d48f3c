"""The plugin host: hook specs → built-ins (as ordinary default plugins) → entry points (group ``lcai``).

A plugin that fails to import, or implements a hook nobody specifies, is reported (a warning, and
``lcai plugins`` lists it as broken) and skipped — never fatal. ``LCAI_DISABLE_PLUGINS=a,b`` skips plugins
by entry-point or distribution name.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

import pluggy

from . import hookspecs

GROUP = "lcai"
DEFAULT_PLUGINS = ("lcai_core.builtin",)


class PluginInfo:
    __slots__ = ("name", "dist", "version", "module", "hooks", "status", "error", "plugin")

    def __init__(self, name: str, dist: str, version: str, module: str, status: str = "ok",
                 error: str = "", plugin: Any = None):
        self.name, self.dist, self.version, self.module = name, dist, version, module
        self.status, self.error, self.plugin = status, error, plugin
        self.hooks: list[str] = []

    def as_dict(self) -> dict:
        return {"name": self.name, "distribution": self.dist, "version": self.version, "module": self.module,
                "hooks": self.hooks, "status": self.status, "error": self.error}


def _disabled() -> set[str]:
    return {x.strip() for x in os.environ.get("LCAI_DISABLE_PLUGINS", "").split(",") if x.strip()}


class EntryPoint:
    """An ``lcai`` entry point with its distribution's name and version (read without importing it)."""

    __slots__ = ("name", "value", "dist_name", "version")

    def __init__(self, name: str, value: str, dist_name: str, version: str):
        self.name, self.value, self.dist_name, self.version = name, value, dist_name, version

    def load(self):
        import importlib

        mod, _, attr = self.value.partition(":")
        obj = importlib.import_module(mod.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_group(text: str, group: str) -> list[tuple[str, str]]:
    out, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
            continue
        if inside and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


def _meta(info_dir: str) -> tuple[str, str]:
    name = version = ""
    for fname in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, fname), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Name:") and not name:
                        name = line[5:].strip()
                    elif line.startswith("Version:") and not version:
                        version = line[8:].strip()
                    elif not line.strip():
                        break
            break
        except OSError:
            continue
    return name, version


def _entry_points(group: str = GROUP) -> list[EntryPoint]:
    """Entry points of ``group`` (default ``lcai``) — what ``importlib.metadata.entry_points(group="lcai")`` returns, found by
    reading ``*.dist-info``/``*.egg-info`` folders on sys.path directly (the metadata machinery costs ~20 ms of
    start-up through the email package; this costs ~1 ms). Any sys.path entry that is not a plain directory
    (a zip, an egg) makes it fall back to importlib-metadata for the full answer."""
    found: dict[str, list[EntryPoint]] = {}
    for entry in sys.path:
        d = entry or "."
        if not os.path.isdir(d):
            if os.path.exists(d):
                return _entry_points_slow(group)
            continue
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            info = os.path.join(d, n)
            ep_file = os.path.join(info, "entry_points.txt")
            if not os.path.isfile(ep_file):
                continue
            dist, version = _meta(info)
            key = _norm(dist or n.split("-")[0])
            if key in found:
                continue  # the first distribution of a name on sys.path wins, as with importlib.metadata
            with open(ep_file, encoding="utf-8", errors="replace") as fh:
                pairs = _parse_group(fh.read(), group)
            found[key] = [EntryPoint(k, v, dist, version) for k, v in pairs]
    return sorted((ep for eps in found.values() for ep in eps), key=lambda ep: ep.name)


def _entry_points_slow(group: str = GROUP) -> list[EntryPoint]:
    if sys.version_info >= (3, 12):
        from importlib.metadata import entry_points
    else:
        from importlib_metadata import entry_points
    out = []
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        out.append(EntryPoint(ep.name, ep.value, dist.metadata["Name"] if dist else ep.name,
                              dist.version if dist else "?"))
    return sorted(out, key=lambda ep: ep.name)


def _core_version() -> str:
    from . import __version__

    return __version__


class Host:
    """A loaded plugin manager plus what the plugins registered."""

    def __init__(self, load_entry_points: bool = True, extra_plugins: tuple = ()):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.warnings: list[str] = []
        disabled = _disabled()
        for modname in DEFAULT_PLUGINS:
            import importlib

            mod = importlib.import_module(modname)
            self.pm.register(mod, name=modname)
            self.plugins.append(PluginInfo(modname, "lcai-core", _core_version(), modname, plugin=mod))
        if load_entry_points:
            for ep in _entry_points():
                dname = ep.dist_name or ep.name
                info = PluginInfo(ep.name, dname, ep.version or "?", ep.value)
                self.plugins.append(info)
                if ep.name in disabled or dname in disabled:
                    info.status = "disabled"
                    continue
                try:
                    plugin = ep.load()
                    self.pm.register(plugin, name=ep.name)
                    info.plugin = plugin
                except Exception as e:  # a broken plugin must not break lcai
                    self._broken(info, f"{type(e).__name__}: {e}")
        for plugin in extra_plugins:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            self.pm.register(plugin, name=name)
            self.plugins.append(PluginInfo(name, name, "", name, plugin=plugin))
        self._check_pending()
        for info in self.plugins:
            if info.status == "ok" and info.plugin is not None:
                info.hooks = sorted(h.name for h in self.pm.get_hookcallers(info.plugin) or [])
        self._catalog = None
        self._sources = None
        self._providers = None

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "broken", error
        msg = f"plugin {info.name} ({info.dist} {info.version}) is broken and was skipped: {error}"
        self.warnings.append(msg)

    def _check_pending(self) -> None:
        """Like ``pm.check_pending()``, but a plugin with a misspelt hook is reported and unregistered."""
        try:
            self.pm.check_pending()
            return
        except pluggy.PluginValidationError:
            pass
        for name in dir(self.pm.hook):
            if name.startswith("_"):
                continue
            caller = getattr(self.pm.hook, name)
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                info = next((i for i in self.plugins if i.plugin is impl.plugin), None)
                if info is not None and info.status == "ok":
                    self._broken(info, f"implements unknown hook '{name}' (misspelt?)")
                if self.pm.is_registered(impl.plugin):
                    self.pm.unregister(impl.plugin)

    def call_each(self, hook: str, make_register: Callable[[PluginInfo], Callable], argname: str = "register") -> None:
        """Call each implementation of ``hook`` with a ``register`` bound to that plugin (for provenance).
        Order: plugin name — never pluggy's registration (LIFO) order."""
        caller = getattr(self.pm.hook, hook)
        impls = sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name)
        for impl in impls:
            info = next((i for i in self.plugins if i.plugin is impl.plugin), None) or PluginInfo(
                impl.plugin_name, impl.plugin_name, "", "")
            impl.function(**{argname: make_register(info)})

    # ------------------------------------------------------------ what plugins registered

    @property
    def catalog(self):
        if self._catalog is None:
            from .capabilities import Catalog

            cat = Catalog()
            self.call_each("register_capabilities", lambda info: (lambda cap: cat.add(cap, info.dist)))
            self._catalog = cat
        return self._catalog

    @property
    def template_sources(self) -> list:
        if self._sources is None:
            sources: list = []

            def make(info: PluginInfo):
                def register(source):
                    source.plugin = source.plugin or f"{info.dist} {info.version}".strip()
                    sources.append(source)
                return register

            self.call_each("register_template_sources", make)
            self._sources = sources
        return self._sources

    @property
    def providers(self) -> dict:
        if self._providers is None:
            provs: dict = {}

            def make(info: PluginInfo):
                def register(provider):
                    name = getattr(provider, "name", None)
                    if not name:
                        from .errors import LcaiError

                        raise LcaiError(f"plugin {info.name}: register_providers got a provider without a name")
                    provs[name] = provider
                return register

            self.call_each("register_providers", make)
            self._providers = provs
        return self._providers

    def deployment_sections(self, deployment: dict) -> list[tuple[str, list[str]]]:
        """Extra sections plugins show for one deployment; a failing plugin becomes a section saying so."""
        out: list[tuple[str, list[str]]] = []
        for impl in sorted(self.pm.hook.deployment_sections.get_hookimpls(), key=lambda i: i.plugin_name):
            try:
                out.extend(impl.function(deployment=deployment) or [])
            except Exception as e:  # one plugin's failure must not hide the deployment
                out.append((impl.plugin_name, [f"unavailable: {type(e).__name__}: {e}"]))
        return out

    def add_commands(self, cli: Any) -> None:
        for impl in sorted(self.pm.hook.register_commands.get_hookimpls(), key=lambda i: i.plugin_name):
            try:
                impl.function(cli=cli)
            except Exception as e:  # a broken command plugin must not take the CLI down
                info = next((i for i in self.plugins if i.plugin is impl.plugin), None)
                if info is not None:
                    self._broken(info, f"register_commands failed: {type(e).__name__}: {e}")


_host: Optional[Host] = None


def get_host() -> Host:
    global _host
    if _host is None:
        _host = Host()
    return _host


def make_plugin_manager() -> pluggy.PluginManager:
    """The loaded ``pluggy.PluginManager`` (specs → built-ins → entry points → check_pending)."""
    return get_host().pm


def reset_host() -> None:
    global _host
    _host = None
