"""Start-up stays light; the built wheel carries the bundled templates; the runtime wheels ship no test stand-ins,
and lcai-testing's validators work from its installed wheel, outside the source checkout."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HEAVY = ("linode_api4", "textual", "requests", "jsonschema", "rich")


def modules_after(code: str) -> set:
    r = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_import_lcai_core_is_light():
    mods = modules_after("import lcai_core")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)
    assert "lcai_core.template" not in mods and "cattrs" not in mods


def test_help_imports_no_heavy_module_or_plugin_internals():
    mods = modules_after("import contextlib, io\nfrom lcai_core.cli import main\n"
                         "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)
    plugin_packages = ("lcai_redis.", "lcai_postgres.", "lcai_gpu_nvidia.", "lcai_linode.", "lcai_buildwatch.")
    internals = {m for m in mods if m.startswith(plugin_packages)}
    assert not internals, internals
    assert "lcai_core.template" not in mods and "lcai_core.cli.plan" not in mods
    assert "shutil" not in mods  # the help width is found without it (lcai_core.cli._help_width)


@pytest.mark.parametrize("columns", ["40", "70", "99", "150", "junk"])
@pytest.mark.parametrize("args", [["--help"], ["templates", "--help"], ["deploy", "--help"]])
def test_help_is_wrapped_as_click_itself_would(columns, args, monkeypatch, capsys):
    """The width lcai passes to click is the one click's formatter finds through shutil on its own."""
    import click

    from lcai_core.cli import cli, main

    monkeypatch.setenv("COLUMNS", columns)
    assert main(list(args)) == 0
    ours = capsys.readouterr().out
    try:
        cli.main(args=list(args), prog_name="lcai", standalone_mode=False)  # terminal_width left to click
    except click.exceptions.Exit:
        pass
    assert ours == capsys.readouterr().out


def build_wheel(project: Path, outdir: Path) -> Path:
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir),
                        str(project)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    name = project.resolve().name.replace("-", "_") if project != ROOT else "lcai_core"
    return next(outdir.glob(f"{name}-*.whl"))


