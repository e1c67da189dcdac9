"""The Dask executor: measurements on a Dask cluster by reference, fits there too.

It implements :class:`~coscope.campaign.executors.Executor` at the edge of the system, so
that the campaign package itself never loads Dask or Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from coscope.campaign.executors import Handle, not_measured
from coscope.tasks.fit import fit_surrogate
from coscope.types import Measurement, MeasurementRequest


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
