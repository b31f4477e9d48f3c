"""The plugin host: one test per hookspec with an inline plugin, and the failure modes of entry points."""

import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from lcai_core import hookimpl
from lcai_core.capabilities import Capability, Fragments
from lcai_core.plugins import Host
from lcai_core.providers import Provider
from lcai_core.sources import DirectorySource, discover


class Hello(Capability):
    name = "hello"
    summary = "test capability"

    def fragments(self, config, ctx):
        return Fragments(packages=("hello",))


def test_register_capabilities_inline_plugin():
    class Plugin:
        @hookimpl
        def register_capabilities(self, register):
            register(Hello())

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    assert "hello" in host.catalog.names("feature")
    assert host.catalog.by_name["hello"].plugin == "Plugin"


def test_register_template_sources_inline_plugin(tmp_path):
    (tmp_path / "mytpl").mkdir()
    (tmp_path / "mytpl" / "template.yml").write_text("name: mytpl\n")

    class Plugin:
        @hookimpl
        def register_template_sources(self, register):
            register(DirectorySource("pack", tmp_path, plugin="my-pack 1.0"))

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    entries = discover(host.template_sources)
    assert entries["mytpl"].source == "pack my-pack 1.0"
    assert "llm-api" in entries  # the bundled source is still there


def test_register_providers_inline_plugin():
    class Fake(Provider):
        name = "fakecloud"

    class Plugin:
        @hookimpl
        def register_providers(self, register):
            register(Fake())

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    assert isinstance(host.providers["fakecloud"], Fake)


def test_register_commands_inline_plugin():
    @click.command("hello")
    def hello_cmd():
        click.echo("hello from a plugin")

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hello_cmd)

    host = Host(load_entry_points=False, extra_plugins=(Plugin(),))
    group = click.Group("root")
    host.add_commands(group)
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"


def test_deployment_sections_inline_plugin():
    class Plugin:
        @hookimpl
        def deployment_sections(self, deployment):
            return [("hello", [f"deployment {deployment['deployment_id']}"])]

    class Broken:
        @hookimpl
        def deployment_sections(self, deployment):
            raise RuntimeError("agent down")

    host = Host(load_entry_points=False, extra_plugins=(Plugin(), Broken()))
    sections = host.deployment_sections({"deployment_id": "abcd1234"})
    assert ("hello", ["deployment abcd1234"]) in sections
    assert ("Broken", ["unavailable: RuntimeError: agent down"]) in sections


def test_duplicate_capability_names_are_refused():
    class A:
        @hookimpl
        def register_capabilities(self, register):
            register(Hello())

    class B:
        @hookimpl
        def register_capabilities(self, register):
            register(Hello())

    host = Host(load_entry_points=False, extra_plugins=(A(), B()))
    assert list(host.catalog.by_name).count("hello") == 1  # the first keeps the name
    broken = [p for p in host.plugins if p.status == "broken"]
    assert [p.name for p in broken] == ["B"] and "registered by both A and B" in broken[0].error
    assert any("registered by both" in w for w in host.warnings)


def test_registration_order_does_not_change_results():
    """Two plugins whose capabilities both add packages and runcmd steps: the rendered user data is the same
    byte for byte whichever plugin registers first (assembly orders by `order`, then name)."""
    from lcai_testing import render_text

    class Bye(Hello):
        name = "bye"

        def fragments(self, config, ctx):
            return Fragments(packages=("bye",), runcmd=(("echo", "bye"),))

    class Hi(Hello):
        def fragments(self, config, ctx):
            return Fragments(packages=("hello",), runcmd=(("echo", "hello"),))

    class P1:
        @hookimpl
        def register_capabilities(self, register):
            register(Hi())

    class P2:
        @hookimpl
        def register_capabilities(self, register):
            register(Bye())

    text = ("name: web\ncapabilities:\n  runtime: docker\n  features: [hello, bye]\ndeploy:\n  linode:\n"
            "    container:\n      image: nginx:1.27\n      internal_port: 80\n")
    a = render_text(text, host=Host(extra_plugins=(P1(), P2()))).text
    b = render_text(text, host=Host(extra_plugins=(P2(), P1()))).text
    assert a == b
    assert a.index("echo, bye") < a.index("echo, hello") or a.index("- bye") < a.index("- hello")


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    """Install fake distributions with 'lcai' entry points by putting dist-info folders on sys.path."""

    def make(dist, entry_name, module, source=None):
        info = tmp_path / f"{dist.replace('-', '_')}-0.9.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.9\n")
        (info / "entry_points.txt").write_text(f"[lcai]\n{entry_name} = {module}\n")
        if source is not None:
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for mod in ("fake_good_plugin", "fake_misspelt_plugin"):
        sys.modules.pop(mod, None)


def test_broken_plugin_is_reported_not_fatal(fake_dists):
    fake_dists("lcai-broken", "broken", "fake_missing_module_xyz")
    fake_dists("lcai-good", "good", "fake_good_plugin", """
        from lcai_core import hookimpl, Capability, Fragments
        class Good(Capability):
            name = "good-cap"
            def fragments(self, config, ctx):
                return Fragments()
        @hookimpl
        def register_capabilities(register):
            register(Good())
    """)
    host = Host()
    broken = next(p for p in host.plugins if p.dist == "lcai-broken")
    assert broken.status == "broken" and "ModuleNotFoundError" in broken.error
    assert any("lcai-broken" in w for w in host.warnings)
    good = next(p for p in host.plugins if p.dist == "lcai-good")
    assert good.status == "ok" and good.version == "0.9" and good.hooks == ["register_capabilities"]
    assert "good-cap" in host.catalog.names()


