"""Terminal output shared by every command: colour for status, health and errors, and a live spinner line with
elapsed time for long waits — on a terminal only.

Plain, line-by-line text (no escape codes, no spinner, nothing rewritten in place) whenever the stream is not
a TTY, ``CI`` is set (and not ``0``/``false``), ``NO_COLOR`` is set to anything non-empty
(https://no-color.org) or ``TERM=dumb``; ``FORCE_COLOR`` (non-empty) turns the terminal mode on even when piped
(``NO_COLOR`` still wins). Rich draws the terminal mode; it is imported only when something is drawn, never at
``lcai --help`` time, and without it everything is plain.

    from lcai_core import ui
    with ui.progress() as p:          # on stderr
        p.say("firewall lcai-fw-1234 created")     # a permanent line: "[   0.4s] firewall … created"
        p.status("booting")                        # a transient spinner line: "⠋ booting  12.3s" (plain: once)
    click.echo(ui.style_status("running", width=12))   # coloured, padded to 12 columns before colouring
    ui.error("deploy.yml:3: name: …", hint="…")         # "error: …" / "hint: …" on stderr
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from rich.live import Live

# -------------------------------------------------------------- the program name (lcai, or linode-cli build)

_prog = "lcai"


def prog() -> str:
    """How the user invoked us: ``lcai``, or ``linode-cli build`` under the linode-cli plugin. Use it in hints."""
    return _prog


def set_prog(name: str) -> None:
    global _prog
    _prog = name


def cmd(rest: str) -> str:
    """A command line to suggest: ``cmd("plan --directory svc")`` → ``lcai plan --directory svc``."""
    return f"{_prog} {rest}"


_CONTROL = None


def printable(value: object, keep: str = "") -> str:
    """``value`` as text safe for a terminal: control characters (an ESC that starts a terminal sequence, CR,
    BEL, backspace, the C1 range, bidi overrides) from outside — instance labels and tags anyone with write
    access to the account can set — shown as ``\\xNN``/``\\uNNNN`` instead of acting on the terminal. The
    characters in ``keep`` (``"\\n"`` for a multi-line hint) stay as they are."""
    global _CONTROL
    import re

    if _CONTROL is None:
        _CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
    text = str(value)
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else f"\\x{ord(m.group()):02x}"
                        if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def localize(text: str) -> str:
    """``text`` with the commands it suggests (``lcai templates list``, `` `lcai plan` ``) spelt the way the
    user runs lcai: unchanged for ``lcai``, ``linode-cli build templates list`` under linode-cli. For messages
    and hints written before the program name was known (the error printer applies it)."""
    if _prog == "lcai" or "lcai " not in text:
        return text
    import re

    return re.sub(r"(?<![\w./-])lcai (?=[a-z-])", _prog + " ", text)


# -------------------------------------------------------------- terminal or plain


def _set(name: str) -> bool:
    return os.environ.get(name, "") != ""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _have_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def fancy(stream: Optional[IO] = None) -> bool:
    """True when output to ``stream`` (default stderr) may use colour and redraw a live line."""
    if _set("NO_COLOR"):
        return False
    if not _set("FORCE_COLOR"):
        if _truthy("CI") or os.environ.get("TERM") == "dumb":
            return False
        stream = sys.stderr if stream is None else stream
        try:
            if not stream.isatty():
                return False
        except (AttributeError, ValueError):  # closed or not a real file
            return False
    return _have_rich()


def forced_colour() -> Optional[bool]:
    """True when ``FORCE_COLOR`` asks for colour (and ``NO_COLOR`` does not forbid it), else None: the ``color``
    argument of ``click.echo`` and of the command's context (click strips escape codes from piped output
    unless told so)."""
    return True if _set("FORCE_COLOR") and not _set("NO_COLOR") else None


STYLES = {
    # deployment and instance states
    "running": "green", "healthy": "green", "ok": "green", "ready": "green", "active": "green",
    "provisioning": "yellow", "booting": "yellow", "creating": "yellow", "creating?": "yellow",
    "rebuilding": "yellow", "migrating": "yellow", "pending": "yellow", "starting": "yellow",
    "shutting_down": "yellow", "deleting": "yellow", "unknown": "yellow",
    "vanished": "bold red", "offline": "red", "unhealthy": "red", "failed": "bold red", "error": "bold red",
    "stopped": "red", "volumes kept": "yellow", "untracked": "magenta",
    # message prefixes
    "error:": "bold red", "warning:": "yellow", "hint:": "cyan", "ok:": "green",
}

_console_cache: dict = {}


def _ansi(text: str, style: str) -> str:
    from rich.console import Console
    from rich.text import Text

    c = _console_cache.get("c")
    if c is None:
        import io

        c = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=100_000,
                    highlight=False, emoji=False, markup=False, no_color=False)
        _console_cache["c"] = c
    with c.capture() as cap:
        c.print(Text(text, style=style), end="", soft_wrap=True)
    return cap.get()


def style(text: str, style_name: str, stream: Optional[IO] = None, width: Optional[int] = None) -> str:
    """``text`` (padded to ``width`` first, so columns stay aligned) in a rich style, if ``stream`` (default
    stdout) is a terminal; else the padded text unchanged."""
    padded = f"{text:<{width}}" if width else text
    if not style_name or not fancy(sys.stdout if stream is None else stream):
        return padded
    core = padded.rstrip(" ")
    return _ansi(core, style_name) + padded[len(core):]


def status_style(text: str) -> str:
    """The style for a status/health word: the first known word in ``text`` decides (``✗ vanished``,
    ``running (untracked)``)."""
    for word in text.replace("(", " ").replace(")", " ").split():
        s = STYLES.get(word.lower())
        if s:
            return s
    return ""


def style_status(text: str, width: Optional[int] = None, stream: Optional[IO] = None) -> str:
    """A status or health cell (``running``, ``unhealthy``, ``vanished``…) coloured on a terminal."""
    return style(text, status_style(text), stream=stream, width=width)


def _emit(prefix: str, line: str, stream: Optional[IO]) -> None:
    import click

    stream = sys.stderr if stream is None else stream
    # what an error names (a path, an API's reason, a console's last lines) never acts on the terminal
    click.echo(f"{style(prefix, STYLES[prefix], stream=stream)} {printable(line, keep=chr(10) + chr(9))}",
               file=stream, color=forced_colour())


def error(line: str, hint: Optional[str] = None, stream: Optional[IO] = None) -> None:
    """``error: line`` (and ``hint: …``) on stderr; the prefixes coloured on a terminal."""
    _emit("error:", line, stream)
    if hint:
        _emit("hint:", hint, stream)


def warning(line: str, stream: Optional[IO] = None) -> None:
    _emit("warning:", line, stream)


def hint(line: str, stream: Optional[IO] = None) -> None:
    _emit("hint:", line, stream)


# -------------------------------------------------------------- tables that fit the terminal


def table_width(stream: Optional[IO] = None) -> Optional[int]:
    """The width a table on ``stream`` (default stdout) must fit: ``COLUMNS`` when it is a positive number, else
    the terminal's width when ``stream`` is a terminal; ``None`` (no limit: every column whole) when the output
    goes to a pipe or a file."""
    cols = os.environ.get("COLUMNS", "").strip()
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    stream = sys.stdout if stream is None else stream
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, ValueError, OSError):  # closed, not a real file, or no size
        return None


def fit_widths(natural: dict[str, int], priority: list[str], width: Optional[int], gap: int = 2,
               minimum: Optional[dict[str, int]] = None, keep: tuple[str, ...] = ()) -> dict[str, int]:
    """The columns of a table (key -> width) that fit ``width`` characters with ``gap`` between columns.

    ``natural`` is each column's width with every cell whole; ``priority`` lists the keys, the column a user
    reads first first. The last column gives way first: it shrinks to ``minimum[key]`` (a column without one
    never shrinks; its cells then end in ``…``, see :func:`ellipsize`), then it hides, unless it is in ``keep``;
    then the column before it, and so on. Kept columns never hide (the line may then be wider than ``width``).
    ``width`` ``None``: every column at its natural width."""
    widths = {k: natural[k] for k in priority}
    if width is None:
        return widths
    minimum = minimum or {}

    def total() -> int:
        return sum(widths.values()) + gap * (len(widths) - 1)

    for k in reversed(priority):
        over = total() - width
        if over <= 0:
            break
        widths[k] -= min(over, max(0, widths[k] - minimum.get(k, widths[k])))
        if total() > width and k not in keep:
            del widths[k]
    return widths


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, its last one ``…`` when something was cut."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 0 else ""


# -------------------------------------------------------------- progress with elapsed time


class Progress:
    """Phase lines with elapsed time and a transient status line. Plain mode: ``say`` prints a line,
    ``status`` prints a line only when its text changes (keep status texts free of counters)."""

    def __init__(self, stream: Optional[IO] = None, quiet: bool = False, clock=time.monotonic):
        self._stream = stream
        self.quiet = quiet
        self._clock = clock
        self.t0 = clock()
        self.fancy = (not quiet) and fancy(self.stream)
        self._status: Optional[str] = None
        self._status_t0 = self.t0
        self._live: Optional[Live] = None
        self._console = None

    @property
    def stream(self) -> IO:
        return sys.stderr if self._stream is None else self._stream

    def elapsed(self) -> float:
        return self._clock() - self.t0

    def _stamp(self) -> str:
        return f"[{self.elapsed():6.1f}s]"

    # ---- terminal mode (rich)

    def _get_console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=True, highlight=False, markup=False,
                                    emoji=False, soft_wrap=True)
        return self._console

    def __rich__(self):  # what the live line draws on every refresh: spinner, text, elapsed seconds
        from rich.text import Text

        if self._spinner is None:
            from rich.spinner import Spinner

            self._spinner = Spinner("dots", style="cyan")
        self._spinner.text = Text.assemble(str(self._status or ""), ("  ", ""),
                                           (f"{self._clock() - self._status_t0:.0f}s", "dim"))
        return self._spinner

    _spinner = None

    def _start_live(self) -> None:
        from rich.live import Live

        self._live = Live(self, console=self._get_console(), transient=True, refresh_per_second=8,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    # ---- the API

    def say(self, msg: str) -> None:
        """A permanent line: ``[  12.3s] msg``."""
        if self.quiet:
            return
        if self.fancy:
            from rich.text import Text

            self._get_console().print(Text.assemble((self._stamp(), "dim"), " ", msg))
        else:
            import click

            click.echo(f"{self._stamp()} {msg}", file=self.stream)

    def status(self, msg: Optional[str]) -> None:
        """What is being waited for now (``None`` clears it). Terminal: a spinner line redrawn in place with
        the seconds spent on this status; plain: one line when the text changes."""
        if self.quiet or msg == self._status:
            return
        self._status, self._status_t0 = msg, self._clock()
        if not self.fancy:
            if msg is not None:
                import click

                click.echo(f"{self._stamp()} {msg}", file=self.stream)
            return
        if msg is None:
            self.clear()
        elif self._live is None:
            self._start_live()
        else:
            self._live.refresh()

    def clear(self) -> None:
        """Remove the live line (before a prompt, or when done); the next ``status`` draws it again."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
        self._status = None

    def close(self) -> None:
        self.clear()


