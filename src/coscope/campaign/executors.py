"""Executors: the one place where proposals become measurements and fits happen.

The campaign loop is written against :class:`Executor`; it never knows whether a
measurement ran in-process, on a Dask worker, or as a Prefect task on a Dask worker.

* :class:`LocalExecutor` measures and fits in the calling process (dry runs, unit tests,
  the "direct call" baseline of the overhead benchmark).
* :class:`DaskExecutor` submits measurements to a Dask cluster by reference (specs + the
  request cross the wire, never a live instrument) and fits as a Prefect task on the same
  cluster when a flow is running.

``submit(request, after=handle)`` queues a request behind the instrument's current one
(``instruments[].queue``): it starts when ``after`` has ended — chained on the scheduler, not
in the loop — and is not measured at all if ``after`` failed (its handle raises an
:class:`~coscope.errors.InstrumentError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Literal, Protocol

import numpy as np

from coscope.errors import InstrumentError
from coscope.instruments import Instrument
from coscope.tasks.fit import fit_surrogate
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


class LocalExecutor:
    """Measure and fit in this process, one at a time (deterministic, no engines)."""

    def __init__(self, instruments: dict[str, Instrument]) -> None:
        self._instruments = instruments

    def submit(self, request: MeasurementRequest, after: Future | None = None) -> Future:
        future: Future = Future()
        future.step = request.step  # type: ignore[attr-defined]
        if after is not None and after.exception() is not None:
            future.set_exception(not_measured(request, after.exception()))
            return future
        try:
            future.set_result(self._instruments[request.instrument].measure(request))
        except Exception as exc:  # the loop decides what a failure means
            future.set_exception(exc)
        return future

    def wait_first(self, handles: Sequence[Future]) -> list[Future]:
        return sorted((h for h in handles if h.done()), key=lambda h: h.step)

    def result(self, handle: Future) -> Measurement:
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
        return fit_surrogate(kind, X, y, seed, iterations, options)


class DaskExecutor:
    """Measure on a Dask cluster by reference; fit there too.

    Args:
        client: A ``distributed.Client`` connected to the campaign's cluster.
        references: Instrument name -> ``(sample_spec, instrument_spec)`` JSON dicts.
        seed: Campaign seed (seeds the sample's physics in the workers).
        time_scale: Multiplier of instrument latencies.
        measure_via: ``"dask"`` submits a plain function (~11 ms overhead, median);
            ``"prefect"`` submits the ``measure`` Prefect task through the flow's
            DaskTaskRunner (~180 ms, each measurement visible in the Prefect UI).
        fit_via_prefect: Run fits as the ``fit`` Prefect task (needs a running flow).
    """

    def __init__(
        self,
        client: Any,
        references: dict[str, tuple[dict, dict]],
        *,
        seed: int,
        time_scale: float,
        measure_via: Literal["dask", "prefect"] = "dask",
        fit_via_prefect: bool = True,
    ) -> None:
        self._client = client
        self._refs = references
        self._seed = seed
        self._time_scale = time_scale
        self._via = measure_via
        self._fit_via_prefect = fit_via_prefect
        self._steps: dict[Any, int] = {}
        self._queued: dict[Any, MeasurementRequest] = {}  # Prefect: requests behind another

    def submit(self, request: MeasurementRequest, after: Handle | None = None) -> Handle:
        sample_spec, instrument_spec = self._refs[request.instrument]
        args = (sample_spec, instrument_spec, self._seed, self._time_scale, request)
        if self._via == "prefect":
            from coscope.tasks.measure import measure_task

            # queued: runs once `after` completed; never runs if it failed (NotReady)
            handle = measure_task.submit(*args, wait_for=[after] if after is not None else None)
            if after is not None:
                self._queued[handle] = request
        else:
            from coscope.tasks.measure import measure_after, measure_by_reference

            key = f"measure-{request.step}-{id(request)}"
            if after is None:
                handle = self._client.submit(measure_by_reference, *args, pure=False, key=key)
            else:  # a dependency on the scheduler: starts when `after` ends, errs if it erred
                handle = self._client.submit(measure_after, after, *args, pure=False, key=key)
        self._steps[handle] = request.step
        return handle

    def wait_first(self, handles: Sequence[Handle]) -> list[Handle]:
        if self._via == "prefect":
            from prefect.futures import as_completed

            first = next(as_completed(list(handles)))
            done = [first] + [h for h in handles if h is not first and h.state.is_final()]
        else:
            from distributed import wait

            done = list(wait(list(handles), return_when="FIRST_COMPLETED").done)
        return sorted(done, key=lambda h: self._steps[h])

    def result(self, handle: Handle) -> Measurement:
        self._steps.pop(handle, None)
        request = self._queued.pop(handle, None)
        if request is not None:
            handle.wait()  # done: Completed or Failed; NotReady (pending) if its upstream failed
            if not handle.state.is_final():
                raise not_measured(request, RuntimeError(handle.state.message))
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
        args = (kind, X, y, seed, iterations, options)
        if self._fit_via_prefect:
            from coscope.tasks.fit import fit_task

            return fit_task.submit(*args).result()
        return self._client.submit(fit_surrogate, *args, pure=False).result()
