"""The single-writer lock of a trace (an advisory ``flock``, released even by SIGKILL)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def run_folder_lock(run_dir: Path, campaign: str) -> Iterator[None]:
    """Hold the run folder's lock for one ``coscope run|resume`` process (a ``flock`` on the
    folder itself, so no file is added; released even by SIGKILL).

    Taken before the engines start (the ephemeral Prefect database and the store both live
    in the run folder), so a second run on the same folder is refused at once instead of
    racing the first on its Prefect database. A folder made here and left empty is removed.
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StoreError(
                f"campaign '{campaign}' is already running from {run_dir} (another coscope "
                "process holds its run folder): wait for it to end, or stop it with "
                "`coscope intervene STORE stop`, then resume"
            ) from exc
        yield
    finally:
        os.close(fd)
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()
