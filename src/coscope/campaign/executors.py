"""Executors: the one place where proposals become measurements and fits happen.

The campaign loop is written against :class:`Executor`; it never knows whether a
measurement ran in-process, on a Dask worker, or as a Prefect task on a Dask worker.

* :class:`LocalExecutor` measures and fits in the calling process (dry runs, unit tests,
  the "direct call" baseline of the overhead benchmark).
* :class:`~coscope.infra.executors.DaskExecutor` (at the edge, in ``infra``: it needs Dask
  and Prefect) submits measurements to a Dask cluster by reference (specs + the request cross
  the wire, never a live instrument) and fits as a Prefect task on the same cluster when a
  flow is running.

``submit(request, after=handle)`` queues a request behind the instrument's current one
(``instruments[].queue``): it starts when ``after`` has ended — chained on the scheduler, not
in the loop — and is not measured at all if ``after`` failed (its handle raises an
:class:`~coscope.errors.InstrumentError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from coscope.errors import InstrumentError
from coscope.instruments import Instrument
from coscope.models.fitting import fit_here
from coscope.types import Measurement, MeasurementRequest

Handle = Any


class Executor(Protocol):
    """Runs measurements concurrently and fits surrogates."""

    def submit(self, request: MeasurementRequest, after: Handle | None = None) -> Handle:
        """Start measuring ``request`` (once ``after``, if given, has ended); returns a handle."""
        ...

    def wait_first(self, handles: Sequence[Handle]) -> list[Handle]:
        """Block until at least one handle is done; return the done ones (by request step)."""
        ...

    def result(self, handle: Handle) -> Measurement:
        """The measurement of a done handle (re-raises the instrument's error)."""
        ...

    def fit(
        self,
        kind: str,
        X: np.ndarray,
        y: np.ndarray,
        seed: int,
        iterations: int,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Fit surrogate ``kind`` on ``X`` (n x d) and ``y`` (n,); returns its plain state."""
        ...


def not_measured(request: MeasurementRequest, cause: BaseException) -> InstrumentError:
    """The error of a queued request that was not measured because the one before it failed."""
    return InstrumentError(
        f"step {request.step} was not measured: the request before it on "
        f"'{request.instrument}' failed ({cause})"
    )


class StepFuture(Future):
    """A done-at-once future that knows the step of its request."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class LocalExecutor:
    """Measure and fit in this process, one at a time (deterministic, no engines)."""

    def __init__(self, instruments: dict[str, Instrument]) -> None:
        self._instruments = instruments

    def submit(self, request: MeasurementRequest, after: Future | None = None) -> StepFuture:
        future = StepFuture(request.step)
        failed = after.exception() if after is not None else None
        if failed is not None:
            future.set_exception(not_measured(request, failed))
            return future
        try:
            future.set_result(self._instruments[request.instrument].measure(request))
        except Exception as exc:  # the loop decides what a failure means
            future.set_exception(exc)
        return future

    def wait_first(self, handles: Sequence[StepFuture]) -> list[StepFuture]:
        return sorted((h for h in handles if h.done()), key=lambda h: h.step)

    def result(self, handle: StepFuture) -> Measurement:
        return handle.result()

    def fit(
        self,
        kind: str,
        X: np.ndarray,
        y: np.ndarray,
        seed: int,
        iterations: int,
        options: dict[str, Any] | None = None,
    ) -> Any:
        return fit_here(kind, X, y, seed, iterations, options)
