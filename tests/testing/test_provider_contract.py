"""The provider conformance kit (lcai_testing.provider_contract): docs/providers.md's example provider passes it
(built from the docs and pip-installed, as test_contract.py does); a provider with one deliberately broken
rule fails that rule, its message naming the rule; docs/providers.md lists every rule the kit has."""

import re
import sys
from pathlib import Path

import pytest

from lcai_testing import install_distribution
from lcai_testing.provider_contract import RULES, ProviderContract

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- the docs' example provider


@pytest.fixture(scope="module")
def toycloud_site(tmp_path_factory):
    """docs/providers.md's two blocks, exactly as written, installed (no deps) into a directory."""
    text = (ROOT / "docs" / "providers.md").read_text()
    py = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    toml = re.findall(r"```toml\n(.*?)```", text, re.S)[0]
    src = tmp_path_factory.mktemp("toy-src")
    (src / "src" / "lcai_toycloud").mkdir(parents=True)
    (src / "src" / "lcai_toycloud" / "__init__.py").write_text(py)
    (src / "pyproject.toml").write_text(toml)
    site = tmp_path_factory.mktemp("toy-site")
    install_distribution(src, site)
    return site


class TestDocsExampleConformance(ProviderContract):
    @pytest.fixture
    def provider(self, toycloud_site, tmp_path, monkeypatch):
        """The example as lcai loads it: through its entry point and the register_providers hook."""
        from lcai_core.plugins import get_host, reset_host

        monkeypatch.syspath_prepend(str(toycloud_site))
        monkeypatch.setenv("TOYCLOUD_DIR", str(tmp_path / "toy-db"))
        reset_host()
        yield get_host().providers["toycloud"]
        for mod in [m for m in sys.modules if m.startswith("lcai_toycloud")]:
            del sys.modules[mod]
        reset_host()


def test_the_docs_conformance_snippet_runs_the_kit_on_the_example(toycloud_site, pytester, monkeypatch):
    """docs/providers.md's "Conformance" example, as written, run by pytest (no plugin but pytest's own)."""
    text = (ROOT / "docs" / "providers.md").read_text()
    snippet = re.findall(r"```\n(.*?)```", text.split("\n## Conformance\n", 1)[1], re.S)[0]
    monkeypatch.syspath_prepend(str(toycloud_site))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_conformance=snippet)
    try:
        result = pytester.inline_run("-p", "no:cacheprovider")
    finally:
        for mod in [m for m in sys.modules if m.startswith("lcai_toycloud")]:
            del sys.modules[mod]
    passed, skipped, failed = result.listoutcomes()
    assert not failed and len(passed) == len(RULES) - 4
    assert sorted(r.nodeid.split("::")[-1][:8] for r in skipped) == ["test_c14", "test_c25", "test_c30", "test_c31"]


def test_purge_leaves_a_create_in_progress_of_the_docs_example(toycloud_site, tmp_path, monkeypatch, capsys):
    """What C11 protects: a deployment recorded `creating` whose first step runs in another lcai is `creating?`,
    so `lcai destroy --purge` keeps it (it used to be `vanished`, and purge forgot it mid-create)."""
    from lcai_core.cli import main
    from lcai_core.plugins import reset_host
    from lcai_core.registry import Registry

    monkeypatch.syspath_prepend(str(toycloud_site))
    monkeypatch.setenv("TOYCLOUD_DIR", str(tmp_path / "toy-db"))
    reset_host()
    try:
        Registry().update("tb0inprog", create=True, provider="toycloud", status="creating", provider_state={})
        Registry().update("tb0vanish", create=True, provider="toycloud", status="running",
                          provider_state={"machine": "tb0vanish"})
        assert main(["destroy", "--purge"]) == 0
        out = capsys.readouterr().out
        assert "purged 1 vanished deployment(s): tb0vanish" in out, out
        assert list(Registry().all()) == ["tb0inprog"]
    finally:
        for mod in [m for m in sys.modules if m.startswith("lcai_toycloud")]:
            del sys.modules[mod]
        reset_host()


TOY_TEMPLATE = ("name: toy\nversion: {v}\ndeploy:\n  target: toycloud\n  linode:\n    container:\n"
                "      image: nginx:1.27\n      internal_port: 80\n")


def test_redeploy_of_a_vanished_machine_of_the_docs_example_fails_in_one_actionable_line(
        toycloud_site, tmp_path, monkeypatch, capsys):
    """What C29 protects: the machine is gone (deleted outside lcai) and the directory is redeployed: the user
    reads the provider's reason and core's hint, and the record says the rebuild failed (it used to read
    `plugin lcai-toycloud 0.1.0: KeyError`, a bug report, and the record stayed `rebuilding`)."""
    import json

    from lcai_core.cli import main
    from lcai_core.plugins import reset_host
    from lcai_core.registry import Registry

    monkeypatch.syspath_prepend(str(toycloud_site))
    db = tmp_path / "toy-db"
    monkeypatch.setenv("TOYCLOUD_DIR", str(db))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.ssh keys
    reset_host()
    d = tmp_path / "toy"
    d.mkdir()
    try:
        (d / "deploy.yml").write_text(TOY_TEMPLATE.format(v="1.0.0"))
        assert main(["deploy", "-d", str(d), "--yes"]) == 0, capsys.readouterr().err
        dep = json.loads((d / ".linode" / "state.json").read_text())["deployment_id"]
        (db / "machines.json").write_text("{}")  # the machine vanished
        (d / "deploy.yml").write_text(TOY_TEMPLATE.format(v="1.1.0"))
        capsys.readouterr()
        assert main(["deploy", "-d", str(d), "--yes"]) == 1
        err = capsys.readouterr().err
        assert f"rebuild of deployment {dep} failed: machine {dep} is gone: nothing to rebuild" in err, err
        assert "KeyError" not in err and "plugin lcai-toycloud" not in err
        assert Registry().get(dep)["status"] == "rebuild failed"
    finally:
        for mod in [m for m in sys.modules if m.startswith("lcai_toycloud")]:
            del sys.modules[mod]
        reset_host()


# ---------------------------------------------------------------- the docs list every rule


def test_docs_list_every_rule_of_the_kit():
    text = (ROOT / "docs" / "providers.md").read_text()
    section = text.split("\n## Conformance\n", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"(?m)^- `(C\d+)` (.+)$", section))
    assert listed == {r.id: r.statement for r in RULES}
    assert len(RULES) == len({r.id for r in RULES}) == 32


# ---------------------------------------------------------------- broken providers fail the rule they break

#: defect -> the rules a MemCloud with it fails (every other rule passes)
DEFECTS = {
    "undo-twice": {"C9"},
    "rows-raises": {"C10", "C11", "C12", "C13", "C26"},
    "find-none": {"C5", "C23", "C25"},
    "destroy-leaves": {"C19", "C21", "C23", "C29", "C32"},
    "duplicate": {"C6"},
    "secret": {"C26"},
    "untracked-hidden": {"C13"},
    "resend": {"C25"},
    "remains-blind": {"C32"},
}

#: defect -> {rule id: how its failure message ends (a regular expression)}
SEEN = {
    "undo-twice": {"C9": r"undo\(\) of step 'machine' the second time raised KeyError: \d+"},
    "rows-raises": {"C10": re.escape("rows(records) raised KeyError: 'ip'")},
    "find-none": {"C5": re.escape("find() of step 'machine' after its run() returned None")},
    "duplicate": {"C6": re.escape("step 'machine': the second run() returned other ['address', 'machine']: ")
                  + r"\{'address': '192\.0\.2\.\d+', 'machine': \d+\}"},
    "secret": {"C26": re.escape("run() of step 'machine' returned the root password")},
    "resend": {"C25": re.escape("step 'machine' after a lost reply: run() and find() disagree on ['address', "
                                "'machine']")},
    "remains-blind": {"C32": re.escape("remains() of a live deployment lists no machine: Remains(machines=(), "
                                       "leftovers=())")},
}


def _classes():
    """A test module with one ProviderContract class per MemCloud: correct, then each defect."""
    out = ["import pytest", "from memcloud import MemCloud, MemCloudContract"]
    for cls, made in [("TestCorrect", "MemCloud()")] + [
            (f"Test_{d.replace('-', '_')}", f"MemCloud({{{d!r}}})") for d in DEFECTS]:
        out += ["", "", f"class {cls}(MemCloudContract):", "    @pytest.fixture", "    def provider(self):",
                f"        return {made}"]
    return "\n".join(out) + "\n"


def kit_reports(pytester, monkeypatch):
    """The kit on MemCloud without and with each defect, in one inner pytest run (no plugin but pytest's own):
    {class: {rule id: report}}."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(memcloud=(HERE / "memcloud.py").read_text(), test_memcloud=_classes())
    rec = pytester.inline_run("-p", "no:cacheprovider", "-q")
    out: dict = {}
    for rep in rec.getreports("pytest_runtest_logreport"):
        if rep.when == "call" or not rep.passed:
            cls, test = rep.nodeid.split("::")[1:3]
            out.setdefault(cls, {})["C" + str(int(re.match(r"test_c(\d+)_", test).group(1)))] = rep
    return out


def test_broken_providers_fail_the_rule_they_break(pytester, monkeypatch):
    by_class = kit_reports(pytester, monkeypatch)
    rules = {r.id: r for r in RULES}
    correct = by_class["TestCorrect"]
    assert {rid for rid, rep in correct.items() if rep.failed} == set(), {
        rid: rep.longreprtext[-600:] for rid, rep in correct.items() if rep.failed}
    # no remote to lose, no request counter
    assert {rid for rid, rep in correct.items() if rep.skipped} == {"C14", "C30", "C31"}
    for defect, broken in DEFECTS.items():
        got = by_class[f"Test_{defect.replace('-', '_')}"]
        failed = {rid for rid, rep in got.items() if rep.failed}
        assert failed == broken, (defect, failed)
        for rid in broken:
            message = got[rid].longrepr.reprcrash.message
            assert message.startswith(f"lcai_testing.provider_contract.RuleFailed: {rules[rid]}: "), message
        # what a provider author reads: the rule, then what the kit saw
        seen = {rid: got[rid].longrepr.reprcrash.message for rid in broken}
        for rid, tail in SEEN.get(defect, {}).items():
            assert re.search(f"{tail}$", seen[rid]), seen[rid]
