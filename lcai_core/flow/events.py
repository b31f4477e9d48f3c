"""What the flow tells its front end while it works, and asks of it: the CLI prints (a spinner line, stderr
lines), the TUI or another caller may show them otherwise. The flow imports no click and no UI toolkit."""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    def say(self, line: str) -> None:
        """Progress: one line replacing the last (the CLI's spinner)."""

    def notice(self, line: str) -> None:
        """A line the user keeps (what will change, what was left where an interrupt stopped the flow)."""

    def clear(self) -> None:
        """Remove the progress line before permanent output follows."""


class Quiet:
    """Events that show nothing (tests, scripts); ``lines`` keeps every line said or noticed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)

    def notice(self, line: str) -> None:
        self.lines.append(line)

    def clear(self) -> None:
        pass
