"""Measuring by reference: a worker rebuilds the instrument from its spec, then measures.

Only specs (plain JSON dicts) and the request cross the process boundary; the instrument
and the sample it observes are built once per worker process and cached (DESIGN.md, rule 6).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from coscope.errors import ConfigError, InstrumentDown
from coscope.instruments import Instrument
from coscope.types import Measurement, MeasurementRequest


@lru_cache(maxsize=8)
def _instrument_from_json(
    sample_json: str, instrument_json: str, seed: int, time_scale: float
) -> Instrument:
    from coscope.infra.compose import build_instrument_from_specs

    return build_instrument_from_specs(
        json.loads(sample_json), json.loads(instrument_json), seed=seed, time_scale=time_scale
    )


def measure_by_reference(
    sample_spec: dict[str, Any],
    instrument_spec: dict[str, Any],
    seed: int,
    time_scale: float,
    request: MeasurementRequest,
) -> Measurement:
    """Build (or reuse) the instrument described by the specs and execute ``request``.

    Args:
        sample_spec: ``SampleSpec`` as a JSON dict.
        instrument_spec: ``InstrumentSpec`` as a JSON dict.
        seed: Campaign seed (the sample's physics is seeded by it).
        time_scale: Multiplier of the instrument latency.
        request: What to measure.

    Raises:
        InstrumentDown: The instrument cannot be built here (a plug-in this worker cannot
            import, a PV it cannot reach): recorded as a failed measurement, resumable.
    """
    try:
        instrument = _instrument_from_json(
            json.dumps(sample_spec, sort_keys=True),
            json.dumps(instrument_spec, sort_keys=True),
            seed,
            time_scale,
        )
    except ConfigError as exc:
        raise InstrumentDown(
            f"instrument {request.instrument!r} cannot be built where it measures: "
            f"{str(exc).rstrip('.')}."
        ) from None
    return instrument.measure(request)


def measure_after(previous: Any, *args: Any) -> Measurement:
    """A queued request: ``measure_by_reference(*args)`` once ``previous`` has ended.

    ``previous`` is the Dask future of the instrument's request before this one: Dask starts
    this task when it has ended (its Measurement, resolved on the worker that holds it, where
    the scheduler places this task, is ignored). Dask never runs this when ``previous``
    erred: the error propagates to this task's future. Prefect chains with ``wait_for``.
    """
    return measure_by_reference(*args)


measure_task = task(
    measure_by_reference,
    name="measure",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=0,
)
"""The measurement as a Prefect task (``execution.measure_via: prefect``)."""
