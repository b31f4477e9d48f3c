"""Pilot tests of `lcai tui` against simulator-backed data (the real lcai-linode provider and registry)."""

import os

import pytest
from textual.widgets import DataTable, Input

from lcai_core.plugins import get_host
from lcai_core.registry import Registry
from lcai_testing import require_plugins




@pytest.fixture
def sim_rows(monkeypatch, lcai_config_dir, tmp_path):
    """A simulator with three lcai deployments made by the real deploy command."""
    monkeypatch.setenv("LCAI_RETRY_DELAY", "0")  # before the provider (and its retry policy) is created
    if "linode" not in get_host().providers:
        if os.environ.get("CI"):
            pytest.fail("lcai-linode is not installed")
        pytest.skip("lcai-linode is not installed")
    from lcai_core.cli import main
    from lcai_testing.linode.simulator import Simulator

    sim = Simulator(provision_s=0.0, boot_s=0.0, serve_health=False).start()
    monkeypatch.setenv("LCAI_LINODE_API_URL", sim.url)
    monkeypatch.setenv("LINODE_TOKEN", "sim-token")
    monkeypatch.setenv("HOME", str(tmp_path))
    for app, env in (("web", "prod"), ("web", "staging"), ("worker", "prod")):
        d = tmp_path / f"{app}-{env}"
        d.mkdir()
        (d / "deploy.yml").write_text("name: web\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n"
                                      "      internal_port: 80\n      external_port: 8080\n"
                                      "guidance:\n  examples:\n    - {description: Call it, command: 'curl http://{host}/'}\n")
        assert main(["deploy", "-d", str(d), "--yes", "--app", app, "--env", env]) == 0
    yield sim
    sim.stop()


def make_app(**kw):
    from lcai_tui.app import LcaiApp
    from lcai_tui.data import DataSource

    return LcaiApp(DataSource(), refresh_s=3600, **kw)


async def settle(pilot, app, refreshes=1):
    for _ in range(200):
        await pilot.pause(0.02)
        if app.refreshes >= refreshes and not app.workers:
            return
    raise AssertionError("the app did not settle")


def table_ids(app):
    table = app.get_screen_dashboard().query_one(DataTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


async def test_dashboard_lists_deployments_with_one_list_call(sim_rows):
    sim_rows.state.requests.clear()
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        assert len(table_ids(app)) == 3
        assert [r["path"] for r in sim_rows.state.requests] == ["/linode/instances"]
        apps = sorted(r["app"] for r in app.rows)
        assert apps == ["web", "web", "worker"]


async def test_navigation_detail_and_back(sim_rows):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await pilot.pause(0.1)
        from lcai_tui.app import DetailScreen

        assert isinstance(app.screen, DetailScreen)
        meta = str(app.screen.query_one("#meta").render())
        assert app.screen.row["deployment_id"] in meta and "ssh root@127.0.1." in meta
        assert "curl http://127.0.1." in str(app.screen.query_one("#guidance").render())  # {host} filled in
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "Dashboard"
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "Dashboard"


async def test_filter(sim_rows):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("slash")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"staging")
        await pilot.pause(0.05)
        ids = table_ids(app)
        assert len(ids) == 1 and app.row_by_id(ids[0])["env"] == "staging"
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert len(table_ids(app)) == 3


async def test_sort_and_refresh_picks_up_new_and_vanished(sim_rows):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("s")  # sort by APP
        apps = [app.row_by_id(i)["app"] for i in table_ids(app)]
        assert apps == sorted(apps)
        victim = app.rows[0]
        sim_rows.state.instances.pop(victim["provider_state"]["linode_id"])  # deleted behind lcai's back
        await pilot.press("r")
        await settle(pilot, app, refreshes=2)
        assert app.row_by_id(victim["deployment_id"])["live_status"] == "vanished"


async def test_destroy_cancel_then_confirm(sim_rows):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        target = app.selected_row()["deployment_id"]
        await pilot.press("ctrl+d")
        assert app.screen.__class__.__name__ == "ConfirmDestroy"
        await pilot.press("n")
        await pilot.pause(0.1)
        assert len(sim_rows.state.instances) == 3 and Registry().get(target) is not None
        await pilot.press("ctrl+d")
        await pilot.press("y")
        for _ in range(200):
            await pilot.pause(0.02)
            if Registry().get(target) is None and app.refreshes >= 2 and not app.workers:
                break
        assert len(sim_rows.state.instances) == 2 and Registry().get(target) is None
        assert target not in table_ids(app)


async def test_api_failure_is_a_notification_not_a_crash(sim_rows, monkeypatch):
    monkeypatch.setenv("LCAI_LINODE_API_URL", "http://127.0.0.1:9/v4")
    monkeypatch.setenv("LCAI_HTTP_TIMEOUT", "0.5")
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        assert len(table_ids(app)) == 3  # the registry is still shown
        assert any("showing the local registry" in n.message for n in app._notifications)
        await pilot.press("enter")
        await pilot.press("h")  # health check against an unreachable address: reported, not raised
        await pilot.pause(0.5)
        assert app.is_running


async def test_buildwatch_panel_on_detail_screen(sim_rows):
    """lcai-buildwatch adds a panel through the TUI's own hook, without importing Textual."""
    require_plugins("buildwatch")
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if "BuildWatch" in str(app.screen.query_one("#panels").render()):
                break
        assert "not installed on this deployment" in str(app.screen.query_one("#panels").render())