def test_misspelt_hook_marks_plugin_broken(fake_dists):
    fake_dists("lcai-misspelt", "misspelt", "fake_misspelt_plugin", """
        from lcai_core import hookimpl
        @hookimpl
        def register_capabilitys(register):
            pass
    """)
    host = Host()
    info = next(p for p in host.plugins if p.dist == "lcai-misspelt")
    assert info.status == "broken" and "register_capabilitys" in info.error
    host.pm.check_pending()  # nothing unspecified is left registered


def test_disable_plugins_env(fake_dists, monkeypatch):
    fake_dists("lcai-good", "good", "fake_good_plugin", """
        from lcai_core import hookimpl
        @hookimpl
        def register_capabilities(register):
            raise AssertionError("must not be called when disabled")
    """)
    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "something-else, lcai-good")
    host = Host()
    assert next(p for p in host.plugins if p.dist == "lcai-good").status == "disabled"
    host.catalog


def test_fast_entry_point_scan_agrees_with_importlib_metadata(fake_dists):
    import importlib_metadata

    from lcai_core.plugins import _entry_points, _entry_points_slow

    fake_dists("lcai-good", "good", "fake_good_plugin", "")
    fast = [(e.name, e.value, e.dist_name, e.version) for e in _entry_points()]
    slow = [(e.name, e.value, e.dist_name, e.version) for e in _entry_points_slow()]
    ref = sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version)
                 for e in importlib_metadata.entry_points(group="lcai"))
    assert fast == slow == ref
    assert ("good", "fake_good_plugin", "lcai-good", "0.9") in fast


@pytest.mark.parametrize("group", ["console_scripts", "pytest11", "lcai.templates"])
def test_fast_entry_point_scan_agrees_for_other_groups(group):
    """The scan reads METADATA only for distributions that have the group: the others still count."""
    import importlib_metadata

    from lcai_core.plugins import _entry_points

    fast = sorted((e.name, e.value, e.dist_name, e.version) for e in _entry_points(group))
    ref = sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version)
                 for e in importlib_metadata.entry_points(group=group))
    assert fast == ref


def test_module_hookimpl_fast_path_agrees_with_pluggy():
    """The host's manager reads a module plugin's hook implementations as pluggy's own parser does, for every
    name of every plugin module installed here (and of one with a staticmethod, a class and a marked non-function)."""
    import types

    import pluggy

    from lcai_core.plugins import GROUP, _entry_points, _PluginManager

    odd = types.ModuleType("odd_plugin")
    exec(textwrap.dedent("""
        from lcai_core import hookimpl
        @hookimpl
        def register_capabilities(register): pass
        class register_providers: pass
        register_commands = staticmethod(hookimpl(lambda group, reserved: None))
        def register_template_sources(register): pass
        register_template_sources.lcai_impl = "not a dict"
    """), odd.__dict__)
    mods = [odd, __import__("lcai_core.builtin", fromlist=["x"])] + [ep.load() for ep in _entry_points()]
    ours, plain = _PluginManager(GROUP), pluggy.PluginManager(GROUP)
    checked = 0
    for mod in mods:
        if not isinstance(mod, types.ModuleType):
            continue
        for name in dir(mod):
            assert ours.parse_hookimpl_opts(mod, name) == plain.parse_hookimpl_opts(mod, name), (mod, name)
            checked += 1
    assert checked > 50
    assert ours.parse_hookimpl_opts(odd, "register_capabilities") is not None
    assert ours.parse_hookimpl_opts(odd, "register_commands") is not None


def test_entry_point_scan_is_read_once_until_a_folder_on_sys_path_changes(tmp_path, monkeypatch):
    """Two groups asked in one process (``templates list``) cost one scan; installing a distribution into a
    folder on sys.path (its mtime moves) is seen by the next call."""
    import os

    from lcai_core import plugins

    def install(name: str, when: int) -> None:
        info = tmp_path / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[lcai.templates]\n{name} = {name}_mod\n")
        os.utime(tmp_path, ns=(when, when))  # as if installed a while ago (the scan rereads fresh folders)

    old = 1_600_000_000 * 10**9
    install("pack_one", old)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_clock", lambda: 2**62)  # every folder on sys.path long unchanged: cached
    listed = []
    real = os.listdir
    monkeypatch.setattr(plugins.os, "listdir", lambda d: listed.append(d) or real(d))
    plugins._scanned.clear()
    assert [e.name for e in plugins._entry_points("lcai.templates")] == ["pack_one"]
    n = len(listed)
    plugins._entry_points("lcai")
    assert len(listed) == n  # the second group: no folder listed again
    install("pack_two", old + 10**9)
    assert [e.name for e in plugins._entry_points("lcai.templates")] == ["pack_one", "pack_two"]
    assert len(listed) > n


def test_entry_point_scan_rereads_a_folder_changed_just_now(tmp_path, monkeypatch):
    from lcai_core import plugins

    monkeypatch.syspath_prepend(str(tmp_path))
    plugins._entry_points("lcai.templates")
    info = tmp_path / "pack_now-1.0.dist-info"  # within the same timestamp tick, perhaps: mtime may not move
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pack_now\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lcai.templates]\npack_now = pack_now_mod\n")
    assert "pack_now" in [e.name for e in plugins._entry_points("lcai.templates")]
