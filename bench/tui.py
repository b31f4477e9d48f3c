"""`lcai tui` with 500 deployments: time to render the table and to apply a refresh (filter/sort included),
measured inside a headless Textual app with a fake provider (no network). Prints medians.

  python bench/tui.py [--deployments 500]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def run(n: int) -> None:
    from lcai_core import hookimpl
    from lcai_core.plugins import Host
    from lcai_core.providers import Listing, Provider
    from lcai_core.registry import Registry
    from lcai_tui.app import LcaiApp
    from lcai_tui.data import DataSource

    now = 1_767_000_000.0
    statuses = ["running", "running", "running", "booting", "vanished", "offline"]
    rows = [{"deployment_id": f"d{i:07d}", "app": f"app-{i % 37}", "env": ["prod", "staging", "dev"][i % 3],
             "region": ["us-ord", "de-fra-2", "us-mia"][i % 3], "type": "g6-standard-2",
             "live_status": statuses[i % len(statuses)], "health_status": ["healthy", "unhealthy", None][i % 3],
             "created_at": f"2025-12-{1 + i % 28:02d}T09:20:00Z", "price_hourly": 0.036, "address": "192.0.2.1",
             "provider": "linode", "provider_state": {"linode_id": i}} for i in range(n)]

    class Fake(Provider):
        name = "linode"
        calls = 0

        def configured(self):
            return True

        def rows(self, records):
            Fake.calls += 1
            return Listing([dict(r) for r in rows], "api")

    class Plugin:
        @hookimpl
        def register_providers(self, register):
            register(Fake())

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    app = LcaiApp(DataSource(host=host, registry=Registry(Path(tempfile.mkdtemp()) / "r.json"), now=lambda: now),
                  refresh_s=3600, live_refresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.refreshes < 1 or app.workers:
            await pilot.pause(0.01)
        renders, refreshes, filtered = [], [], []
        for _ in range(15):
            t0 = time.perf_counter()
            app.render_rows()
            await pilot.pause()
            renders.append(time.perf_counter() - t0)
        for _ in range(10):
            before = app.refreshes
            t0 = time.perf_counter()
            app.refresh_rows()
            while app.refreshes == before or app.workers:
                await pilot.pause(0.001)
            refreshes.append(time.perf_counter() - t0)
        rebuilds = []
        for _ in range(10):  # a sort change reorders every row: a full rebuild of the table
            app.sort_index = (app.sort_index + 1) % 9
            t0 = time.perf_counter()
            app.render_rows()
            await pilot.pause()
            rebuilds.append(time.perf_counter() - t0)
        app.sort_index = 0
        app.filter_text = "staging"
        for _ in range(10):
            t0 = time.perf_counter()
            app.render_rows()
            await pilot.pause()
            filtered.append(time.perf_counter() - t0)
        visible = len(app.visible_rows())
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"deployments                  {n}")
    print(f"re-render, same rows         {med(renders):7.1f} ms median of {len(renders)} (changed cells only)")
    print(f"full rebuild (sort change)   {med(rebuilds):7.1f} ms median of {len(rebuilds)}")
    print(f"refresh (worker + apply)     {med(refreshes):7.1f} ms median of {len(refreshes)} "
          f"({Fake.calls} provider list calls in total: one per refresh)")
    print(f"filter to {visible:<4} rows           {med(filtered):7.1f} ms median of {len(filtered)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deployments", type=int, default=500)
    asyncio.run(run(ap.parse_args().deployments))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
