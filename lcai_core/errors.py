"""One error hierarchy. The CLI prints ``error: <message>`` (+ ``hint: …``) on stderr and exits with
``exit_code``; ``--debug`` shows the traceback instead of hiding it."""

from __future__ import annotations


class LcaiError(Exception):
    """A failure the user can act on. ``exit_code`` 2 = bad input/usage, 1 = runtime failure."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(LcaiError):
    """Bad input (a template, a .env file, a flag): exit 2."""

    exit_code = 2


class TrackedError(LcaiError):
    """A failure after the deployment exists whose message and hint already say that it stays tracked and how to
    go on (retry, resume, roll back, destroy): the command that catches it adds no hint of its own."""


class PluginError(LcaiError):
    """A plugin's code failed (a hook implementation, a provider method): ``plugin DIST VER: CALL: WHY``.
    ``why`` is ``Type: message`` for an unexpected exception (a bug in the plugin, kept as ``error``), the
    message of an ``LcaiError``. Raised by the plugin host's ``call``, never by plugins."""

    def __init__(self, dist: str, version: str, call: str, error: BaseException):
        self.dist, self.version, self.call, self.error = dist, version, call, error
        self.why = error.message if isinstance(error, LcaiError) else f"{type(error).__name__}: {error}"
        self.plugin = f"{dist} {version}".strip()
        super().__init__(f"plugin {self.plugin}: {call}: {self.why}",
                         hint=f"a bug in {dist}: `lcai plugins` lists it; LCAI_DISABLE_PLUGINS={dist} turns it off; "
                              "--debug shows the traceback for its authors")


class InterruptReported(KeyboardInterrupt):
    """Ctrl-C after the command said what it leaves behind (a tracked deployment, or what was removed): the CLI
    adds no "nothing was created" of its own and exits 130."""


class Problem:
    """One located problem in an input file: ``file:line: dotted.path: message``."""

    __slots__ = ("file", "line", "path", "message")

    def __init__(self, file: str | None, line: int | None, path: str, message: str):
        self.file, self.line, self.path, self.message = file, line, path, message

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class MissingPlugin(Problem):
    """A problem the user fixes by installing the distribution ``dist`` (a first-party capability not installed)."""

    __slots__ = ("dist",)

    def __init__(self, file: str | None, line: int | None, path: str, message: str, dist: str):
        super().__init__(file, line, path, message)
        self.dist = dist


class ValidationError(InputError):
    """All problems found in one pass over an input file."""

    def __init__(self, problems: list[Problem], hint: str | None = None):
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid input"
        more = len(self.problems) - 1
        message = first if more <= 0 else f"{first} (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(message, hint)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
