"""Writing files that may hold secrets or that must never be seen half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text``: mode 0600 from the first byte, fsynced, then renamed, so a
    reader sees the old file or the new one — never a torn one — and nobody else can read it meanwhile."""
    import secrets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file of our own: never through a link or into a file someone placed at a name we would pick (in a
    # shared directory such as /tmp, `.x.<pid>.tmp -> ~/.bashrc` would get the secrets, or a 0644 file keep its mode)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: no free name for a temporary file beside {path.name}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_output(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` (rendered secrets) where the user asked: a regular file (or a new one) is replaced
    atomically with mode 0600 (``write_private``); a terminal, pipe or FIFO (``/dev/stdout``, ``>(…)``) is written
    into, never replaced; a symbolic link to a regular file, a directory, a block device or a socket is refused
    (``InputError``): a rename would replace the link or device itself. Returns ``"file"`` or ``"stream"``."""
    import stat

    from .errors import InputError

    p = Path(path)
    try:
        own = os.lstat(p)
    except FileNotFoundError:
        write_private(p, text)
        return "file"
    try:
        target = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{p} is a symbolic link to nothing: lcai writes the cloud-config to a file of its own",
                         hint="give the path of a new or regular file") from None
    if stat.S_ISCHR(target.st_mode) or stat.S_ISFIFO(target.st_mode):
        with open(p, "w", encoding="utf-8") as fh:  # no O_CREAT race: it exists; no rename: it stays what it is
            fh.write(text)
        return "stream"
    if stat.S_ISLNK(own.st_mode):
        raise InputError(f"{p} is a symbolic link: lcai does not replace it with a file of rendered secrets",
                         hint=f"give the real path ({os.path.realpath(p)}) or a new file")
    if not stat.S_ISREG(own.st_mode):
        raise InputError(f"{p} is not a regular file, a terminal or a pipe: lcai does not replace it",
                         hint="give the path of a new or regular file")
    write_private(p, text)
    return "file"


#: what ``templates install`` leaves out of a template folder it copies (``shutil.ignore_patterns`` names)
TEMPLATE_IGNORED = (".env", ".linode", "__pycache__", ".git")


def refuse_outside_links(folder: str | os.PathLike, *paths: str | os.PathLike,
                         ignore: tuple[str, ...] = TEMPLATE_IGNORED) -> None:
    """A template folder is copied into deployment directories: a symbolic link in it (``paths``, or every file
    under ``folder`` when none is given, but for the names ``ignore`` matches, which the copy leaves out) must
    stay inside ``folder``, so a ``README.md -> ~/.ssh/id_ed25519`` never lands as a plain, committed copy, and
    must not point at what the copy leaves out (``README.md -> .env``). ``InputError`` naming the link and its
    target."""
    import fnmatch

    from .errors import InputError

    root = os.path.realpath(folder)
    if not paths:
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(os.fspath(folder)):
            dirnames[:] = [n for n in dirnames if not any(fnmatch.fnmatch(n, pat) for pat in ignore)]
            found.extend(os.path.join(dirpath, n) for n in [*dirnames, *filenames]
                         if not any(fnmatch.fnmatch(n, pat) for pat in ignore))
        paths = tuple(found)
    for p in [str(x) for x in paths]:
        if not os.path.islink(p):
            continue
        target = os.path.realpath(p)
        if os.path.commonpath([root, target]) != root:
            raise InputError(f"{p} is a symbolic link to {os.readlink(p)}, outside the template folder {folder}: "
                             "lcai does not copy it into a deployment directory",
                             hint="replace the link with the file itself, or remove it")
        left_out = [n for n in Path(os.path.relpath(target, root)).parts
                    if any(fnmatch.fnmatch(n, pat) for pat in ignore)]
        if left_out:
            raise InputError(f"{p} is a symbolic link to {os.readlink(p)}, which is {left_out[0]} (a template copy "
                             "leaves it out: it holds secrets or state): lcai does not copy it into a deployment "
                             "directory", hint="replace the link with the file itself, or remove it")

