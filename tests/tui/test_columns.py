"""The dashboard's columns at 80 and 120 columns, read from the rendered screen: STATUS, HEALTH (`healthy 2/2`
whole) and $/H always show, a long app name stays whole or ends in "…", a wider status or health widens its
column; the detail screen shows the cost."""

import io

import pytest

from lcai_core import hookimpl
from lcai_core.plugins import Host
from lcai_core.providers import Listing, Provider
from lcai_core.registry import Registry

NOW = 1_767_000_000.0  # 2025-12-29 09:20:00 UTC
BASE = [
    {"deployment_id": "a1b2c3d4", "app": "llm-api", "env": "prod", "region": "us-ord", "type": "g2-gpu-rtx4000a1-s",
     "live_status": "running", "health_status": "healthy", "created_at": "2025-12-29T07:20:00Z", "price_hourly": 0.52,
     "price_monthly": 350.0, "provider": "fake", "provider_state": {}},
    {"deployment_id": "e5f6g7h8", "app": "embeddings-python", "env": "staging", "region": "de-fra-2",
     "type": "g6-standard-2", "live_status": "running", "health_status": "healthy", "replicas": 2,
     "replicas_healthy": 2, "created_at": "2025-12-29T08:20:00Z", "price_hourly": 0.087, "price_monthly": 58.0,
     "provider": "fake", "provider_state": {}},
    {"deployment_id": "z9y8x7w6", "app": "old-job", "env": "prod", "region": "us-mia", "type": "g6-standard-2",
     "live_status": "provisioning", "health_status": None, "created_at": "2025-12-29T09:18:30Z",
     "price_hourly": 0.036, "provider": "fake", "provider_state": {}},
]
WIDER = [  # a later refresh: an untracked deployment and one with 12 replicas
    {"deployment_id": "u0000001", "app": "adopted", "env": "prod", "region": "us-ord", "type": "g6-standard-2",
     "live_status": "running", "untracked": True, "health_status": "healthy", "created_at": "2025-12-29T06:20:00Z",
     "price_hourly": 0.036, "provider": "fake", "provider_state": {}},
    {"deployment_id": "w1200000", "app": "web", "env": "prod", "region": "us-ord", "type": "g6-standard-2",
     "live_status": "running", "health_status": "healthy", "replicas": 12, "replicas_healthy": 12,
     "created_at": "2025-12-29T05:20:00Z", "price_hourly": 0.447, "provider": "fake", "provider_state": {}},
]


class FakeProvider(Provider):
    name = "fake"

    def __init__(self, rows):
        self._rows = rows

    def configured(self):
        return True

    def rows(self, records):
        return Listing([dict(r) for r in self._rows], "api")


@pytest.fixture
def rows():
    return list(BASE)


@pytest.fixture
def app(tmp_path, rows):
    from lcai_tui.app import LcaiApp
    from lcai_tui.data import DataSource

    class Plugin:
        @hookimpl
        def register_providers(self, register):
            register(FakeProvider(rows))

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    return LcaiApp(DataSource(host=host, registry=Registry(tmp_path / "registry.json"), now=lambda: NOW),
                   refresh_s=3600, live_refresh=False)


async def settle(pilot, refreshes=1):
    app = pilot.app
    for _ in range(300):
        await pilot.pause(0.02)
        if app.refreshes >= refreshes and not app.workers:
            return
    raise AssertionError("did not settle")