def test_wheel_contains_bundled_templates(tmp_path):
    wheel = build_wheel(ROOT, tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for t in ("llm-api", "chat-agent", "embeddings-python", "ml-pipeline"):
        assert f"lcai_core/_bundled_templates/{t}/template.yml" in names
        assert f"lcai_core/_bundled_templates/{t}/README.md" in names
    assert "lcai_core/cli/__init__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "lcai = lcai_core.cli:main" in text


# what a test stand-in looks like inside a wheel: by file name, and by content
STAND_IN_FILES = ("testing.py", "simulator.py", "conftest.py", "pytest_plugin.py")
STAND_IN_TEXT = ("class FakeDocker", "class Simulator", "lcai_testing", "import pytest", "lcai-linode-sim", "pytest11")


def test_runtime_wheels_ship_no_test_stand_ins(tmp_path):
    """lcai-core, lcai-linode and lcai-buildwatch as built for PyPI: no simulator, no FakeDocker, no test helper
    module and no pytest plugin entry point — those are lcai-testing's."""
    for project in (ROOT, ROOT / "plugins" / "lcai-linode", ROOT / "plugins" / "lcai-buildwatch"):
        wheel = build_wheel(project, tmp_path / project.name)
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            assert any(n.endswith("/__init__.py") for n in names), names
            for n in names:
                base = n.rsplit("/", 1)[-1]
                assert base not in STAND_IN_FILES and not base.startswith(("sim_", "test_")), (wheel.name, n)
                if n.endswith((".py", ".txt", ".json")):
                    text = z.read(n).decode()
                    found = [t for t in STAND_IN_TEXT if t in text]
                    assert not found, (wheel.name, n, found)


def test_lcai_testing_wheel_validates_user_data_outside_the_checkout(tmp_path):
    """lcai-testing built and installed as a wheel (into a directory of its own, run from a directory that is
    not the checkout): validate_user_data finds cloud-init in the user's cache dir (no LCAI_CLOUD_INIT_ROOT) and
    reports a schema error; with no cache and no apt-get to fetch one it says so. The wheel carries the simulator,
    FakeDocker and the lcai-linode-sim command, and no pytest11 entry point (the plugin is opt-in)."""
    from lcai_testing.cloudinit import cloud_init_dir, have_cloud_init

    if not have_cloud_init():
        pytest.skip(f"cloud-init's validator is not at {cloud_init_dir()} (set LCAI_CLOUD_INIT_ROOT)")
    wheel = build_wheel(ROOT / "plugins" / "lcai-testing", tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for module in ("linode/simulator.py", "linode/sim_health.py", "docker.py", "pytest_plugin.py", "py.typed"):
            assert f"lcai_testing/{module}" in names, names
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "lcai-linode-sim = lcai_testing.linode.simulator:main" in entry and "pytest11" not in entry
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cache = tmp_path / "cache"
    (cache / "lcai-testing").mkdir(parents=True)
    (cache / "lcai-testing" / "cloud-init").symlink_to(cloud_init_dir().resolve())
    code = (
        "import lcai_testing, sys\n"
        f"assert lcai_testing.__file__.startswith({str(target)!r}), lcai_testing.__file__\n"
        "from lcai_testing import validate_user_data\n"
        "assert validate_user_data('#cloud-config\\npackages: [curl]\\n') == []\n"
        "bad = validate_user_data('#cloud-config\\npackages: 5\\n')\n"
        "assert any(f.startswith('cloud-init schema:') and 'packages' in f for f in bad), bad\n"
        "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LCAI_CLOUD_INIT_ROOT", "PYTHONPATH")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work, timeout=300,
                       env={**env, "PYTHONPATH": str(target), "XDG_CACHE_HOME": str(cache)})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
    # no cache and nothing to fetch with: one actionable error, naming the fetch command
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    r = subprocess.run([str(bare / "python"), "-c", "from lcai_testing import validate_user_data\n"
                        "validate_user_data('#cloud-config\\n')"], capture_output=True, text=True, cwd=work,
                       timeout=300, env={**env, "PYTHONPATH": str(target), "XDG_CACHE_HOME": str(tmp_path / "empty"),
                                         "PATH": str(bare)})
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "apt-get not available" in last and "python -m lcai_testing.cloudinit" in last, r.stderr[-2000:]


def locked() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_everything_bootstrap_installs():
    """Every distribution lcai's own (lcai-core, each plugin, with its [test] extra) need here — their requirements
    and theirs in turn, markers evaluated for this Python — is pinned in constraints.txt, and .venv holds exactly
    the pinned version: a dependency added to a pyproject.toml without refreshing the lock fails here."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    pins = locked()
    ours = {"lcai-core"} | {_norm(p.parent.name) for p in ROOT.glob("plugins/*/pyproject.toml")}
    todo = [(d, ("test",)) for d in sorted(ours)]
    seen: set[str] = set()
    problems = []
    while todo:
        dist, extras = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            meta = md.distribution(dist)
        except md.PackageNotFoundError:
            problems.append(f"{dist} is not installed")
            continue
        if dist not in ours:
            if dist not in pins:
                problems.append(f"{dist} is not in the lock")
            elif meta.version != pins[dist]:
                problems.append(f"{dist} {meta.version} installed, {pins[dist]} locked")
        for text in meta.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
                todo.append((_norm(req.name), tuple(req.extras)))
    assert not problems, ("; ".join(problems) + " — refresh the lock with ./scripts/lock.sh --keep, then "
                          "./scripts/bootstrap.sh")
    assert "pip" in pins and md.version("pip") == pins["pip"]


def test_lock_and_bootstrap_scripts_pass_shellcheck():
    from lcai_testing import shellcheck_bin

    exe = shellcheck_bin()
    if exe is None:
        pytest.skip("shellcheck is not installed")
    for script in ("scripts/lock.sh", "scripts/bootstrap.sh", "scripts/workspace-packages.sh"):
        p = subprocess.run([exe, "-x", "-s", "sh", script], capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0, (script, p.stdout)
