"""The plugin host: hook specs → built-ins (as ordinary default plugins) → entry points (group ``lcai``).

A plugin that fails to import, implements a hook nobody specifies, raises in a registration hook, or registers
a name another distribution already holds (capability, provider, command) is reported in one line naming it
(``plugin lcai-foo 1.2: …``), listed as broken by ``lcai plugins``, and skipped: commands that do not need it
keep working. An exception escaping a plugin's code later (a command, ``check``, ``fragments``) is attributed
to the plugin by the CLI (``plugin_of_traceback``). ``LCAI_DISABLE_PLUGINS=a,b`` skips plugins by entry-point
or distribution name.

Every call into a plugin's code goes through ``Host.call``: hook implementations (``Host.each``) and provider
methods (``Host.call_provider``: ``rows``, ``configured``, ``detail``, ``destroy``, ``discover``). An exception
other than ``LcaiError`` becomes a ``PluginError`` naming the distribution and the call
(``plugin lcai-foo 1.2: rows(): RuntimeError: …``), which each caller reports without stopping the other
plugins. ``LCAI_TRACE_PLUGINS=1`` prints every such call to stderr: plugin, call, duration, outcome (never the
arguments: they may hold secrets).
"""

from __future__ import annotations

import os
import sys
import time
import types
from typing import Any, Callable, Iterator, Optional, cast

import pluggy

from . import hookspecs
from .errors import LcaiError, PluginError

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


TRACE_ENV = "LCAI_TRACE_PLUGINS"


def _tracing() -> bool:
    return os.environ.get(TRACE_ENV, "") not in ("", "0")


