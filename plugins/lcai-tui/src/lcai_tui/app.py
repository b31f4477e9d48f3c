"""The Textual app: dashboard → detail → logs, k9s-style keys (`/` filter, `?` help, `esc` back, `ctrl+d`
delete with confirm). Every API call runs in a worker thread; errors become notifications, never crashes."""

from __future__ import annotations

from typing import Optional

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, RichLog, Static

from lcai_core.api.frontend import age, fit_widths, printable, status_style

from .data import DataSource

COLUMNS = [("id", "ID"), ("app", "APP"), ("env", "ENV"), ("region", "REGION"), ("type", "TYPE"),
           ("status", "STATUS"), ("health", "HEALTH"), ("age", "AGE"), ("price", "$/H")]
# fixed widths: DataTable then skips measuring every cell (500 rows: ~380 ms → see bench/tui.py); STATUS and
# HEALTH widen when a row needs it (`running (untracked)`, `healthy 12/12`): they are never cut
WIDTHS = {"id": 8, "app": 20, "env": 10, "region": 12, "type": 20, "status": 13, "health": 11, "age": 5, "price": 6}
# narrower terminals: the columns in the order a user reads them; the last gives way first (it shrinks to its
# MINIMUM, its cells ending in "…", then hides): TYPE, then REGION, ENV, AGE, $/H; ID, STATUS, HEALTH and APP
# always show
PRIORITY = ["id", "status", "health", "app", "price", "age", "env", "region", "type"]
KEEP = ("id", "status", "health", "app")
MINIMUM = {"app": 10, "type": 10, "region": 8, "env": 7}
CELL_PADDING = 2  # DataTable's default cell_padding of 1 on each side
SCROLLBAR = 2


def layout(width: int, longest: Optional[dict[str, int]] = None) -> list[tuple[str, int]]:
    """The columns (key, width) that fit ``width`` terminal columns, in COLUMNS order (see PRIORITY).
    ``longest``: the longest STATUS and HEALTH cells of the rows, which widen those columns past WIDTHS."""
    natural = dict(WIDTHS)
    for k, n in (longest or {}).items():
        natural[k] = max(natural[k], n)
    fit = fit_widths(natural, PRIORITY, width - SCROLLBAR - CELL_PADDING, gap=CELL_PADDING, minimum=MINIMUM,
                     keep=KEEP)
    return [(k, fit[k]) for k, _ in COLUMNS if k in fit]


def longest(rows: list[dict]) -> dict[str, int]:
    """The widths the never-cut columns (STATUS, HEALTH) need for these rows."""
    texts = [_status_health(r)[1:] for r in rows]
    return {"status": max((len(s) for s, _ in texts), default=0), "health": max((len(h) for _, h in texts), default=0)}


def _status_health(row: dict) -> tuple[str, str, str]:
    """(the status word, the STATUS cell, the HEALTH cell) of a row."""
    status = row.get("live_status") or row.get("status") or "-"
    shown = "✗ vanished" if status == "vanished" else status + (" (untracked)" if row.get("untracked") else "")
    health = row.get("health_status") or "-"
    if row.get("replicas") is not None:  # replicas behind a NodeBalancer: its view at the last check
        k = row.get("replicas_healthy")
        health = f"healthy {'?' if k is None else k}/{row['replicas']}"
    return status, shown, health


def esc(value: object) -> str:
    """``value`` for a Textual markup string: control characters escaped as `lcai status` prints them
    (``printable``), every ``[`` escaped (Rich's ``escape`` leaves ``[2J`` alone, which Textual then misreads:
    a label's ``\\x1b[2J`` broke the detail screen)."""
    return printable(value).replace("[", "\\[")


