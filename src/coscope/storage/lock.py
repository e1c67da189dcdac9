"""The single-writer lock of a trace (an advisory ``flock``, released even by SIGKILL)."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from coscope.errors import StoreError

LOCK_NAME = ".coscope-writer.lock"


def acquire_lock(path: Path) -> IO:
    """Take the single-writer lock (released when the process ends, even by SIGKILL)."""
    lock = open(path / LOCK_NAME, "a+")  # noqa: SIM115 - held for the handle's lifetime
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        raise StoreError(
            f"the experimental trace at {path} is already open for writing: close the other "
            "writer first (one campaign writes a trace at a time)"
        ) from exc
    return lock
