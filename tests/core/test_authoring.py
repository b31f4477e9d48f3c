"""Template authoring: scaffold, --llm-assist generated from the live registry, template packs, tested docs."""

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from lcai_core import hookimpl
from lcai_core.capabilities import Capability, Fragments
from lcai_core.cli import main
from lcai_core.plugins import Host
from lcai_core.scaffold import llm_instructions
from lcai_core.template import load_template_text

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def config_dir(lcai_config_dir):
    return lcai_config_dir


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_scaffold_validates_as_is_and_deploys_through_plan(capsys, tmp_path):
    d = tmp_path / "my-svc"
    code, out, err = run(capsys, "templates", "scaffold", "my-svc", "-d", d, "--image", "ghcr.io/me/svc:1.0",
                         "--port", "9000", "--description", "My service")
    assert code == 0, err
    assert {p.name for p in d.iterdir()} == {"template.yml", "README.md", ".env.example"}
    text = (d / "template.yml").read_text()
    assert text.count("\n#") + text.count("  #") >= 5  # commented for the author
    assert run(capsys, "templates", "validate", d)[0] == 0
    assert run(capsys, "templates", "install", d)[0] == 0
    assert run(capsys, "init", "my-svc", "-d", tmp_path / "svc")[0] == 0
    code, out, err = run(capsys, "plan", "-d", tmp_path / "svc")
    assert code == 0, err
    assert "container:    ghcr.io/me/svc:1.0, port 80 -> 9000" in out


def test_scaffold_from_existing_and_refusals(capsys, tmp_path):
    d = tmp_path / "my-chat"
    assert run(capsys, "templates", "scaffold", "my-chat", "-d", d, "--from", "chat-agent")[0] == 0
    data = yaml.safe_load((d / "template.yml").read_text())
    assert data["name"] == "my-chat" and data["deploy"]["linode"]["container"]["image"].startswith("ollama/")
    code, _, err = run(capsys, "templates", "scaffold", "my-chat", "-d", d)
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "templates", "scaffold", "Bad_Name", "-d", tmp_path / "x")
    assert code == 2 and "template name" in err
    code, _, err = run(capsys, "templates", "scaffold", "ok-name", "-d", tmp_path / "y", "--feature", "reddis")
    assert code == 2 and "did you mean 'redis'" in err


def test_scaffold_is_scriptable_without_a_terminal(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lcai_core", "templates", "scaffold", "piped", "-d", str(tmp_path / "p")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       env={**os.environ})
    assert r.returncode == 0 and (tmp_path / "p" / "template.yml").is_file() and "?" not in r.stdout


def test_llm_instructions_follow_the_installed_plugins(tmp_path, monkeypatch):
    from lcai_testing import require_plugins

    require_plugins("redis")
    text = llm_instructions(Host(), "x-svc", tmp_path)
    assert "### `docker-optimize` (feature, from lcai-core)" in text
    assert "  - `max_concurrent_downloads`: integer (default: 10)" in text
    assert "- `deploy.linode.container.internal_port`: integer" in text
    assert "### llm-api" in text and "lcai templates validate" in text
    # another installed plugin shows up; a disabled one disappears
    class Whisper(Capability):
        name = "whisper-cache"
        summary = "a test capability"

        def fragments(self, config, ctx):
            return Fragments()

    class Plugin:
        @hookimpl
        def register_capabilities(self, register):
            register(Whisper())

    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "lcai-redis")
    changed = llm_instructions(Host(extra_plugins=(Plugin(),)), "x-svc", tmp_path)
    assert "### `whisper-cache` (feature, from Plugin)" in changed
    assert "### `redis` (feature, from lcai-redis)" in text
    assert "### `redis`" not in changed


def test_llm_assist_writes_the_file(capsys, tmp_path):
    d = tmp_path / "t"
    assert run(capsys, "templates", "scaffold", "assist-me", "-d", d, "--llm-assist")[0] == 0
    text = (d / "LLM_INSTRUCTIONS.md").read_text()
    assert text.startswith("# Completing the lcai template `assist-me`") and "## Field reference" in text


def test_template_pack_installed_into_a_temporary_environment(tmp_path, lcai_config_dir):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT / "examples" / "lcai-templates-example")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "LCAI_CONFIG_DIR": str(lcai_config_dir)}
    env.pop("LCAI_DISABLE_PLUGINS", None)  # tests/conftest.py disables packs installed outside the repository

    def lcai(*args):
        p = subprocess.run([sys.executable, "-m", "lcai_core", *args], capture_output=True, text=True, env=env,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    rows = {r["name"]: r for r in json.loads(lcai("templates", "list", "--json"))}
    assert rows["whisper-api"]["source"] == "pack lcai-templates-example 0.1.0"
    chat = rows["chat-agent"]
    assert chat["kind"] == "pack" and chat["version"] == "0.2.0" and chat["overrides"][0].startswith("bundled")
    assert "pack lcai-templates-example 0.1.0" in lcai("templates", "show", "whisper-api")
    # a user template beats the pack, which beats the bundled one
    user = tmp_path / "chat-agent"
    user.mkdir()
    (user / "template.yml").write_text((ROOT / "templates/chat-agent/template.yml").read_text()
                                       .replace("version: 0.1.0", "version: 9.0.0"))
    lcai("templates", "install", str(user))
    chat = {r["name"]: r for r in json.loads(lcai("templates", "list", "--json"))}["chat-agent"]
    assert chat["kind"] == "user" and chat["version"] == "9.0.0"
    assert [o.split(" ")[0] for o in chat["overrides"]] == ["pack", "bundled"]


def test_data_only_pack_entry_point(tmp_path, monkeypatch):
    info = tmp_path / "my_pack-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pack\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lcai.templates]\nmy-pack = my_pack_templates\n")
    pkg = tmp_path / "my_pack_templates" / "hello-pack"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("raise RuntimeError('a data-only pack is never imported')\n")
    (pkg / "template.yml").write_text("name: hello-pack\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from lcai_core.sources import discover

    entries = discover(Host().template_sources)
    assert entries["hello-pack"].source == "pack my-pack 1.0"


# ---------------------------------------------------------------- the guides' code blocks


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)


