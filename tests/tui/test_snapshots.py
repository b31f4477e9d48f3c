"""Snapshots of the three screens with deterministic data: a fake provider, a fixed clock, no cursor blink.
Update deliberately with: ./scripts/test.sh tests/tui --snapshot-update"""

import pytest

from lcai_core import hookimpl
from lcai_core.plugins import Host
from lcai_core.providers import Listing, Provider
from lcai_core.registry import Registry

NOW = 1_767_000_000.0  # 2025-12-29 09:20:00 UTC
ROWS = [
    {"deployment_id": "a1b2c3d4", "app": "llm-api", "env": "prod", "region": "us-ord", "type": "g2-gpu-rtx4000a1-s",
     "live_status": "running", "health_status": "healthy", "created_at": "2025-12-29T07:20:00Z", "price_hourly": 0.52,
     "address": "192.0.2.10", "external_port": 80, "provider": "linode", "provider_state": {"linode_id": 101},
     "label": "lcai-llm-api-prod-a1b2c3d4",
     "template": "llm-api", "features": ["gpu-nvidia", "buildwatch"]},
    {"deployment_id": "e5f6g7h8", "app": "embeddings", "env": "staging", "region": "de-fra-2",
     "type": "g6-dedicated-4", "live_status": "booting", "health_status": None, "created_at": "2025-12-29T09:18:30Z",
     "price_hourly": 0.108, "address": "192.0.2.11", "external_port": 8080, "provider": "linode",
     "provider_state": {"linode_id": 102}},
    {"deployment_id": "z9y8x7w6", "app": "old-job", "env": "prod", "region": "us-mia", "type": "g6-standard-2",
     "live_status": "vanished", "health_status": "unhealthy", "created_at": "2025-12-20T09:20:00Z",
     "price_hourly": 0.036, "provider": "linode", "provider_state": {"linode_id": 99}},
    {"deployment_id": "r3p1ic4s", "app": "embeddings-python", "env": "prod", "region": "us-ord",
     "type": "g6-standard-2", "live_status": "running", "health_status": "healthy", "replicas": 2,
     "replicas_healthy": 2, "created_at": "2025-12-29T08:20:00Z", "price_hourly": 0.087, "address": "192.0.2.12",
     "external_port": 80, "provider": "linode", "provider_state": {"linode_id": 103}},
]


class FakeProvider(Provider):
    name = "linode"

    def configured(self):
        return True

    def rows(self, records):
        return Listing([dict(r) for r in ROWS], "api")

    def detail(self, record):
        return [("instance", record["provider_state"]["linode_id"])]

    def destroy(self, record, say=lambda m: None):
        say("deleted")


class Plugin:
    @hookimpl
    def register_providers(self, register):
        register(FakeProvider())

    @hookimpl(optionalhook=True)
    def register_tui_panels(self, register):
        register("BuildWatch", lines=lambda d: ["OPEN  crash_loop      since 2025-12-29 08:02:11  app died 5 times in "
                                                "10 minutes (crash loop)"],
                 log_lines=lambda d, c: ((["2025-12-29 08:01:02  app        start",
                                           "2025-12-29 08:01:40  app        die exit=1"], 1) if c is None else ([], c)))


@pytest.fixture
def app(tmp_path):
    from lcai_tui.app import LcaiApp
    from lcai_tui.data import DataSource

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    return LcaiApp(DataSource(host=host, registry=Registry(tmp_path / "registry.json"), now=lambda: NOW),
                   refresh_s=3600, live_refresh=False)


async def _settled(pilot):
    app = pilot.app
    for _ in range(300):
        await pilot.pause(0.02)
        if app.refreshes >= 1 and not app.workers:
            return
    raise AssertionError("did not settle")


def test_dashboard_snapshot_80x24(app, snap_compare):
    """A classic terminal: ID, APP (`embeddings-python` whole), STATUS, HEALTH (`healthy 2/2` whole), AGE and
    $/H; TYPE, REGION and ENV hide."""
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def test_dashboard_snapshot_wide(app, snap_compare):
    """Every column at full width."""
    assert snap_compare(app, terminal_size=(150, 24), run_before=_settled)


def test_detail_snapshot(app, snap_compare):
    async def run_before(pilot):
        await _settled(pilot)
        await pilot.press("enter")
        await _settled(pilot)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(110, 30), run_before=run_before)


def test_logs_snapshot(app, snap_compare):
    async def run_before(pilot):
        await _settled(pilot)
        await pilot.press("l")
        await _settled(pilot)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(110, 16), run_before=run_before)
