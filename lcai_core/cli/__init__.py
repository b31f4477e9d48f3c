"""The ``lcai`` command. Core commands load lazily; plugins add theirs through ``register_commands``.

Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage, 130 interrupted. No traceback without ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__

HELP_WIDTH = 100  # the widest help text gets (click's max_content_width)

CORE_COMMANDS = {
    "deploy": ("lcai_core.cli.deploy", "deploy",
               "Create a deployment (--target NAME: another provider), or rebuild this directory's live one."),
    "destroy": ("lcai_core.cli.deployments", "destroy",
                "Delete a deployment and the files deploy wrote (--purge: clean up vanished ones)."),
    "logs": ("lcai_core.cli.deployments", "logs", "Cloud-init output and container events of a deployment (SSH)."),
    "status": ("lcai_core.cli.deployments", "status",
               "List deployments live (one request per provider), or one in detail with a health check."),
    "scale": ("lcai_core.cli.scale", "scale",
              "Run N replicas of a deployment behind its NodeBalancer (new ones waited healthy, old ones drained)."),
    "sync": ("lcai_core.cli.deployments", "sync", "Adopt deployments this machine does not know; mark vanished ones."),
    "stop": ("lcai_core.cli.deployments", "stop",
             "Stop a deployment's bill: delete its machine, keep its firewall, volumes and record."),
    "start": ("lcai_core.cli.deploy", "start", "Create a stopped deployment's machine again, its volumes attached."),
    "init": ("lcai_core.cli.init", "init", "Create a deployment directory from a template."),
    "plan": ("lcai_core.cli.plan", "plan", "Render the exact cloud-init a deploy would send, with a summary."),
    "plugins": ("lcai_core.cli.plugins", "plugins", "List installed plugins: distribution, version, hooks, status."),
    "templates": ("lcai_core.cli.templates", "templates", "List, show, validate, install and describe templates."),
}


class LazyCommand(click.Command):
    """Stands in for a core command in --help; imports the real one only when it runs."""

    def __init__(self, name: str, target: tuple[str, str], help_: str):
        super().__init__(name, help=help_, short_help=help_)
        self._target = target

    def load(self) -> click.Command:
        mod, attr = self._target
        return getattr(importlib.import_module(mod), attr)


class Root(click.Group):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._plugins_loaded = None

    def _load_plugins(self) -> None:
        """Plugins' commands, once per plugin host (tests run many hosts in one process)."""
        from ..plugins import get_host

        _bind_warnings()
        host = get_host()
        if self._plugins_loaded is host:
            return
        self._plugins_loaded = host
        self.commands.clear()  # core commands are not kept here (they resolve lazily)
        host.add_commands(self, reserved=tuple(CORE_COMMANDS))

    def list_commands(self, ctx):
        self._load_plugins()
        return sorted(set(CORE_COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in CORE_COMMANDS:  # a stand-in: listing commands in --help imports nothing
            mod, attr, help_ = CORE_COMMANDS[name]
            return LazyCommand(name, (mod, attr), help_)
        self._load_plugins()
        return self.commands.get(name)

    def resolve_command(self, ctx, args):
        _bind_warnings()  # before any command can load the plugin host
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, LazyCommand):
            cmd = cmd.load()
        return name, cmd, rest


def _unknown_command_hint(name: str) -> str | None:
    from ..first_party import COMMANDS  # generated from the first-party plugins' own declarations

    if name in COMMANDS:
        return f"'{name}' is provided by a plugin: pip install {COMMANDS[name]}"
    return None


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH})
@click.version_option(__version__, "--version", prog_name="lcai", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="LCAI_DEBUG", help="Show tracebacks and plugin diagnostics.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """lcai: deploy containerized AI/ML services to Linode (or any installed provider) from declarative
    templates.

    \b
    Typical flow:
      lcai templates list
      lcai init llm-api --directory svc && cd svc && cp .env.example .env
      lcai plan --cloud-config user-data.yaml
      lcai deploy --wait        # again after editing deploy.yml: rebuilds the same machine
      lcai status   ·   lcai logs   ·   lcai destroy
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _help_width() -> int:
    """The width click's help formatter would pick, ``max(min(columns, 100) - 2, 50)``, with the columns found
    as ``shutil.get_terminal_size`` finds them (``COLUMNS``, else the terminal of stdout, else 80), without
    importing shutil (and with it bz2, lzma and fnmatch) on every start."""
    columns = 0
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        pass
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    if columns <= 0:
        columns = 80
    return max(min(columns, HELP_WIDTH) - 2, 50)


def main(argv: list[str] | None = None) -> int:
    from .. import ui
    from ..errors import LcaiError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LCAI_DEBUG", "") not in ("", "0")
    if "lcai_core.plugins" in sys.modules:  # a host made before main() (tests): its warnings go to stderr too
        _bind_warnings()
    try:
        # prog: "linode-cli build" under linode-cli; color: FORCE_COLOR keeps the escape codes in piped output
        # (click strips them otherwise)
        rc = cli.main(args=args, prog_name=ui.prog(), standalone_mode=False, terminal_width=_help_width(),
                      color=ui.forced_colour())
        return rc if isinstance(rc, int) else 0  # click returns Exit codes instead of raising them here
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        msg = e.format_message()
        hint = None
        if msg.startswith("No such command"):
            bad = msg.split("'")[1] if "'" in msg else ""
            hint = _unknown_command_hint(bad)
        ui.error(msg, hint=hint or (f"see '{e.ctx.command_path} --help'" if e.ctx is not None else None))
        return 2
    except click.ClickException as e:
        ui.error(e.format_message())
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except LcaiError as e:
        if debug:
            raise
        from ..errors import ValidationError

        lines = e.lines() if isinstance(e, ValidationError) and len(e.problems) > 1 else [e.message]
        for line in lines:
            ui.error(ui.localize(line))
        if e.hint:
            ui.hint(ui.localize(e.hint))
        return e.exit_code
    except BrokenPipeError:
        return 0
    except OSError as e:
        import errno

        if debug:
            raise
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _last_defence(e, debug)
        where = f" writing {e.filename}" if e.filename else ""
        ui.error(f"{e.strerror or 'no space left on device'}{where}")
        ui.hint("free some space and run the command again (lcai writes its files atomically: the ones it had "
                "are intact)")
        return 1
    except Exception as e:  # the last line of defence: one line, no traceback, unless --debug
        return _last_defence(e, debug)


def _last_defence(e: BaseException, debug: bool) -> int:
    """One line for an exception no other handler knew, no traceback unless --debug (called while it is
    being handled: a bare ``raise`` re-raises it)."""
    from .. import ui

    if debug:
        raise  # noqa: PLE0704 -- the exception being handled by main()
    info = _plugin_of(e)
    if info is not None:
        ui.error(f"plugin {info.dist} {info.version}: {type(e).__name__}: {e}",
                 hint=f"a bug in {info.dist}: `{ui.cmd('plugins')}` lists it; LCAI_DISABLE_PLUGINS={info.dist} "
                      "turns it off; --debug shows the traceback for its authors")
        return 1
    ui.error(f"internal error: {type(e).__name__}: {e}",
             hint="run again with --debug for the traceback, and report it")
    return 1


def _bind_warnings() -> None:
    """Plugin problems found while the host loads go to stderr. Bound when something first needs the host (a
    command, the command list of --help), so ``lcai --version`` does not import the plugin host (and pluggy)."""
    from .. import plugins

    plugins.report_warning = _warn
    if plugins._host is not None:
        plugins._host.on_warning = _warn


def _warn(message: str) -> None:
    from .. import ui

    ui.warning(ui.localize(message))


def _plugin_of(e: BaseException):
    from .. import plugins

    host = plugins._host
    if host is None:
        return None
    try:
        return host.plugin_of_traceback(e.__traceback__)
    except Exception:  # attribution is best effort: the error line comes first
        return None


def run() -> None:
    sys.exit(main())
