"""A provider plugin whose code raises does not take the other providers down: `lcai status` (and destroy, sync)
list the rest, name the broken plugin in one error line (`plugin DIST VER: method(): Type: message`) and exit 1.
`LCAI_TRACE_PLUGINS=1` prints every call into a plugin (plugin, call, duration), never its arguments."""

import json
import re
import sys
import textwrap

import pytest

from lcai_core.cli import main
from lcai_core.plugins import reset_host
from lcai_core.registry import Registry

PROVIDER = """
import os

from lcai_core.api import Listing, Provider, Remains, hookimpl


def broken(method):
    if method in os.environ.get("{env}", "").split(","):
        raise RuntimeError(f"boom in {{method}}")


class Cloud(Provider):
    name = "{name}"
    summary = "a test provider"

    def configured(self):
        broken("configured")
        return True

    def rows(self, records):
        broken("rows")
        return Listing([dict(r, live_status="stopped") for r in records.values()], "{name} api")

    def detail(self, record):
        broken("detail")
        return [("machine", "m-" + record["deployment_id"])]

    def destroy(self, record, say):
        broken("destroy")
        say("deleted")

    def remains(self, record):
        broken("remains")
        return Remains()

    def discover(self):
        broken("discover")
        return []


@hookimpl
def register_providers(register):
    register(Cloud())
"""


