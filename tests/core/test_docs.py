"""The capability guide's code runs as written: the example plugin registers, renders and validates."""

import re
import types
from pathlib import Path

from lcai_core.plugins import Host
from lcai_core.testing import require_validators

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
