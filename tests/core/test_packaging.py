"""Start-up stays light, and the built wheel carries the bundled templates."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_wheel_contains_bundled_templates(tmp_path):
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("lcai_core-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for t in ("llm-api", "chat-agent", "embeddings-python", "ml-pipeline"):
        assert f"lcai_core/_bundled_templates/{t}/template.yml" in names
        assert f"lcai_core/_bundled_templates/{t}/README.md" in names
    assert "lcai_core/cli/__init__.py" in names and "lcai_core/testing.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "lcai = lcai_core.cli:main" in text