def test_template_guide_yaml_blocks_validate():
    from lcai_testing import require_plugins

    require_plugins("gpu-nvidia", "redis")
    ys = blocks("templates.md", "yaml")
    assert ys
    for y in ys:
        load_template_text(y, "docs/templates.md", Host().catalog)


def test_guides_toml_blocks_parse():
    import tomllib

    for doc in ("capabilities.md", "providers.md", "templates.md"):
        for t in blocks(doc, "toml"):
            tomllib.loads(t)


def test_template_guide_pack_code_registers_a_pack(tmp_path):
    (code,) = blocks("templates.md", "python")
    mod = types.ModuleType("guide_pack")
    mod.__file__ = str(tmp_path / "guide_pack.py")
    (tmp_path / "templates" / "from-guide").mkdir(parents=True)
    (tmp_path / "templates" / "from-guide" / "template.yml").write_text("name: from-guide\n")
    exec(compile(code, "docs/templates.md", "exec"), mod.__dict__)
    from lcai_core.sources import discover

    assert discover(Host(load_entry_points=False, extra_plugins=(mod,)).template_sources)["from-guide"].kind == "pack"


# the provider guide's example is installed and driven through every core command in
# tests/linode/test_contract.py::test_provider_from_the_docs_works_through_core


# ---------------------------------------------------------------- issue 13: the scaffold's defaults become healthy


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe(template_text):
    """(port, path) the rendered health check polls on the instance (the health-wait script's HTTP probe)."""
    import re

    from lcai_testing import render_text

    r = render_text(template_text)
    script = next(w["content"] for w in r.doc["write_files"] if w["path"].endswith("health-wait"))
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/[^\s'\"]*)", script)
    assert m, script
    return int(m.group(1)), m.group(2)


def test_scaffold_default_image_port_and_path_match_nginx(capsys, tmp_path):
    """nginx:1.27 listens on 80 and answers 200 at / (it has no /health): the default probes exactly that.
    (nginx itself cannot run here: Docker Hub is out of reach; the probe target is checked up to it.)"""
    d = tmp_path / "web"
    assert run(capsys, "templates", "scaffold", "web-svc", "-d", d)[0] == 0
    text = (d / "template.yml").read_text()
    c = yaml.safe_load(text)["deploy"]["linode"]["container"]
    assert (c["image"], c["internal_port"], c["health"]["path"]) == ("nginx:1.27", 80, "/")
    assert _probe(text) == (80, "/")
    # an image of the author's own keeps the conventional /health on 8000 (and --help says so)
    assert run(capsys, "templates", "scaffold", "own-svc", "-d", tmp_path / "own", "--image", "ghcr.io/me/a:1")[0] == 0
    c = yaml.safe_load((tmp_path / "own" / "template.yml").read_text())["deploy"]["linode"]["container"]
    assert (c["internal_port"], c["health"]["path"]) == (8000, "/health")


def test_scaffold_native_default_really_becomes_healthy(capsys, tmp_path):
    """The native default's command, run for real, answers the rendered health probe with 200."""
    import shlex
    import time
    import urllib.request

    port = _free_port()
    d = tmp_path / "nat"
    assert run(capsys, "templates", "scaffold", "nat-svc", "-d", d, "--runtime", "native", "--port", port)[0] == 0
    text = (d / "template.yml").read_text()
    cmd = shlex.split(yaml.safe_load(text)["deploy"]["linode"]["container"]["command"])
    assert cmd[1:] == ["-m", "http.server", str(port)]
    probe_port, path = _probe(text)
    assert probe_port == port
    app = subprocess.Popen([sys.executable, *cmd[1:], "--bind", "127.0.0.1"], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{probe_port}{path}", timeout=2) as r:
                    assert r.status == 200
                    break
            except (ConnectionError, OSError):
                time.sleep(0.05)
        else:
            raise AssertionError("the native default never answered its health probe")
    finally:
        app.terminate()
        app.wait(10)


def test_the_suite_ignores_installed_packs_and_the_users_config(tmp_path):
    """tests/conftest.py: a pack pip-installed next to lcai and a user template in ~/.config do not change
    what the tests see (they did: test_templates_list_one_name_per_row saw whisper-api)."""
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT / "examples" / "lcai-templates-example")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    home = tmp_path / "home"
    mine = home / ".config" / "linode-cli.d" / "build" / "templates" / "zz-mine"
    mine.mkdir(parents=True)
    (mine / "template.yml").write_text("name: zz-mine\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LCAI_CONFIG_DIR", "LCAI_DISABLE_PLUGINS")}
    env.update(PYTHONPATH=str(target), HOME=str(home), LCAI_DEBUG="1")
    listed = subprocess.run([sys.executable, "-m", "lcai_core", "templates", "list"], capture_output=True, text=True,
                            env=env, timeout=60).stdout.split()
    assert "whisper-api" in listed and "zz-mine" in listed  # lcai itself sees both
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(ROOT / "tests/core/test_cli.py"),
                        "-k", "templates_list or templates_show or user_template or init_refuses"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout
