"""The Instrument protocol, its capability protocols, and the checks every instrument applies.

An instrument produces observations of one or more modalities, one at a time: a microscope,
a digital twin, a theory simulator. Like ophyd's ``Readable`` it is a small runtime-checkable
Protocol: a ``name``, its ``modalities``, ``info(modality)`` and ``measure(request)``. What
only some instruments can do is a separate small protocol the class declares by having it:

* :class:`Priced` — requests differ in price by their parameters (a simulator's fidelity, a
  detector's dwell time); :mod:`coscope.instruments.pricing` turns it into the one price
  function shared by the deciding agent and the accounting;
  :class:`PriceFloor` adds its cheapest request's relative price;
* :class:`ParameterisedRequests` — requests may carry parameters beyond :data:`COMMON_PARAMS`
  (``theta``, ``fidelity``, ``dwell_s``), with a schema the request checks enforce;
* :class:`Calibratable` — the instrument has parameters an agent may tune to match experiment;
* :class:`Stoppable` — a running measurement can be stopped;
* :class:`Connects` — the instrument talks to hardware (a control system) and connects to it
  before the campaign starts, so a PV that does not connect stops it with one sentence.
* :class:`Dwells` — requests choose a relative dwell time (request param ``dwell``) that
  trades noise for price (:mod:`coscope.instruments.simulated`, ``docs/fidelity.md``).
* :class:`MeasuresPoints` — it measures points of a continuous box, given by the request
  param ``x`` (:mod:`coscope.instruments.synthetic`).

Latency, noise and cost are wrappers around any instrument
(:mod:`coscope.instruments.wrappers`, :mod:`coscope.instruments.pricing`); a wrapper's base
instrument, whose capabilities count, is :func:`~coscope.instruments.wrappers.unwrap`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coscope.errors import BadMeasurement, CoscopeError, InstrumentError
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

STAGE_FROM = "stage_from"
"""Request param ``[row, col]``: where the stage is when the measurement starts (travel)."""

COMMON_PARAMS: dict[str, str] = {
    STAGE_FROM: "[row, col] where the stage starts; priced as stage travel",
}
"""Request params every instrument accepts: name -> one-line description."""


@runtime_checkable
class Instrument(Protocol):
    """What produces measurements (``name`` and ``modalities`` may be plain attributes)."""

    @property
    def name(self) -> str:
        """Instrument name; requests addressed to another name are rejected."""
        ...

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the modalities it can measure."""
        ...

    def info(self, modality: str) -> ModalityInfo:
        """Signal description (axis ``(L,)``, units) of ``modality``."""
        ...

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Execute one request; the result's ``signal`` is ``(L,)`` finite float64.

        ``Measurement.cost`` is the request's price
        (:func:`coscope.instruments.pricing.pricing_of`); a bare instrument charges the unit
        cost times its :class:`Priced` factor, the cost wrapper the campaign's price.
        """
        ...


@runtime_checkable
class Priced(Protocol):
    """An instrument whose requests differ in price by what they ask for."""

    def relative_price(self, modality: str, location: Location, params: Mapping[str, Any]) -> float:
        """Price of a request relative to the instrument's reference request (1.0).

        The spec's ``cost`` is the price of the reference request (for a lattice simulator:
        its largest side); a request is charged ``cost * relative_price`` (plus travel).

        Raises:
            InstrumentError: If ``params`` are invalid (e.g. a fidelity not offered).
        """
        ...


@runtime_checkable
class PriceFloor(Protocol):
    """A :class:`Priced` instrument that knows its cheapest request (budget pre-checks)."""

    def lowest_relative_price(self) -> float:
        """The least :meth:`Priced.relative_price` of any valid request, in ``[0, 1]``."""
        ...


@runtime_checkable
class ParameterisedRequests(Protocol):
    """An instrument whose requests may carry parameters beyond :data:`COMMON_PARAMS`."""

    def request_params(self) -> Mapping[str, str]:
        """Accepted request params (besides the common ones): name -> one-line description."""
        ...

    def check_params(self, params: Mapping[str, Any]) -> None:
        """InstrumentError (one sentence) unless the values of ``params`` are valid."""
        ...


@runtime_checkable
class Calibratable(Protocol):
    """An instrument with parameters an agent may tune until it matches experiment."""

    def calibration_bounds(self) -> Mapping[str, tuple[float, float]]:
        """Tunable parameters and their box ``{name: (lo, hi)}`` (empty: nothing to tune)."""
        ...


@runtime_checkable
class Stoppable(Protocol):
    """An instrument whose running measurement can be stopped (a real stage, a long scan)."""

    def stop(self) -> None:
        """Stop what is running as soon as it is safe; a no-op when idle."""
        ...


@runtime_checkable
class Connects(Protocol):
    """An instrument that reaches hardware over a connection (EPICS Channel Access …)."""

    def connect(self) -> None:
        """Connect now (a no-op when connected).

        Raises:
            InstrumentDown: One sentence naming what did not connect and how to fix it.
        """
        ...


@runtime_checkable
class MeasuresPoints(Protocol):
    """An instrument that measures points of a continuous box (``docs/spaces.md``): each
    request carries its coordinates as the param ``x`` (declared by
    :class:`ParameterisedRequests`)."""

    def point_dimension(self) -> int:
        """Number of coordinates ``d`` of a point it measures."""
        ...


DWELL = "dwell"
"""Request param: relative dwell time (1.0 = the reference request); see :class:`Dwells`."""


def reference_dwell(dwells: Sequence[float]) -> float:
    """The dwell of a request that names none: 1.0 if offered, else the middle one offered."""
    return 1.0 if 1.0 in dwells else float(sorted(dwells)[len(dwells) // 2])


@runtime_checkable
class Dwells(Protocol):
    """An instrument whose requests choose a relative dwell time ``d`` (param :data:`DWELL`):
    the noise std of a measurement scales as ``1 / sqrt(d)`` (what
    :class:`~coscope.instruments.wrappers.WithNoise` adds); its price is its
    :class:`Priced` relative price (for the simulated microscope: a fixed overhead plus the
    dwell, ``docs/fidelity.md``)."""

    def dwells(self) -> tuple[float, ...]:
        """The relative dwell times offered, ascending (``1.0``: the reference request)."""
        ...

    def dwell(self, params: Mapping[str, Any]) -> float:
        """The dwell a request's ``params`` ask for (default :func:`reference_dwell`);
        InstrumentError if not offered."""
        ...


def accepted_params(instrument: Instrument) -> dict[str, str]:
    """Request params ``instrument`` accepts: the common ones plus its declared schema."""
    extra = instrument.request_params() if isinstance(instrument, ParameterisedRequests) else {}
    return {**COMMON_PARAMS, **extra}


def check_params(instrument: Instrument, params: Mapping[str, Any]) -> None:
    """InstrumentError unless ``params`` fit the schema of ``instrument`` (a base instrument)."""
    allowed = accepted_params(instrument)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InstrumentError(
            f"request param(s) {unknown} are not accepted by instrument {instrument.name!r}: "
            f"use only {sorted(allowed)}."
        )
    origin = params.get(STAGE_FROM)
    if origin is not None and (
        not isinstance(origin, list | tuple)
        or len(origin) != 2
        or not all(isinstance(v, int | np.integer) for v in origin)
    ):
        raise InstrumentError(
            f"request param {STAGE_FROM}={origin!r} is invalid: give [row, col] as two ints."
        )
    if isinstance(instrument, ParameterisedRequests):
        instrument.check_params(params)


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
    ``(H, W)``, the seed (a non-negative int) and the params (:func:`check_params`).

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
    check_params(instrument, request.params)


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