def screen_text(app) -> list[str]:
    """The screen as the terminal shows it (what App.export_screenshot draws, as plain text)."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


def table_lines(app) -> tuple[str, dict[str, str]]:
    lines = screen_text(app)
    header = next(x for x in lines if x.split()[:2] == ["ID", "APP"])
    return header, {x.split()[0]: x for x in lines if x.split() and x.split()[0] in {r["deployment_id"] for r in
                                                                                 BASE + WIDER}}


@pytest.mark.parametrize("width", [80, 120])
async def test_status_health_and_price_show_whole_at_80_and_120(app, width):
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        header, rows = table_lines(app)
        cols = header.split()
        assert {"ID", "APP", "STATUS", "HEALTH", "$/H", "AGE"} <= set(cols), header
        row = rows["e5f6g7h8"]
        assert row.index("healthy 2/2") == header.index("HEALTH"), (header, row)
        assert row.index("running") == header.index("STATUS") and "embeddings-python" in row
        assert row.split()[-1] == "0.087" and rows["a1b2c3d4"].split()[-1] == "0.520"
        assert rows["z9y8x7w6"].index("provisioning") == header.index("STATUS")
        if width == 120:  # every column; TYPE, read last, gives way first: shortened with "…"
            assert cols == ["ID", "APP", "ENV", "REGION", "TYPE", "STATUS", "HEALTH", "AGE", "$/H"]
            assert " g2-gpu-rtx4000…  running " in rows["a1b2c3d4"]
        else:
            assert "TYPE" not in cols and "REGION" not in cols


async def test_resizing_to_80_keeps_the_price_and_health(app):
    async with app.run_test(size=(150, 24)) as pilot:
        await settle(pilot)
        assert "TYPE" in table_lines(app)[0].split()
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        header, rows = table_lines(app)
        assert "TYPE" not in header.split() and {"STATUS", "HEALTH", "$/H"} <= set(header.split())
        assert rows["e5f6g7h8"].index("healthy 2/2") == header.index("HEALTH")
        assert rows["e5f6g7h8"].split()[-1] == "0.087"


async def test_a_wider_status_or_health_widens_its_column(app, rows):
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        rows.extend(WIDER)  # the next refresh brings `running (untracked)` and `healthy 12/12`
        await pilot.press("r")
        await settle(pilot, refreshes=2)
        header, shown = table_lines(app)
        assert shown["u0000001"].index("running (untracked)") == header.index("STATUS"), (header, shown)
        assert shown["w1200000"].index("healthy 12/12") == header.index("HEALTH")
        assert shown["e5f6g7h8"].index("healthy 2/2") == header.index("HEALTH")
        assert "$/H" in header.split() and shown["w1200000"].split()[-1] == "0.447"


async def test_a_narrow_window_ends_a_long_app_name_with_an_ellipsis(app):
    async with app.run_test(size=(54, 24)) as pilot:
        await settle(pilot)
        header, rows = table_lines(app)
        assert header.split()[:4] == ["ID", "APP", "STATUS", "HEALTH"]
        row = rows["e5f6g7h8"]
        assert row.split()[1] == "embeddings-…"  # shortened, not wrapped onto a second line
        assert len([x for x in screen_text(app) if "embeddings" in x]) == 1
        assert row.index("healthy 2/2") == header.index("HEALTH")


async def test_the_detail_screen_shows_the_cost_at_80x24(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j", "enter")
        await pilot.pause(0.2)
        lines = screen_text(app)
        assert any(x.split() == ["app", "embeddings-python"] for x in lines), lines
        assert any(x.split() == ["cost", "$0.087/h", "($58/mo)"] for x in lines), lines


HOSTILE = {"deployment_id": "a0000000", "app": "evil\x1b]0;pwned\x07", "env": "e\u202ex", "region": "us-ord",
           "type": "g6\x1b[2J", "live_status": "running\x1b[31m", "health_status": "healthy", "label": "l\x1b[5m",
           "created_at": "2025-12-29T09:10:00Z", "price_hourly": 0.036, "provider": "fake", "provider_state": {}}


async def test_control_characters_from_the_account_are_shown_escaped(app, rows):
    """A label, tag or status with a terminal sequence (issue 21 item 11) is drawn as `lcai status` prints it
    (`\\x1b`), in the table and on the detail screen, never sent to the terminal."""
    rows.insert(0, HOSTILE)
    async with app.run_test(size=(200, 24)) as pilot:
        await settle(pilot)
        text = "\n".join(screen_text(app))
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
        assert "evil\\x1b]0;pwned\\x07" in text and "e\\u202ex" in text, text
        await pilot.press("enter")
        await pilot.pause(0.2)
        text = "\n".join(screen_text(app))
        assert "\x1b" not in text and "\u202e" not in text and "l\\x1b[5m" in text, text
