"""The Instrument protocol and the checks every instrument applies to requests and signals.

An instrument produces observations of one or more modalities, one at a time: a microscope,
a digital twin, a theory simulator. It is a small runtime-checkable Protocol (like ophyd's
``Readable``); latency, noise and cost are wrappers around any instrument
(:mod:`coscope.instruments.wrappers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from coscope.errors import BadMeasurement, CoscopeError, InstrumentError
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo


@runtime_checkable
class Instrument(Protocol):
    """What produces measurements.

    Attributes:
        name: Instrument name; requests addressed to another name are rejected.
        modalities: Names of the modalities it can measure.
    """

    name: str
    modalities: tuple[str, ...]

    def info(self, modality: str) -> ModalityInfo:
        """Signal description (axis ``(L,)``, units) of ``modality``."""
        ...

    def expected_cost(self, modality: str, location: Location) -> float:
        """Cost (campaign cost unit, >= 0) of measuring ``modality`` at ``location``."""
        ...

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Execute one request; the result's ``signal`` is ``(L,)`` finite float64."""
        ...


def check_modality(instrument: Instrument, modality: str) -> None:
    """InstrumentError unless ``instrument`` offers ``modality``."""
    if modality not in instrument.modalities:
        raise InstrumentError(
            f"modality {modality!r} is not offered by instrument {instrument.name!r}: use one "
            f"of {list(instrument.modalities)}."
        )


def check_location(sample_shape: tuple[int, int], location: Location) -> None:
    """InstrumentError unless ``location`` lies on a grid of ``sample_shape = (H, W)``."""
    h, w = sample_shape
    if not (0 <= location.row < h and 0 <= location.col < w):
        raise InstrumentError(
            f"location ({location.row}, {location.col}) is off the sample: rows must be in "
            f"0..{h - 1} and columns in 0..{w - 1}."
        )


def validate_request(
    instrument: Instrument, sample_shape: tuple[int, int], request: MeasurementRequest
) -> None:
    """Reject a request ``instrument`` cannot execute, with one sentence saying why.

    Checks the instrument name, the modality, the location against ``sample_shape``
    ``(H, W)`` and the seed (a non-negative int).

    Raises:
        InstrumentError: On the first problem found.
    """
    if request.instrument != instrument.name:
        raise InstrumentError(
            f"request for step {request.step} is addressed to instrument "
            f"{request.instrument!r} but was sent to {instrument.name!r}: route it by name."
        )
    check_modality(instrument, request.modality)
    check_location(sample_shape, request.location)
    if not isinstance(request.seed, int | np.integer) or request.seed < 0:
        raise InstrumentError(
            f"request seed {request.seed!r} is invalid: derive it with "
            "MeasurementRequest.from_proposal (a non-negative int)."
        )


def validate_signal(info: ModalityInfo, signal: np.ndarray) -> np.ndarray:
    """Return ``signal`` as ``(L,)`` float64 if it matches ``info``; else InstrumentError.

    Args:
        info: The modality's description; ``info.length`` is the expected ``L``.
        signal: Signal produced by an instrument.

    Raises:
        BadMeasurement: Wrong shape, dtype, or a non-finite value.
    """
    arr = np.asarray(signal)
    if arr.shape != (info.length,):
        raise BadMeasurement(
            f"{info.name} signal has shape {arr.shape}, expected ({info.length},): the "
            "instrument must return one value per axis point."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise BadMeasurement(
            f"{info.name} signal has dtype {arr.dtype}: return real floating-point values."
        )
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise BadMeasurement(
            f"{info.name} signal has {int(bad.sum())} non-finite value(s) (first at index "
            f"{int(np.argmax(bad))}, value {arr[bad][0]}): check the instrument or drop the "
            "measurement."
        )
    return arr


def per_modality(
    value: float | Mapping[str, float],
    modality: str,
    what: str,
    error: type[CoscopeError] = InstrumentError,
) -> float:
    """Resolve a scalar-or-per-modality setting (cost, latency) for ``modality``.

    Raises:
        InstrumentError: (or ``error``) If a mapping lacks ``modality`` or the value is
            negative or non-finite.
    """
    if isinstance(value, Mapping):
        if modality not in value:
            raise error(f"no {what} given for modality {modality!r}: add it to {dict(value)}.")
        value = value[modality]
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise error(f"{what} {value!r} for {modality!r} is invalid: give a number.") from None
    if not np.isfinite(out) or out < 0:
        raise error(f"{what} {out!r} for {modality!r} is invalid: use a value >= 0.")
    return out
