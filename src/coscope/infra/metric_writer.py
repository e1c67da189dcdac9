"""Per-event MLflow metrics written by one background thread, off the loop's critical path.

A ``log_batch`` against the sqlite tracking store commits a transaction: 20-45 ms each on
this machine under load (two or three per measurement: the decision and the step), time in
which, without it, the loop could already hand the instrument its next request. The writer
keeps the order of the batches, and :meth:`MetricWriter.flush` (called when the campaign's
run is finished) waits for all of them and re-raises the first error of a write.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any


class MetricWriter:
    """Write metric batches in order on one daemon thread.

    Args:
        write: ``write(run_id, metrics)``, e.g. ``MlflowClient.log_batch`` with ``metrics=``.
    """

    def __init__(self, write: Callable[[str, Sequence[Any]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[str, Sequence[Any]] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def put(self, run_id: str, metrics: Sequence[Any]) -> None:
        """Queue one batch; the thread starts on the first."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
            self._thread.start()
        self._queue.put((run_id, metrics))

    def flush(self) -> None:
        """Wait until every queued batch is written; re-raise the first write error."""
        if self._thread is not None:
            self._queue.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Flush and stop the thread."""
        try:
            self.flush()
        finally:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure, drop the rest (flush reports it)
                    self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by flush()
                self._error = exc
            finally:
                self._queue.task_done()
