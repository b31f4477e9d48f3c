"""`status ID` and `status --json` say what a deployment has cost so far: its hourly price times the hours since
it was created, and what that leaves out (issue 23 #3, the user's side, in part)."""

import json
import time
from datetime import datetime, timezone

from lcai_core.cli import main
from lcai_core.registry import Registry


def test_cost_so_far(lcai_config_dir, capsys):
    two_hours_ago = datetime.fromtimestamp(time.time() - 7200, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    Registry().update("cost0001", create=True, provider="nowhere", app="gpu", env="prod", status="running",
                      price_hourly=0.52, created_at=two_hours_ago)
    main(["status", "cost0001"])
    out = capsys.readouterr().out
    assert "$0.52/h, about $1.04 so far" in out and "transfer and volumes not counted" in out, out
    main(["status", "--all", "--json"])
    rows = json.loads(capsys.readouterr().out)["deployments"]
    assert rows[0]["cost_so_far"] == 1.04
