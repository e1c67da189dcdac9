"""An instrument that returns a sample's exact ground-truth signals (a noise-free twin).

:class:`DwellingInstrument` is the same twin offering relative dwell times (spec options
``dwell: [0.25, 1.0, 4.0]`` and ``overhead: 1.0``, ``docs/fidelity.md``): a request of dwell
``d`` takes the time ``overhead + d`` (move, settle, read-out, then the dwell; in units of the
reference dwell 1.0), so it costs ``(overhead + d) / (overhead + 1)`` times the reference
price, and under the noise wrapper it has noise std ``sigma / sqrt(d)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments.base import DWELL, reference_dwell, validate_request, validate_signal
from coscope.instruments.sample import Sample
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo


class SimulatedInstrument:
    """Measures a :class:`Sample` by reading its ground truth.

    Wrap it with :mod:`coscope.instruments.wrappers` for latency and noise and with
    :class:`~coscope.instruments.pricing.WithCost` for a price; alone it charges the unit
    cost 1 per measurement.

    Args:
        name: Instrument name.
        sample: The sample measured; must carry ground truth for every modality offered.
        modalities: Modalities offered (default: all with ground truth in ``sample``).
    """

    def __init__(
        self,
        name: str,
        sample: Sample,
        modalities: Sequence[str] | None = None,
    ) -> None:
        mods = tuple(sample.truth) if modalities is None else tuple(modalities)
        missing = [m for m in mods if m not in sample.truth]
        if not mods or missing:
            raise ConfigError(
                f"instrument {name!r} cannot offer modalities {missing or list(mods)}: sample "
                f"{sample.name!r} has ground truth only for {sorted(sample.truth)}."
            )
        self.name = name
        self.sample = sample
        self.modalities: tuple[str, ...] = mods

    def __repr__(self) -> str:
        return f"SimulatedInstrument({self.name!r}, sample={self.sample.name!r})"

    def info(self, modality: str) -> ModalityInfo:
        """Signal description of ``modality`` (from the sample)."""
        return self.sample.info(modality)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """The ground-truth signal at ``request.location``, ``(L,)`` float64."""
        t_start = time.time()
        validate_request(self, self.sample.shape, request)
        signal = validate_signal(
            self.info(request.modality), self.sample.signal(request.modality, request.location)
        )
        return Measurement.answering(request, self.name, signal, t_start)


OVERHEAD = 1.0
"""Default fixed time of every measurement (move, settle, read-out), in reference dwells."""


class DwellingInstrument(SimulatedInstrument):
    """A :class:`SimulatedInstrument` whose requests choose a relative dwell time.

    A request of dwell ``d`` takes ``overhead + d`` (both in units of the reference dwell 1.0):
    the fixed part (stage move, settling, read-out) is paid whatever the dwell. Its price is
    that time relative to the reference request's::

        relative_price(d) = (overhead + d) / (overhead + 1)

    so a dwell-1.0 request costs the spec's ``cost`` exactly, and the campaign's one price
    function (:class:`~coscope.instruments.pricing.Pricing`) charges
    ``cost * relative_price(d)`` (+ travel). With ``overhead`` 0 the price is proportional to
    the dwell and a longer dwell never buys more map information per cost; with an overhead it
    does when the noise dominates (``docs/fidelity.md``).

    It is :class:`~coscope.instruments.base.Priced`,
    :class:`~coscope.instruments.base.PriceFloor`,
    :class:`~coscope.instruments.base.ParameterisedRequests` (param ``dwell``) and
    :class:`~coscope.instruments.base.Dwells` (noise std ``1/sqrt(dwell)`` under
    :class:`~coscope.instruments.wrappers.WithNoise`). The signal itself is the ground truth.

    Args:
        name: Instrument name.
        sample: The sample measured.
        modalities: Modalities offered (default: all with ground truth).
        dwell: Relative dwell times offered, each finite and > 0 (1.0: the reference request,
            the spec's ``cost`` and ``noise``); a request without ``dwell`` is measured at
            :func:`~coscope.instruments.base.reference_dwell` (1.0 if offered, else the
            middle one).
        overhead: Fixed time of every measurement, in reference dwells, finite and >= 0.
    """

    def __init__(
        self,
        name: str,
        sample: Sample,
        modalities: Sequence[str] | None = None,
        dwell: Sequence[float] = (1.0,),
        overhead: float = OVERHEAD,
    ) -> None:
        super().__init__(name, sample, modalities)
        try:
            offered = sorted({float(d) for d in dwell})
        except (TypeError, ValueError):
            offered = []
        if not offered or not all(math.isfinite(d) and d > 0 for d in offered):
            raise ConfigError(
                f"instrument {name!r}: options.dwell {list(dwell)!r} is invalid: give a list of "
                "relative dwell times > 0, e.g. [0.25, 1.0, 4.0]."
            )
        number = isinstance(overhead, int | float) and not isinstance(overhead, bool)
        if not number or not math.isfinite(overhead) or overhead < 0:
            raise ConfigError(
                f"instrument {name!r}: options.overhead {overhead!r} is invalid: give the fixed "
                "time of a measurement in reference dwells, >= 0 (e.g. 1.0)."
            )
        self.offered: tuple[float, ...] = tuple(offered)
        self.overhead = float(overhead)
        self.default = reference_dwell(self.offered)

    def __repr__(self) -> str:
        dwell = list(self.offered)
        return (
            f"DwellingInstrument({self.name!r}, sample={self.sample.name!r}, dwell={dwell}, "
            f"overhead={self.overhead})"
        )

    def dwells(self) -> tuple[float, ...]:
        """The relative dwell times offered, ascending."""
        return self.offered

    def dwell(self, params: Mapping[str, Any]) -> float:
        """The dwell ``params`` ask for (default: the reference dwell); InstrumentError if it is
        not offered."""
        value = params.get(DWELL, self.default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value not in self.offered:
            raise InstrumentError(
                f"instrument {self.name!r}: dwell {value!r} is not offered; use one of "
                f"{list(self.offered)}."
            )
        return float(value)

    def request_params(self) -> dict[str, str]:
        """``dwell``: the relative dwell time of the request."""
        offered = list(self.offered)
        return {DWELL: f"relative dwell time, one of {offered} (default {self.default})"}

    def check_params(self, params: Mapping[str, Any]) -> None:
        """InstrumentError unless the dwell asked for (default: the reference dwell) is offered."""
        self.dwell(params)

    def relative_price(self, modality: str, location: Location, params: Mapping[str, Any]) -> float:
        """``(overhead + d) / (overhead + 1)`` for the request's dwell ``d`` (class docstring)."""
        del modality, location
        return self._relative(self.dwell(params))

    def lowest_relative_price(self) -> float:
        """The relative price of the shortest dwell offered (the budget pre-check's floor)."""
        return self._relative(self.offered[0])

    def _relative(self, dwell: float) -> float:
        return (self.overhead + dwell) / (self.overhead + 1.0)