@pytest.fixture
def clouds(tmp_path, monkeypatch):
    """Two provider distributions on sys.path, lcai-goodcloud (provider goodcloud) and lcai-badcloud (provider
    badcloud), each with one deployment recorded; the methods named in BROKEN_BADCLOUD (comma-separated) raise."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for dist, name in (("lcai-goodcloud", "goodcloud"), ("lcai-badcloud", "badcloud")):
        pkg = dist.replace("-", "_")
        (site / pkg).mkdir()
        code = PROVIDER.format(name=name, env=f"BROKEN_{name.upper()}")
        (site / pkg / "__init__.py").write_text(textwrap.dedent(code))
        info = site / f"{pkg}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n\n")
        (info / "entry_points.txt").write_text(f"[lcai]\n{name} = {pkg}\n")
    reg = Registry()
    for dep, prov in (("good0001", "goodcloud"), ("bad00001", "badcloud")):
        reg.update(dep, create=True, provider=prov, app=f"app-{prov}", env="default", status="running",
                   created_at="2026-01-01T00:00:00Z", provider_state={"machine": f"m-{dep}"})
    reset_host()
    yield monkeypatch
    for mod in [m for m in sys.modules if m.startswith(("lcai_goodcloud", "lcai_badcloud"))]:
        del sys.modules[mod]
    reset_host()


def run(capsys, *args):
    reset_host()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def errors(err: str) -> list[str]:
    return [x for x in err.splitlines() if x.startswith("error:")]


def test_both_providers_work(clouds, capsys):
    code, out, err = run(capsys, "status")
    assert code == 0, err
    assert "good0001" in out and "bad00001" in out and errors(err) == []


@pytest.mark.parametrize("method", ["rows", "configured"])
def test_status_lists_the_others_when_a_provider_fails(clouds, capsys, method):
    clouds.setenv("BROKEN_BADCLOUD", method)
    code, out, err = run(capsys, "status")
    assert code == 1
    assert "good0001" in out  # the other provider's deployment, live
    assert "bad00001" in out  # the broken one's, as the registry has it
    assert errors(err) == [f"error: plugin lcai-badcloud 1.0: {method}(): RuntimeError: boom in {method}"]
    assert "LCAI_DISABLE_PLUGINS=lcai-badcloud" in err
    code, out, err = run(capsys, "status", "--json")
    assert code == 1
    data = json.loads(out)
    assert {d["deployment_id"] for d in data["deployments"]} == {"good0001", "bad00001"}
    assert data["plugin_errors"] == [f"plugin lcai-badcloud 1.0: {method}(): RuntimeError: boom in {method}"]


def test_status_one_shows_the_rest_when_detail_fails(clouds, capsys):
    clouds.setenv("BROKEN_BADCLOUD", "detail")
    code, out, err = run(capsys, "status", "bad00001")
    assert code == 1
    assert re.search(r"(?m)^deployment\s+bad00001$", out) and re.search(r"(?m)^provider\s+badcloud$", out)
    assert "m-bad00001" not in out
    assert errors(err) == ["error: plugin lcai-badcloud 1.0: detail(): RuntimeError: boom in detail"]
    code, out, err = run(capsys, "status", "good0001")
    assert code == 0, err
    assert "m-good0001" in out


def test_destroy_failure_is_named_and_keeps_the_record(clouds, capsys):
    clouds.setenv("BROKEN_BADCLOUD", "destroy")
    code, out, err = run(capsys, "destroy", "bad00001", "--yes")
    assert code == 1
    assert errors(err) == ["error: plugin lcai-badcloud 1.0: destroy(): RuntimeError: boom in destroy"]
    assert Registry().get("bad00001") is not None
    code, out, err = run(capsys, "destroy", "good0001", "--yes")
    assert code == 0, err
    assert "destroyed good0001" in out and Registry().get("good0001") is None


def test_destroy_confirmation_falls_back_when_detail_fails(clouds, capsys):
    clouds.setenv("BROKEN_BADCLOUD", "detail")
    code, out, err = run(capsys, "destroy", "bad00001", "--yes")
    assert code == 0, err
    assert "warning: plugin lcai-badcloud 1.0: detail(): RuntimeError: boom in detail" in err
    assert "destroyed bad00001" in out and Registry().get("bad00001") is None


def test_purge_removes_the_others_when_one_destroy_fails(clouds, capsys):
    reg = Registry()
    for dep in ("good0001", "bad00001"):
        reg.update(dep, status="vanished")

    clouds.setenv("BROKEN_BADCLOUD", "destroy")
    from lcai_core import lifecycle

    real = lifecycle.list_all

    def vanished(host, records, failures=None):  # both providers report their machine gone
        rows, listings = real(host, records, failures)
        return [dict(r, live_status="vanished") for r in rows], listings

    clouds.setattr(lifecycle, "list_all", vanished)
    code, out, err = run(capsys, "destroy", "--purge")
    assert code == 1
    assert "purged 1 vanished deployment(s): good0001" in out
    assert errors(err) == ["error: kept (cleanup failed, run `lcai destroy --purge` again): bad00001 "
                           "(plugin lcai-badcloud 1.0: destroy(): RuntimeError: boom in destroy)"]
    assert Registry().get("good0001") is None and Registry().get("bad00001") is not None


def test_sync_goes_on_when_discover_fails(clouds, capsys):
    clouds.setenv("BROKEN_BADCLOUD", "discover")
    code, out, err = run(capsys, "sync")
    assert code == 1
    assert "sync: 0 deployment(s) found" in out  # goodcloud was synced (it marks its record vanished)
    assert Registry().get("good0001")["status"] == "vanished"
    assert errors(err) == ["error: badcloud: plugin lcai-badcloud 1.0: discover(): RuntimeError: boom in discover "
                           "(its deployments were not synced)"]


def test_trace_names_each_call_and_never_its_arguments(clouds, capsys):
    clouds.setenv("LCAI_TRACE_PLUGINS", "1")
    clouds.setenv("BROKEN_BADCLOUD", "rows")
    code, out, err = run(capsys, "status")
    assert code == 1
    trace = [x for x in err.splitlines() if x.startswith("trace:")]
    assert any(re.fullmatch(r"trace: plugin lcai-goodcloud 1\.0: rows\(\) \d+\.\d ms ok", x) for x in trace), trace
    assert any(re.fullmatch(r"trace: plugin lcai-badcloud 1\.0: rows\(\) \d+\.\d ms raised RuntimeError", x)
               for x in trace), trace
    assert any(re.fullmatch(r"trace: plugin lcai-badcloud 1\.0: configured\(\) \d+\.\d ms ok", x) for x in trace)
    assert any(re.fullmatch(r"trace: plugin lcai-goodcloud 1\.0: register_providers \d+\.\d ms ok", x)
               for x in trace), trace
    assert not any("good0001" in x or "bad00001" in x or "boom" in x for x in trace)
    clouds.delenv("LCAI_TRACE_PLUGINS")
    code, out, err = run(capsys, "status")
    assert "trace:" not in err


def test_the_dashboard_names_a_broken_provider_and_shows_the_rest(clouds):
    pytest.importorskip("lcai_tui")
    from lcai_tui.data import DataSource

    clouds.setenv("BROKEN_BADCLOUD", "rows,detail")
    reset_host()
    data = DataSource()
    rows, source = data.rows()
    assert {r["deployment_id"] for r in rows} == {"good0001", "bad00001"}
    assert "badcloud: registry (rows() failed)" in source
    bad = next(r for r in rows if r["deployment_id"] == "bad00001")
    assert data.detail_fields(bad) == [("error", "plugin lcai-badcloud 1.0: detail(): RuntimeError: boom in detail")]
    good = next(r for r in rows if r["deployment_id"] == "good0001")
    assert ("machine", "m-good0001") in data.detail_fields(good)
