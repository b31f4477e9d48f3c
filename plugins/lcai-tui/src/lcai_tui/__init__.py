"""lcai plugin ``tui``: `lcai tui`, a Textual dashboard. lcai-core never imports Textual; this module neither,
until the command runs.

Other plugins add panels to the detail screen by implementing the TUI's own hook (mark it optional, so it
loads whether or not lcai-tui is installed):

    @hookimpl(optionalhook=True)
    def register_tui_panels(register):
        register("BuildWatch", lines=lambda deployment: [...], log_lines=lambda deployment, cursor: ([...], cursor))
"""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_commands(cli):
    from lcai_core.api.frontend import LazyCommand

    cli.add_command(LazyCommand("tui", ("lcai_tui.command", "tui"),
                                "Dashboard of deployments: status, health, issues, logs, destroy (Textual)."))
