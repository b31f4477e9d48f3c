"""Writing files that may hold secrets or that must never be seen half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text``: mode 0600 from the first byte, fsynced, then renamed, so a
    reader sees the old file or the new one — never a torn one — and nobody else can read it meanwhile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