def cells(row: dict, now: float) -> dict:
    """The row's cells as Text (plain strings would be parsed as Rich markup on every render), control characters
    from the account (labels, tags) escaped as `lcai status` shows them."""
    status, shown, health = _status_health(row)
    price = row.get("price_hourly")
    plain = {"id": row["deployment_id"], "app": row.get("app") or "-", "env": row.get("env") or "-",
             "region": row.get("region") or "-", "type": row.get("type") or "-",
             "age": age(row.get("created_at"), now),
             "price": f"{price:.3f}" if isinstance(price, (int, float)) else "-"}
    # a cell wider than its column ends in "…" (never wraps, never cut mid-word without a mark)
    out = {k: Text(printable(v), no_wrap=True, overflow="ellipsis") for k, v in plain.items()}
    out["status"] = Text(printable(shown), style=status_style(status))  # the CLI's colours (api.frontend.status_style)
    out["health"] = Text(printable(health), style=status_style(health))
    return out


def _cost(row: dict) -> Optional[str]:
    """The detail screen's price line: ``$0.52/h`` as `lcai status ID` gives it, and the monthly price when the
    provider gave one (``$0.52/h ($350/mo)``; replicas: the instances and their NodeBalancer)."""
    price, monthly = row.get("price_hourly"), row.get("price_monthly")
    if not isinstance(price, (int, float)):
        return None
    return f"${price}/h" + (f" (${monthly:g}/mo)" if isinstance(monthly, (int, float)) else "")


HELP_KEYS = [
    ("j / down", "next row (detail, logs: scroll)"), ("k / up", "previous row (detail, logs: scroll)"),
    ("g / home", "first row"), ("G / end", "last row"), ("enter", "open a deployment"),
    ("/", "filter (esc clears)"), ("s", "sort by the next column (or click a header)"), ("r", "refresh now"),
    ("l", "logs of the selected deployment"), ("h", "re-check health (detail)"), ("c", "copy the endpoint (detail)"),
    ("ctrl+d", "destroy, after confirmation (y / n)"), ("esc", "back, close, clear the filter"),
    ("?", "this help"), ("q", "quit (in help: close)"),
]


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        yield Vertical(Static("[b]lcai tui — keys[/b]"),
                       Static("\n".join(f"  [b]{escape(k):<9}[/b] {v}" for k, v in HELP_KEYS)), id="help")


class ConfirmDestroy(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, row: dict):
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        r = self.row
        what = [f"{k} {v}" for k, v in self.app.data.detail_fields(r) if k != "ssh"] or [
            f"deployment {r['deployment_id']} on {r.get('provider') or 'its provider'}"]
        what += ["its entry in this machine's registry", "the files deploy wrote into its directory"]
        yield Vertical(
            Label(f"[b]Destroy deployment {r['deployment_id']}[/b] ({esc(r.get('app'))}, "
                  f"{esc(r.get('env'))})?"),
            Static("This deletes:\n" + "\n".join(f"  • {esc(w)}" for w in what)),
            Horizontal(Button("Destroy (y)", variant="error", id="yes"), Button("Cancel (n)", id="no")),
            id="confirm")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


VIM_SCROLL = [Binding("j", "scroll('down')", "down", show=False), Binding("k", "scroll('up')", "up", show=False)]


class LogsScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back"), *VIM_SCROLL]

    def action_scroll(self, direction: str) -> None:
        log = self.query_one(RichLog)
        log.scroll_down() if direction == "down" else log.scroll_up()

    def __init__(self, row: dict, interval: float):
        super().__init__()
        self.row, self.interval, self.cursor = row, interval, None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"logs of {self.row['deployment_id']} ({esc(self.row.get('app'))})", id="title")
        yield RichLog(id="log", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.fetch()
        self.set_interval(self.interval, self.fetch)

    @work(thread=True, exclusive=True, group="logs")
    def fetch(self) -> None:
        try:
            lines, self.cursor = self.app.data.log_lines(self.row, self.cursor)
        except Exception as e:  # shown, never raised: the screen stays usable
            self.app.call_from_thread(self.app.notify, f"logs: {e}", severity="error")
            return
        self.app.call_from_thread(self._append, lines)

    def _append(self, lines: list[str]) -> None:
        log = self.query_one(RichLog)
        for line in lines:
            log.write(line)


class DetailScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("h", "health", "re-check health"),
                Binding("c", "copy", "copy endpoint"), Binding("l", "logs", "logs"),
                Binding("ctrl+d", "destroy", "destroy"), *VIM_SCROLL]

    def action_scroll(self, direction: str) -> None:
        box = self.query_one("#detail", VerticalScroll)
        box.scroll_down() if direction == "down" else box.scroll_up()

    def __init__(self, row: dict):
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(self._meta(), id="meta")
            yield Static("", id="health")
            yield Static("", id="panels")
            yield Static(self._guidance(), id="guidance")
        yield Footer()

    def _meta(self) -> str:
        r = self.row
        ep = self.app.data.endpoint(r)
        fields = [("deployment", r["deployment_id"]), ("provider", r.get("provider")), ("app", r.get("app")),
                  ("env", r.get("env")), ("template", r.get("template")), ("status", r.get("live_status")),
                  ("region", r.get("region")), ("type", r.get("type")), ("cost", _cost(r)), ("label", r.get("label")),
                  ("address", r.get("address")), ("endpoint", ep), *self.app.data.detail_fields(r),
                  ("created", r.get("created_at")), ("directory", r.get("directory"))]
        return "\n".join(f"[b]{k:<11}[/b] {esc(v)}" for k, v in fields if v not in (None, ""))

    def _guidance(self) -> str:
        lines = self.app.data.guidance(self.row)
        return ("[b]usage[/b]\n" + "\n".join(esc(x) for x in lines)) if lines else ""

    def on_mount(self) -> None:
        self._show_health()
        self.load_panels()

    def _show_health(self) -> None:
        hist = self.app.data.health_history.get(self.row["deployment_id"], [])
        lines = [f"[b]health[/b] {esc(self.row.get('health_status') or 'not checked yet')}"]
        for _t, ok, detail in hist[-5:]:
            mark = "[green]ok[/green]" if ok else ("[red]failing[/red]" if ok is False else "n/a")
            lines.append(f"  {mark} {esc(detail)}")
        self.query_one("#health", Static).update("\n".join(lines))

    @work(thread=True, exclusive=True, group="panels")
    def load_panels(self) -> None:
        sections = self.app.data.panel_sections(self.row)
        text = "\n".join(f"[b]{esc(t)}[/b]\n" + "\n".join(f"  {esc(x)}" for x in lines)
                         for t, lines in sections)
        self.app.call_from_thread(self.query_one("#panels", Static).update, text)

    @work(thread=True, exclusive=True, group="health")
    def action_health(self) -> None:
        try:
            ok, detail = self.app.data.probe(self.row)
        except Exception as e:
            self.app.call_from_thread(self.app.notify, f"health check: {e}", severity="error")
            return
        self.row["health_status"] = "healthy" if ok else ("unhealthy" if ok is False else self.row.get("health_status"))
        self.app.call_from_thread(self._show_health)

    def action_copy(self) -> None:
        ep = self.app.data.endpoint(self.row) or dict(self.app.data.detail_fields(self.row)).get("ssh")
        if ep is None:
            self.app.notify("no endpoint yet", severity="warning")
            return
        self.app.copy_to_clipboard(ep)
        self.app.notify(f"copied {ep}")

    def action_logs(self) -> None:
        self.app.push_screen(LogsScreen(self.row, self.app.refresh_s))

    def action_destroy(self) -> None:
        self.app.confirm_destroy(self.row)


class Dashboard(Screen):
    AUTO_FOCUS = "#deployments"
    BINDINGS = [Binding("slash", "filter", "filter"), Binding("s", "sort", "sort"), Binding("r", "refresh", "refresh"),
                Binding("l", "logs", "logs"), Binding("ctrl+d", "destroy", "destroy"),
                Binding("escape", "clear_filter", "clear filter", show=False),
                Binding("j", "move('down')", "down", show=False), Binding("k", "move('up')", "up", show=False),
                Binding("g", "move('top')", "first", show=False), Binding("G", "move('bottom')", "last", show=False)]

    def action_move(self, where: str) -> None:
        table = self.query_one(DataTable)
        if where == "down":
            table.action_cursor_down()
        elif where == "up":
            table.action_cursor_up()
        elif table.row_count:
            table.move_cursor(row=0 if where == "top" else table.row_count - 1)

    def on_resize(self, event) -> None:
        self.app.fit_columns(event.size.width)

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="deployments", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter: id, app, env, region, type, status", id="filter")
        yield Static("", id="source")
        yield Footer()

    def on_mount(self) -> None:
        self.app.fit_columns(self.app.size.width)
        self.query_one("#filter", Input).display = False
        self.app.refresh_rows()  # the first load, once the columns exist

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.app.filter_text = event.value.strip().lower()
        self.app.render_rows()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#filter", Input).display = bool(event.value)
        self.query_one(DataTable).focus()

    def action_sort(self) -> None:
        self.app.sort_index = (self.app.sort_index + 1) % len(COLUMNS)
        self.app.render_rows()
        self.app.notify(f"sorted by {COLUMNS[self.app.sort_index][1]}", timeout=2)

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        keys = [k for k, _ in COLUMNS]
        idx = keys.index(str(event.column_key.value))
        self.app.sort_reverse = (not self.app.sort_reverse) if idx == self.app.sort_index else False
        self.app.sort_index = idx
        self.app.render_rows()

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.app.row_by_id(str(event.row_key.value))
        if row is not None:
            self.app.push_screen(DetailScreen(row))

    def action_refresh(self) -> None:
        self.app.refresh_rows()

    def action_logs(self) -> None:
        row = self.app.selected_row()
        if row is not None:
            self.app.push_screen(LogsScreen(row, self.app.refresh_s))

    def action_destroy(self) -> None:
        row = self.app.selected_row()
        if row is not None:
            self.app.confirm_destroy(row)


class LcaiApp(App):
    TITLE = "lcai"
    CSS = """
    #deployments { height: 1fr; }
    #source { height: 1; color: $text-muted; padding: 0 1; }
    #filter { dock: bottom; }
    #help, #confirm { width: 72; height: auto; border: thick $accent; background: $panel; padding: 1 2; }
    HelpScreen, ConfirmDestroy { align: center middle; }
    #confirm Horizontal { height: auto; margin-top: 1; }
    #confirm Button { margin-right: 2; }
    #detail Static { margin-bottom: 1; }
    #title { padding: 0 1; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("question_mark", "help", "help")]

    def __init__(self, data: DataSource, refresh_s: float = 10.0, live_refresh: bool = True):
        super().__init__()
        self.data = data
        self.refresh_s = refresh_s
        self.live_refresh = live_refresh
        self.rows: list[dict] = []
        self.source = ""
        self.filter_text = ""
        self.sort_index = 0
        self.sort_reverse = False
        self.refreshes = 0
        self._shown_keys: list[str] = []
        self._shown_cells: dict[str, dict] = {}
        self.columns: list[tuple[str, int]] = []  # what the table shows now: layout(width, longest(...))
        self._width: Optional[int] = None

    def on_mount(self) -> None:
        self.push_screen(Dashboard())
        if self.live_refresh and self.refresh_s > 0:
            self.set_interval(self.refresh_s, self.refresh_rows)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # ------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="refresh")
    def refresh_rows(self) -> None:
        try:
            rows, source = self.data.rows()
        except Exception as e:  # an API or registry failure is a notification, never a crash
            self.call_from_thread(self.notify, f"refresh failed: {e}", severity="error")
            return
        self.call_from_thread(self._apply_rows, rows, source)

    def _apply_rows(self, rows: list[dict], source: str) -> None:
        self.rows, self.source = rows, source
        self.refreshes += 1
        if "registry" in source:
            self.notify(f"showing the local registry: {source}", severity="warning", timeout=4)
        # always: the AGE column moves on even when nothing else changed (only changed cells are redrawn);
        # a longer status or health (`running (untracked)`, `healthy 10/10`) widens its column first
        if not self.fit_columns():
            self.render_rows()

    def fit_columns(self, width: Optional[int] = None) -> bool:
        """Show the columns that fit ``width`` (default: the last width seen) and the rows' STATUS and HEALTH
        whole (see :func:`layout`); rebuilds the table (and renders the rows) only when the columns change."""
        if width is not None:
            self._width = width
        try:
            table = self.get_screen_dashboard().query_one(DataTable)
        except LookupError:
            return False
        cols = layout(self._width or self.size.width, longest(self.rows))
        if cols == self.columns and table.columns:
            return False
        self.columns = cols
        labels = dict(COLUMNS)
        table.clear(columns=True)
        for key, w in cols:
            table.add_column(labels[key], key=key, width=w)
        self._shown_keys = []  # the next render adds every row again
        self.render_rows()
        return True

    def visible_rows(self) -> list[dict]:
        return [r for r, _ in self._visible()]

    def _visible(self) -> list[tuple[dict, dict]]:
        """(row, cells) after the filter, in sort order; cells are computed once per row."""
        now = self.data.now()
        out = []
        for r in self.rows:
            c = cells(r, now)
            if self.filter_text and self.filter_text not in " ".join(str(v).lower() for v in c.values()):
                continue
            out.append((r, c))
        key = COLUMNS[self.sort_index][0]

        def sort_key(rc):
            r, c = rc
            if key == "age":
                return r.get("created_at") or ""
            if key == "price":
                return r.get("price_hourly") or 0
            return str(c[key])

        return sorted(out, key=sort_key, reverse=self.sort_reverse)

    def render_rows(self) -> None:
        try:
            dash = self.get_screen_dashboard()
        except LookupError:
            return
        table = dash.query_one(DataTable)
        if not table.columns:
            return
        selected = self.selected_row()
        pairs = self._visible()
        visible = [r for r, _ in pairs]
        keys = [r["deployment_id"] for r in visible]
        if keys == self._shown_keys:
            # same rows in the same order: touch only the cells that changed (a status, a health, an age)
            for r, c in pairs:
                old = self._shown_cells.get(r["deployment_id"], {})
                for k, _ in self.columns:
                    if old.get(k) != c[k]:
                        table.update_cell(r["deployment_id"], k, c[k])
        else:
            table.clear()
            for r, c in pairs:
                table.add_row(*[c[k] for k, _ in self.columns], key=r["deployment_id"])
        self._shown_keys = keys
        self._shown_cells = {r["deployment_id"]: c for r, c in pairs}
        if selected is not None:
            ids = [r["deployment_id"] for r in visible]
            if selected["deployment_id"] in ids:
                table.move_cursor(row=ids.index(selected["deployment_id"]))
        shown = f"{len(visible)} of {len(self.rows)}" if self.filter_text else f"{len(self.rows)}"
        dash.query_one("#source", Static).update(
            f"{shown} deployment(s) · source: {esc(self.source)} · sorted by {COLUMNS[self.sort_index][1]}"
            + (f" · filter: {esc(self.filter_text)}" if self.filter_text else ""))

    def get_screen_dashboard(self) -> Dashboard:
        for screen in self.screen_stack:
            if isinstance(screen, Dashboard):
                return screen
        raise LookupError("no dashboard")

    def row_by_id(self, dep_id: str) -> Optional[dict]:
        return next((r for r in self.rows if r["deployment_id"] == dep_id), None)

    def selected_row(self) -> Optional[dict]:
        try:
            table = self.get_screen_dashboard().query_one(DataTable)
        except LookupError:
            return None
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.row_by_id(str(key.value))

    # ------------------------------------------------------------ destroy

    def confirm_destroy(self, row: dict) -> None:
        def done(yes: Optional[bool]) -> None:
            if yes:
                self.destroy(row)
            else:
                self.notify(f"kept {row['deployment_id']}", timeout=2)

        self.push_screen(ConfirmDestroy(row), done)

    @work(thread=True, group="destroy")
    def destroy(self, row: dict) -> None:
        try:
            said = self.data.destroy(row)
        except Exception as e:
            self.call_from_thread(self.notify, f"destroy {row['deployment_id']} failed: {e}", severity="error")
            return
        self.call_from_thread(self._destroyed, row, said)

    def _destroyed(self, row: dict, said: list[str]) -> None:
        self.notify(f"destroyed {row['deployment_id']}: " + "; ".join(said))
        while not isinstance(self.screen, Dashboard) and len(self.screen_stack) > 1:
            self.pop_screen()
        self.refresh_rows()
