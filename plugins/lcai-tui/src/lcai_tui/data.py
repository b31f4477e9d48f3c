"""What the dashboard shows, gathered without Textual: deployments (registry + one provider list call),
destroy, health probes, plugin panels, logs, template guidance. Blocking calls; the app runs them in workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from lcai_core.api import LcaiError


class Panel:
    __slots__ = ("title", "lines", "log_lines", "plugin")

    def __init__(self, title: str, lines: Callable, log_lines: Optional[Callable] = None, plugin: str = ""):
        self.title, self.lines, self.log_lines, self.plugin = title, lines, log_lines, plugin


class DataSource:
    def __init__(self, host=None, registry=None, now: Optional[Callable[[], float]] = None):
        from lcai_core.api.frontend import Registry, get_host

        self.host = host or get_host()
        self.registry = registry or Registry()
        self.now = now or time.time
        self._panels: Optional[list[Panel]] = None
        self.health_history: dict[str, list[tuple[float, Optional[bool], str]]] = {}

    # ------------------------------------------------------------ deployments

    def provider(self, record: Optional[dict] = None):
        from lcai_core.api.frontend import provider_of

        return provider_of(self.host, record or {})

    def rows(self) -> tuple[list[dict], str]:
        """Every provider's deployments (each asked once), through the provider contract only."""
        from lcai_core.api.frontend import list_all

        rows, listings = list_all(self.host, self.registry.all())
        if not listings:
            return rows, "registry (no provider installed or configured)"
        unreached = [f"{n}: {lst.source}" for n, lst in listings if not lst.reached]
        if unreached:  # the app warns when the source is not live
            return rows, "registry (" + "; ".join(unreached) + ")"
        return rows, "; ".join(f"{n}: {lst.source}" for n, lst in listings)

    def destroy(self, row: dict) -> list[str]:
        from lcai_core.api.frontend import destroy

        said: list[str] = []
        removed = destroy(self.host, self.registry, row, said.append)
        if removed:
            said.append(f"removed {', '.join(removed)}")
        return said

    def probe(self, row: dict) -> tuple[Optional[bool], str]:
        from lcai_core.api.frontend import check_health

        result = check_health(self.provider(row), row)
        ok, detail = result.ok, f"{result.detail} ({result.source})"
        self.health_history.setdefault(row["deployment_id"], []).append((self.now(), ok, detail))
        if ok is not None and not row.get("untracked"):
            try:
                self.registry.update(row["deployment_id"], health_status="healthy" if ok else "unhealthy",
                                     health_detail=result.detail, health_source=result.source)
            except LcaiError:
                pass
        return ok, detail

    def detail_fields(self, row: dict) -> list[tuple[str, object]]:
        """The provider's own lines (instance, firewall, VM…) and how to reach the deployment."""
        from lcai_core.api.frontend import provider_detail

        try:
            prov = self.provider(row)
        except LcaiError:
            return []
        failures: list = []
        out = provider_detail(self.host, prov, row, failures)
        out += [("error", e.message) for e in failures]  # a broken provider plugin, named; the rest still shows
        ssh = prov.ssh(row)
        if ssh is not None:
            out.append(("ssh", ssh.describe()))
        return out

    def endpoint(self, row: dict) -> Optional[str]:
        try:
            ep = self.provider(row).app_endpoint(row)
        except LcaiError:
            return None
        return ep.url() if ep else None

    # ------------------------------------------------------------ plugin panels and logs

    def panels(self) -> list[Panel]:
        if self._panels is None:
            from . import hookspecs

            pm = self.host.pm
            caller = getattr(pm.hook, "register_tui_panels", None)
            if caller is None or not caller.has_spec():  # the TUI's own hook: specified when the TUI runs
                pm.add_hookspecs(hookspecs)
            found: list[Panel] = []

            def make(info):
                def register(title, lines, log_lines=None):
                    found.append(Panel(title, lines, log_lines, info.dist))
                return register

            self.host.call_each("register_tui_panels", make)
            self._panels = found
        return self._panels

    def panel_sections(self, row: dict) -> list[tuple[str, list[str]]]:
        out = []
        for p in self.panels():
            try:
                out.append((p.title, list(p.lines(row))))
            except Exception as e:  # a plugin's panel failing must not break the screen
                out.append((p.title, [f"unavailable: {type(e).__name__}: {e}"]))
        return out

    def log_lines(self, row: dict, cursor) -> tuple[list[str], object]:
        sources = [p for p in self.panels() if p.log_lines is not None]
        if not sources:
            return (["no log source: install lcai-buildwatch and add the buildwatch capability"], cursor) \
                if cursor is None else ([], cursor)
        lines: list[str] = []
        cursor = cursor or {}
        for p in sources:
            new, cursor[p.title] = p.log_lines(row, cursor.get(p.title))
            lines.extend(new)
        return lines, cursor

    # ------------------------------------------------------------ the template's guidance

    def guidance(self, row: dict) -> list[str]:
        from lcai_core.api.frontend import load_template

        d = row.get("directory")
        path = Path(d) / "deploy.yml" if d else None
        if not path or not path.is_file():
            return []
        try:
            tpl = load_template(path)
        except LcaiError:
            return []
        url = self.endpoint(row)
        if url:
            host_port = url.split("//", 1)[1].rstrip("/")
        else:
            host_port = str(row.get("address") or "{host}")
        out = [tpl.guidance.summary.strip()] if tpl.guidance.summary else []
        for ex in tpl.guidance.examples:
            out += [f"# {ex.description}", ex.command.replace("{host}", host_port)]
        return out


def endpoint(row: dict) -> Optional[str]:
    """The app's URL for a row, through its provider (None when it has no public port)."""
    from lcai_core.api.frontend import get_host, provider_of

    try:
        ep = provider_of(get_host(), row).app_endpoint(row)
    except LcaiError:
        return None
    return ep.url() if ep else None