class _ProgressContext:
    def __init__(self, p: Progress):
        self.p = p

    def __enter__(self) -> Progress:
        return self.p

    def __exit__(self, *exc) -> None:
        self.p.close()


def progress(stream: Optional[IO] = None, quiet: bool = False) -> _ProgressContext:
    """``with ui.progress() as p:`` — a :class:`Progress` on ``stream`` (default stderr), its live line
    removed on exit (also on Ctrl-C or an error)."""
    return _ProgressContext(Progress(stream=stream, quiet=quiet))


# -------------------------------------------------------------- filesystem mistakes as one line


def fs_error(e: OSError, path=None, action: str = "write"):
    """An OSError from creating/writing ``path`` as one actionable error naming the path and what is wrong
    with it: exit 2 for a path the user can fix (a file where a directory is needed, no permission, a
    read-only or special file system), exit 1 for a runtime failure (disk full, I/O error)."""
    import errno

    from .errors import InputError, LcaiError

    fname = os.fspath(e.filename) if e.filename is not None else None
    p = os.fspath(path) if path is not None else (fname or "?")
    code = e.errno
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(fname or p) or _file_in_the_way(p)
        if blocker is not None:
            return InputError(f"{p}: {blocker} is a file, not a directory",
                              hint="choose a path whose folders are directories (or move that file away)")
        return InputError(f"{p}: already exists and is not a directory")
    if code in (errno.EACCES, errno.EPERM):
        return InputError(f"cannot {action} {p}: permission denied",
                          hint="choose a location you can write to, or fix its permissions")
    if code == errno.EROFS:
        return InputError(f"cannot {action} {p}: read-only file system", hint="choose a writable location")
    if code == errno.EISDIR:
        return InputError(f"{p} is a directory", hint="give a file name")
    if code == errno.ENOENT:
        parent = _existing_parent(p)
        why = f" ({parent} does not accept new files or folders)" if parent and os.path.isdir(parent) else ""
        return InputError(f"cannot {action} {p}: no such file or directory{why}", hint="choose a writable location")
    return LcaiError(f"cannot {action} {p}: {e.strerror or e}")


def _file_in_the_way(path: str) -> Optional[str]:
    """The first component of ``path`` that exists but is not a directory (``e4/deploy.yml`` in
    ``e4/deploy.yml/sub``), if any."""
    parts = os.path.normpath(path).split(os.sep)
    for i in range(1, len(parts) + 1):
        sub = os.sep.join(parts[:i]) or os.sep
        if os.path.lexists(sub) and not os.path.isdir(sub):
            return sub
    return None


def _existing_parent(path: str) -> Optional[str]:
    d = os.path.dirname(os.path.abspath(path))
    while d and not os.path.exists(d):
        nd = os.path.dirname(d)
        if nd == d:
            return None
        d = nd
    return d or None
