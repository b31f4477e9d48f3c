"""The plugin boundary holds: a plugin failing at import, registration, check, fragments or in a command is named
in one error line (`plugin lcai-foo 1.2: …`), listed as broken, and does not stop commands that do not need it;
duplicate names are refused naming both distributions; a config that is not an attrs class is refused."""

import re
import sys
import textwrap

import pytest

from lcai_core.cli import main
from lcai_core.plugins import reset_host

HEADER = """
import attrs
from lcai_core import Capability, Fragments, Provider, hookimpl
from lcai_core.errors import LcaiError
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a plugin distribution (a package + dist-info with an `lcai` entry point) onto sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made = []

    def _install(dist: str, version: str, body: str, ep_name: str = None):
        pkg = dist.replace("-", "_")
        (site / pkg).mkdir()
        (site / pkg / "__init__.py").write_text(HEADER + textwrap.dedent(body))
        info = site / f"{pkg}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n\n")
        (info / "entry_points.txt").write_text(f"[lcai]\n{ep_name or pkg} = {pkg}\n")
        made.append(pkg)
        reset_host()

    yield _install
    for pkg in made:
        for mod in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[mod]
    reset_host()


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def assert_listed_broken(capsys, dist: str, words: str):
    code, out, err = run(capsys, "plugins")
    assert code == 0, err
    row = next(x for x in out.splitlines() if x.startswith(dist))
    assert "broken" in row, out
    assert words in out


def test_import_failure(install, capsys):
    install("lcai-foo", "1.2", "raise RuntimeError('boom at import')\n")
    code, out, err = run(capsys, "templates", "list")
    assert code == 0 and "llm-api" in out
    assert "warning: plugin lcai-foo 1.2: RuntimeError: boom at import" in err
    assert_listed_broken(capsys, "lcai-foo", "boom at import")


def test_registration_failure_does_not_stop_other_commands(install, capsys):
    install("lcai-foo", "1.2", """
        @hookimpl
        def register_capabilities(register):
            raise RuntimeError("boom at registration")
    """)
    code, out, err = run(capsys, "templates", "validate", "templates/ml-pipeline")
    assert code == 0, err
    assert "plugin lcai-foo 1.2: register_capabilities failed: RuntimeError: boom at registration" in err
    assert_listed_broken(capsys, "lcai-foo", "boom at registration")


def capability(body: str) -> str:
    return f"""
        @attrs.define(frozen=True)
        class Config:
            size: int = 1

        class Foo(Capability):
            name = "foo"
            summary = "a test capability"
            config_class = Config
{textwrap.indent(textwrap.dedent(body), ' ' * 12)}

        @hookimpl
        def register_capabilities(register):
            register(Foo())
    """


def deployment(tmp_path, features: str = "[foo]"):
    d = tmp_path / "svc"
    d.mkdir(parents=True)
    (d / "deploy.yml").write_text(f"name: web\ncapabilities:\n  runtime: docker\n  features: {features}\n"
                                  "deploy:\n  linode:\n    container:\n"
                                  "      image: nginx:1.27\n      internal_port: 80\n")
    return d


def test_check_failure_is_named(install, capsys, tmp_path):
    install("lcai-foo", "1.2", capability("""
        def check(self, config, template):
            raise ValueError("boom in check")

        def fragments(self, config, ctx):
            return Fragments()
    """))
    code, out, err = run(capsys, "plan", "-d", deployment(tmp_path))
    assert code == 1
    assert one_error_line(err) == "error: plugin lcai-foo 1.2: ValueError: boom in check"
    assert "LCAI_DISABLE_PLUGINS=lcai-foo" in err


def test_fragments_failure_is_named_and_listed(install, capsys, tmp_path):
    install("lcai-foo", "1.2", capability("""
        def fragments(self, config, ctx):
            raise KeyError("boom in fragments")
    """))
    code, out, err = run(capsys, "plan", "-d", deployment(tmp_path))
    assert code == 1
    assert one_error_line(err).startswith("error: plugin lcai-foo 1.2: KeyError:")
    # a deployment that does not use it still plans
    code, out, err = run(capsys, "plan", "-d", deployment(tmp_path / "other", features="[]"))
    assert code == 0, err
    assert_listed_broken(capsys, "lcai-foo", "capability 'foo': fragments() failed: KeyError")


def test_command_failure_is_named(install, capsys):
    install("lcai-foo", "1.2", """
        import click

        @click.command("foo")
        def foo():
            raise RuntimeError("boom in a command")

        @hookimpl
        def register_commands(cli):
            cli.add_command(foo)
    """)
    code, out, err = run(capsys, "foo")
    assert code == 1
    assert one_error_line(err) == "error: plugin lcai-foo 1.2: RuntimeError: boom in a command"
    assert run(capsys, "templates", "list")[0] == 0


def test_duplicate_command_and_core_command_refused(install, capsys):
    body = """
        import click

        @click.command("{name}")
        def cmd():
            click.echo("from {dist}")

        @hookimpl
        def register_commands(cli):
            cli.add_command(cmd)
    """
    install("lcai-aaa", "1.0", body.format(name="hello", dist="aaa"))
    install("lcai-bbb", "2.0", body.format(name="hello", dist="bbb"))
    install("lcai-ccc", "3.0", body.format(name="status", dist="ccc"))
    code, out, err = run(capsys, "hello")
    assert code == 0 and out.strip() == "from aaa", err
    assert "plugin lcai-bbb 2.0: command 'hello' is registered by both lcai-aaa 1.0 and lcai-bbb 2.0" in err
    assert "plugin lcai-ccc 3.0: command 'status' is registered by both lcai-core and lcai-ccc 3.0" in err
    code, out, err = run(capsys, "status", "--help")
    assert code == 0 and "from ccc" not in out


def test_duplicate_provider_and_capability_refused(install, capsys):
    body = """
        @attrs.define(frozen=True)
        class Config:
            pass

        class Cap(Capability):
            name = "redis"
            config_class = Config

        class P(Provider):
            name = "linode"

        @hookimpl
        def register_providers(register):
            register(P())

        @hookimpl
        def register_capabilities(register):
            register(Cap())
    """
    install("lcai-zzz", "9.9", body)
    code, out, err = run(capsys, "plugins")
    assert code == 0
    # registration order is by plugin name (deterministic); the second comer is refused, naming both
    assert re.search(r"provider name 'linode' is registered by both (lcai-linode 0.1.0 and lcai-zzz 9.9|"
                     r"lcai-zzz 9.9 and lcai-linode 0.1.0)", out + err), out + err
    assert re.search(r"capability name 'redis' is registered by both (lcai-redis and lcai-zzz|lcai-zzz and "
                     r"lcai-redis)", out + err), out + err
    from lcai_core.plugins import get_host

    assert get_host().providers["linode"].name == "linode"


def test_config_that_is_not_attrs_is_refused(install, capsys):
    install("lcai-foo", "1.2", """
        class Foo(Capability):
            name = "foo"
            config_class = dict

        @hookimpl
        def register_capabilities(register):
            register(Foo())
    """)
    assert_listed_broken(capsys, "lcai-foo", "config_class <class 'dict'> is not an attrs class")
