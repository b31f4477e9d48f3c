"""VM slots on this machine, shared by everything here that boots a VM (the boot tests, tests/local,
bench/boot.py): ``$LCAI_VM_SLOTS`` VMs at a time (default 1), each holding an exclusive ``flock`` on one of
``$LCAI_VM_LOCK`` (default ``/tmp/lcai-vm.lock``), ``$LCAI_VM_LOCK.1``, … for as long as it runs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from typing import Iterator

LOCK = os.environ.get("LCAI_VM_LOCK", "/tmp/lcai-vm.lock")


def slots() -> int:
    try:
        return max(1, int(os.environ.get("LCAI_VM_SLOTS", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def vm_slot(poll: float = 1.0) -> Iterator[str]:
    """Block until a VM slot is free, hold it for the ``with`` body; yields the slot's lock file."""
    paths = [LOCK] + [f"{LOCK}.{i}" for i in range(1, slots())]
    t = time.monotonic()
    while True:
        for path in paths:
            fh = open(path, "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            waited = time.monotonic() - t
            if waited > 1:
                print(f"[vm-slot] waited {waited:.0f}s for {path}", file=sys.stderr, flush=True)
            try:
                yield path
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
            return
        time.sleep(poll)
