"""The TUI's own hook: panels on the detail screen, contributed by other plugins without importing Textual."""

from lcai_core.api import hookspec


@hookspec
def register_tui_panels(register):
    """register(title, lines=fn(deployment) -> [str], log_lines=fn(deployment, cursor) -> ([str], cursor) or None)"""
