"""The capability guide's code runs as written: the example plugin registers, renders and validates."""

import re
import types
from pathlib import Path

from lcai_core.plugins import Host
from lcai_testing import install_distribution, require_validators

DOC = Path(__file__).parents[2] / "docs" / "capabilities.md"


def test_capability_guide_example_works(monkeypatch):
    require_validators()
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    plugin = types.ModuleType("lcai_memcached")
    exec(compile(blocks[0], f"{DOC}:plugin", "exec"), plugin.__dict__)
    host = Host(extra_plugins=(plugin,))
    assert host.catalog.by_name["memcached"].capability.summary
    import lcai_core.plugins as plugins

    monkeypatch.setattr(plugins, "_host", host)  # the guide's test uses the default host
    test_ns: dict = {}
    exec(compile(blocks[1], f"{DOC}:test", "exec"), test_ns)
    test_ns["test_memcached_renders_valid_user_data"]()


def test_capability_guide_pyproject_builds_installs_and_plugs_in(tmp_path, monkeypatch, capsys):
    """The guide's pyproject and plugin code, built into a wheel and installed: `lcai plugins` lists it and a
    template using it plans (the entry point is found from the installed metadata, not injected)."""
    import sys

    from lcai_core.cli import main
    from lcai_core.plugins import reset_host

    text = DOC.read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    toml = re.findall(r"```toml\n(.*?)```", text, re.S)[0]
    src = tmp_path / "src-tree"
    (src / "src" / "lcai_memcached").mkdir(parents=True)
    (src / "src" / "lcai_memcached" / "__init__.py").write_text(code)
    (src / "pyproject.toml").write_text(toml)
    site = tmp_path / "site"
    install_distribution(src, site)
    monkeypatch.syspath_prepend(str(site))
    reset_host()
    try:
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if line.startswith("lcai-memcached"))
        assert "0.1.0" in row and "ok" in row and "memcached" in row
        d = tmp_path / "svc"
        d.mkdir()
        (d / "deploy.yml").write_text("name: web\ncapabilities:\n  runtime: docker\n  features: [memcached]\n"
                                      "deploy:\n  linode:\n    container:\n      image: nginx:1.27\n"
                                      "      internal_port: 80\n")
        assert main(["plan", "-d", str(d)]) == 0
        assert "memcached" in capsys.readouterr().out
    finally:
        for mod in [m for m in sys.modules if m.startswith("lcai_memcached")]:
            del sys.modules[mod]
        reset_host()
