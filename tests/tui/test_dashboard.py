"""Dashboard behaviour with deterministic data (a fake provider, a clock the test moves): AGE moves on every
refresh, vim keys, the help lists every key, the columns fit 80 columns."""

import pytest
from textual.widgets import DataTable

from lcai_core import hookimpl
from lcai_core.plugins import Host
from lcai_core.providers import Listing, Provider
from lcai_core.registry import Registry

NOW = 1_767_000_000.0  # 2025-12-29 09:20:00 UTC
ROWS = [
    {"deployment_id": f"d{i}000000", "app": f"app-{i}", "env": "prod", "region": "us-ord", "type": "g6-standard-2",
     "live_status": "running", "health_status": "healthy", "created_at": "2025-12-29T07:20:00Z",
     "price_hourly": 0.036, "provider": "fake", "provider_state": {}}
    for i in range(1, 5)
]


class FakeProvider(Provider):
    name = "fake"

    def configured(self):
        return True

    def rows(self, records):
        return Listing([dict(r) for r in ROWS], "api")


class Plugin:
    @hookimpl
    def register_providers(self, register):
        register(FakeProvider())


@pytest.fixture
def clock():
    return [NOW]


@pytest.fixture
def app(tmp_path, clock):
    from lcai_tui.app import LcaiApp
    from lcai_tui.data import DataSource

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    return LcaiApp(DataSource(host=host, registry=Registry(tmp_path / "registry.json"), now=lambda: clock[0]),
                   refresh_s=3600, live_refresh=False)


async def settle(pilot, refreshes=1):
    app = pilot.app
    for _ in range(300):
        await pilot.pause(0.02)
        if app.refreshes >= refreshes and not app.workers:
            return
    raise AssertionError("did not settle")


def table(app) -> DataTable:
    return app.get_screen_dashboard().query_one(DataTable)


async def test_age_moves_on_even_when_nothing_else_changed(app, clock):
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        assert str(table(app).get_cell("d1000000", "age")) == "2h"
        clock[0] += 3 * 3600  # three hours later the provider answers exactly as before
        await pilot.press("r")
        await settle(pilot, refreshes=2)
        assert str(table(app).get_cell("d1000000", "age")) == "5h"


async def test_j_and_k_move_like_down_and_up(app):
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        t = table(app)
        assert t.cursor_row == 0
        await pilot.press("j", "j")
        assert t.cursor_row == 2
        await pilot.press("k")
        assert t.cursor_row == 1
        await pilot.press("G")
        assert t.cursor_row == 3
        await pilot.press("g")
        assert t.cursor_row == 0
        await pilot.press("slash", "j")  # in the filter box j is a letter
        assert app.filter_text == "j" and t.cursor_row == 0


async def test_help_lists_every_key(app):
    from lcai_tui import app as tui

    names = {"slash": "/", "question_mark": "?", "escape": "esc"}
    keys = set()
    for cls in (tui.Dashboard, tui.DetailScreen, tui.LogsScreen, tui.LcaiApp, tui.ConfirmDestroy, tui.HelpScreen):
        for b in cls.BINDINGS:
            keys.update(names.get(k.strip(), k.strip()) for k in b.key.split(","))
    keys |= {"enter"}  # DataTable's own: open the selected row
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        text = "\n".join(str(s.render()) for s in app.screen.query("Static"))
    shown = {tok for line in text.splitlines() for tok in line.split()}
    missing = sorted(k for k in keys if k not in shown and k not in ("y", "n"))
    assert not missing, missing
    assert "(y / n)" in text  # the confirmation's keys


def test_layout_keeps_the_essential_columns_at_80():
    from lcai_tui.app import COLUMNS, WIDTHS, layout

    narrow = dict(layout(80))
    assert {"id", "app", "status", "health", "age"} <= set(narrow)
    assert sum(w + 2 for w in narrow.values()) <= 80 - 2
    assert set(dict(layout(200))) == {k for k, _ in COLUMNS} and dict(layout(200)) == WIDTHS
    assert [k for k, _ in layout(80)] == [k for k, _ in COLUMNS if k in narrow]  # the usual order


@pytest.mark.parametrize("size", [(80, 24), (150, 24)])
async def test_columns_fit_without_horizontal_scrolling(app, size):
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        t = table(app)
        shown = [str(c.key.value) for c in t.columns.values()]
        assert {"id", "app", "status", "health", "age"} <= set(shown)
        assert t.virtual_size.width <= t.scrollable_content_region.width, (t.virtual_size, t.size)
        if size[0] >= 150:
            assert len(shown) == 9
        # resizing re-fits
        from lcai_tui.app import layout

        other = 150 if size[0] == 80 else 80
        await pilot.resize_terminal(other, 24)
        await pilot.pause(0.1)
        assert [str(c.key.value) for c in t.columns.values()] == [k for k, _ in layout(other)]
        assert t.virtual_size.width <= t.scrollable_content_region.width and t.row_count == 4
