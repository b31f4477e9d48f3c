"""lcai plugin ``buildwatch``: the capability, container events in `lcai logs`, and BuildWatch issues in
`lcai status ID` and the TUI."""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_capabilities(register):
    from .capability import BuildWatch

    register(BuildWatch())


@hookimpl
def deployment_events(deployment, run, limit, since):
    if "buildwatch" not in (deployment.get("features") or []):
        return None
    from .client import events

    return events(deployment, run, limit, since)


@hookimpl
def deployment_sections(deployment):
    if "buildwatch" not in (deployment.get("features") or []):
        return []
    from .client import issues_section

    return [issues_section(deployment)]


@hookimpl(optionalhook=True)
def register_tui_panels(register):
    """A BuildWatch panel on lcai-tui's detail screen, and container events on its logs screen (no Textual here)."""
    from .client import tui_issue_lines, tui_log_lines

    register("BuildWatch", lines=tui_issue_lines, log_lines=tui_log_lines)