def _trace(info: "PluginInfo", call: str, seconds: float, outcome: str) -> None:
    """One line per plugin call on stderr: who, what, how long, how it ended; never the arguments."""
    try:
        sys.stderr.write(f"trace: plugin {info.dist} {info.version}".rstrip()
                         + f": {call} {seconds * 1000:.1f} ms {outcome}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed stderr must not turn a trace into a failure
        pass


class HookCall:
    """One plugin's implementation of a hook, called through ``Host.call`` (``hook_call(**kwargs)``)."""

    __slots__ = ("host", "info", "name", "hook", "function")

    def __init__(self, host: "Host", info: "PluginInfo", name: str, hook: str, function: Callable[..., Any]):
        self.host, self.info, self.name, self.hook, self.function = host, info, name, hook, function

    def __call__(self, **kwargs: Any) -> Any:
        return self.host.call(self.info, self.hook, self.function, **kwargs)


def _why(e: LcaiError) -> str:
    """What went wrong, without the ``plugin DIST VER: call:`` prefix (callers that name the plugin their way)."""
    return e.why if isinstance(e, PluginError) else e.message


def _failure(e: Exception) -> str:
    """``Type: message`` of what a plugin raised (through ``call``: the original exception's)."""
    if isinstance(e, PluginError):
        return e.why
    return f"{type(e).__name__}: {e}"


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


_Dists = list[tuple[str, str]]  # (info folder, entry_points.txt) of each distribution that has one
_scanned: dict[tuple, Optional[_Dists]] = {}
_clock = time.time_ns


def _distributions() -> Optional[_Dists]:
    """The ``entry_points.txt`` of every distribution on sys.path (the first of a name wins, as with
    importlib.metadata, which also keys on the folder's normalized name), or None when a sys.path entry is not
    a plain directory. Read once per process for each sys.path whose folders are unchanged (their mtimes: an
    install or uninstall adds or removes a folder), so ``lcai templates list``, which asks for two groups,
    scans once. A folder changed in the last two seconds is read again each time: its mtime may not have moved
    yet for a change made within the filesystem's timestamp granularity."""
    stamps = []
    for entry in sys.path:
        d = entry or "."
        try:
            stamps.append((d, os.stat(d).st_mtime_ns))
        except OSError:
            stamps.append((d, -1))
    key = tuple(stamps)
    recent = _clock() - 2_000_000_000
    cacheable = all(m < recent for _, m in stamps)
    if cacheable and key in _scanned:
        return _scanned[key]
    dists: _Dists = []
    seen: set[str] = set()
    result: Optional[_Dists] = dists
    for d, _ in stamps:
        if not os.path.isdir(d):
            if os.path.exists(d):
                result = None
                break
            continue
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            name = _norm(n.rsplit(".", 1)[0].split("-")[0])
            if name in seen:
                continue
            seen.add(name)
            info = os.path.join(d, n)
            try:
                with open(os.path.join(info, "entry_points.txt"), encoding="utf-8", errors="replace") as fh:
                    dists.append((info, fh.read()))
            except OSError:
                continue
    _scanned.clear()  # one sys.path at a time is enough
    if cacheable:
        _scanned[key] = result
    return result


def _entry_points(group: str = GROUP) -> list[EntryPoint]:
    """Entry points of ``group`` (default ``lcai``) — what ``importlib.metadata.entry_points(group="lcai")``
    returns, found by reading ``*.dist-info``/``*.egg-info`` folders on sys.path directly (the metadata machinery
    costs ~20 ms of start-up through the email package). Only the distributions whose ``entry_points.txt`` has
    the group get their METADATA read (for the name and version shown in diagnostics). Any sys.path entry that
    is not a plain directory (a zip, an egg) makes it fall back to importlib-metadata for the full answer."""
    dists = _distributions()
    if dists is None:
        return _entry_points_slow(group)
    header = f"[{group}]"
    out: list[EntryPoint] = []
    for info, text in dists:
        if header in text:
            dist, version = _meta(info)
            out.extend(EntryPoint(k, v, dist, version) for k, v in _parse_group(text, group))
    return sorted(out, key=lambda ep: ep.name)


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


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, finding the hook implementations of a module plugin (every entry point's) without
    ``inspect.getattr_static`` on each of its names: a module's attributes are its ``__dict__``, no descriptor
    runs, so a plain function there is read as pluggy would read it. Anything else goes to pluggy."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if type(plugin) is types.ModuleType:
            value = plugin.__dict__.get(name)
            if type(value) is types.FunctionType:
                opts = getattr(value, GROUP + "_impl", None)
                return opts if isinstance(opts, dict) else None
            if not isinstance(value, (staticmethod, classmethod, types.MethodType)):
                return None
        return super().parse_hookimpl_opts(plugin, name)


def _core_version() -> str:
    from . import __version__

    return __version__


class Host:
    """A loaded plugin manager plus what the plugins registered."""

    def __init__(self, load_entry_points: bool = True, extra_plugins: tuple = ()):
        self.pm = _PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.warnings: list[str] = []
        self.on_warning: Optional[Callable[[str], None]] = None
        self.command_owner: dict[str, PluginInfo] = {}
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
        self._sources: Optional[list[Any]] = None
        self._providers: Optional[dict[str, Any]] = None
        self._provider_info: dict[str, PluginInfo] = {}

    # ------------------------------------------------------------ calling plugins

    def call(self, info: PluginInfo, what: str, fn: Callable[..., Any], *args: Any,
             explained: tuple[type[BaseException], ...] = (LcaiError,), **kwargs: Any) -> Any:
        """Call one plugin's code ``fn`` (``what``: ``rows()``, ``register_providers``) — the one way lcai calls a
        plugin. Exceptions of the ``explained`` types (default ``LcaiError``: a failure the plugin explains to the
        user) pass through; any other becomes ``PluginError`` naming ``info``'s distribution and ``what``, with
        the original as its cause. Ctrl-C passes through. Traced with ``LCAI_TRACE_PLUGINS=1``."""
        start = time.perf_counter()
        outcome = "ok"
        try:
            return fn(*args, **kwargs)
        except BaseException as e:
            outcome = f"raised {type(e).__name__}"
            if isinstance(e, explained) or not isinstance(e, Exception):
                raise
            raise PluginError(info.dist, info.version, what, e) from e
        finally:
            if _tracing():
                _trace(info, what, time.perf_counter() - start, outcome)

    def each(self, hook: str) -> Iterator[HookCall]:
        """Every implementation of ``hook``, ordered by plugin name (never pluggy's LIFO registration order)."""
        caller = getattr(self.pm.hook, hook)
        for impl in sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name):
            info = self.info_of(impl.plugin) or PluginInfo(impl.plugin_name, impl.plugin_name, "", "")
            yield HookCall(self, info, impl.plugin_name, hook, impl.function)

    def provider_info(self, provider: Any) -> PluginInfo:
        """The plugin that registered ``provider`` (else the one whose package defines its class)."""
        name = getattr(provider, "name", "") or ""
        info = self._provider_info.get(name)
        if info is not None and self.providers.get(name) is provider:
            return info
        top = (type(provider).__module__ or "").split(".")[0]
        for i in self.plugins:
            mod = getattr(i.plugin, "__name__", None) or i.module.partition(":")[0]
            if mod.split(".")[0] == top:
                return i
        return PluginInfo(name or type(provider).__name__, f"provider {name or type(provider).__name__}", "", "")

    def call_provider(self, provider: Any, method: str, *args: Any,
                      explained: tuple[type[BaseException], ...] = (LcaiError,), **kwargs: Any) -> Any:
        """``provider.method(*args)`` through ``call``: a failure is attributed to the provider's plugin."""
        return self.call(self.provider_info(provider), f"{method}()", getattr(provider, method), *args,
                         explained=explained, **kwargs)

    def _broken(self, info: PluginInfo, error: str) -> None:
        first = info.status != "broken"
        info.status = "broken"
        info.error = error if first else f"{info.error}; {error}"
        msg = f"plugin {info.dist} {info.version}: {error} (skipped; see `lcai plugins`)"
        self.warnings.append(msg)
        if self.on_warning is not None:
            self.on_warning(msg)

    def info_of(self, plugin: Any) -> Optional[PluginInfo]:
        return next((i for i in self.plugins if i.plugin is plugin), None)

    def plugin_of_traceback(self, tb) -> Optional[PluginInfo]:
        """The plugin whose code raised: the innermost traceback frame in a plugin's package (not lcai-core)."""
        packages = {}
        for info in self.plugins:
            if info.dist == "lcai-core" or info.plugin is None:
                continue
            top = (getattr(info.plugin, "__name__", None) or info.module.partition(":")[0]).split(".")[0]
            packages[top] = info
        found = None
        while tb is not None:
            mod = tb.tb_frame.f_globals.get("__name__") or ""
            top = mod.split(".")[0]
            if top in packages:
                found = packages[top]
            tb = tb.tb_next
        return found

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
        for impl in self.each(hook):
            info = impl.info
            if info.status == "broken" and info.dist != "lcai-core":
                continue
            try:
                impl(**{argname: make_register(info)})
            except LcaiError as e:  # one plugin's failure is reported and skipped, never fatal to the others
                self._broken(info, f"{hook} failed: {_why(e)}")

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
            owner: dict[str, str] = {}

            def make(info: PluginInfo):
                def register(provider):
                    from .providers import Provider

                    name = getattr(provider, "name", None)
                    if not name or not isinstance(provider, Provider):
                        raise LcaiError(f"register_providers got {provider!r}, "
                                        "expected a lcai_core.Provider with a name")
                    if name in provs:
                        raise LcaiError(f"provider name {name!r} is registered by both {owner[name]} and "
                                        f"{info.dist} {info.version}".rstrip())
                    provs[name] = provider
                    owner[name] = f"{info.dist} {info.version}".strip()
                    self._provider_info[name] = info
                return register

            self.call_each("register_providers", make)
            self._providers = provs
        return self._providers

    def deployment_sections(self, deployment: dict) -> list[tuple[str, list[str]]]:
        """Extra sections plugins show for one deployment; a failing plugin becomes a section saying so."""
        out: list[tuple[str, list[str]]] = []
        for impl in self.each("deployment_sections"):
            try:
                # pluggy types a hook's result as object; hookspecs.deployment_sections declares its shape
                sections = cast(Optional[list[tuple[str, list[str]]]], impl(deployment=deployment))
                out.extend(sections or [])
            except Exception as e:  # one plugin's failure must not hide the deployment
                out.append((impl.name, [f"unavailable: {_failure(e)}"]))
        return out

    def add_commands(self, cli: Any, reserved: tuple = ()) -> None:
        """Let plugins attach commands; a name that core (``reserved``) or another distribution already holds is
        refused (the first keeps it) and the newcomer is reported broken, naming both."""
        for impl in self.each("register_commands"):
            info = impl.info
            if info.status == "broken":
                continue
            before = dict(cli.commands)
            try:
                impl(cli=cli)
            except Exception as e:  # a broken command plugin must not take the CLI down
                self._broken(info, f"register_commands failed: {_failure(e)}")
            for name, cmd in list(cli.commands.items()):
                if name in before and before[name] is cmd:
                    continue
                if name in reserved:
                    holder: str | None = "lcai-core"
                elif name in self.command_owner:
                    holder = f"{self.command_owner[name].dist} {self.command_owner[name].version}"
                else:
                    holder = None
                if holder is not None:
                    if name in before:
                        cli.commands[name] = before[name]
                    else:
                        del cli.commands[name]
                    self._broken(info,
                                 f"command {name!r} is registered by both {holder} and {info.dist} {info.version}")
                else:
                    self.command_owner[name] = info

    def self_check(self) -> None:
        """For `lcai plugins`: render each capability once with its default config, so a capability whose
        ``fragments`` raises is listed as broken (named) before a deploy meets it."""
        from .capabilities import DeployContext

        ctx = DeployContext(deployment_id="check000", app_name="check", env="default", image="linode/ubuntu24.04",
                            region="us-ord", type="g6-standard-2", template="check", runtime="docker",
                            container_image="example/app:1", features=(),
                            secret_seed=b"lcai-self-check")
        for name, reg in sorted(self.catalog.by_name.items()):
            cap = reg.capability
            info = next((i for i in self.plugins
                         if f"{i.dist} {i.version}".strip() == reg.plugin or i.dist == reg.plugin), None)
            try:
                config = cap.config_class() if cap.config_class is not None else None
            except TypeError:
                continue  # the config has required fields: nothing to render without a template
            try:
                self.call(info or PluginInfo(reg.plugin, reg.plugin, "", ""), f"capability {name!r}: fragments()",
                          cap.fragments, config, ctx)
            except PluginError as e:  # reported, named
                if info is not None:
                    self._broken(info, f"capability {name!r}: fragments() failed: {e.why}")
            except LcaiError:
                continue  # a refusal of the sample context (an image it does not support): not broken


_host: Optional[Host] = None
#: where the default host reports plugin problems as they are found (the CLI sets it to stderr)
report_warning: Optional[Callable[[str], None]] = None


def get_host() -> Host:
    global _host
    if _host is None:
        _host = Host()
        _host.on_warning = report_warning
        if report_warning is not None:
            for w in _host.warnings:
                report_warning(w)
    return _host


def reset_host() -> None:
    global _host
    _host = None
