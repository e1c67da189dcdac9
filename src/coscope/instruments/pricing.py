"""The price of a request: one function of the request, told to the agent and charged.

For a request (or a candidate request an agent is weighing) ``q = (instrument, modality m,
location x, params)`` on an instrument whose base is ``b``::

    price(q) = cost(m, x) * relative(q) + travel_cost_per_um * pixel_size_um * |x - s|

* ``cost(m, x)``: the spec's ``cost`` — one value, one per modality, or ``f(m, x)`` — the
  price of the instrument's reference request;
* ``relative(q)``: ``b.relative_price(m, x, params)`` if ``b`` is
  :class:`~coscope.instruments.base.Priced` (a lattice of side ``L``: ``(L / L_max)^2``),
  else 1;
* ``s = params["stage_from"]``: where the stage starts; no travel without it; ``|.|`` is the
  Euclidean distance in pixels.

:class:`Pricing` is that function for one instrument. The agent is told it through a
:data:`PriceFunction` (``CampaignContext.expected_cost``); the accounting charges it through
:class:`WithCost`, the only layer of an instrument stack that sets ``Measurement.cost``, and
it sets it from the request alone, so the stacking order of the wrappers cannot change it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments.base import (
    STAGE_FROM,
    Instrument,
    Priced,
    PriceFloor,
    check_modality,
    per_modality,
)
from coscope.instruments.costs import travel_cost
from coscope.instruments.wrappers import InstrumentWrapper, unwrap
from coscope.types import Location, Measurement, MeasurementRequest

CostModel = float | Mapping[str, float] | Callable[[str, Location], float]
"""The spec's cost: one value, one per modality, or ``f(modality, location) -> float``."""


@dataclass(frozen=True)
class PriceQuery:
    """What a price depends on: a request, or a candidate request not yet decided.

    Attributes:
        instrument: Instrument name.
        modality: Modality to measure.
        location: Where.
        params: Request params (``fidelity``, ``theta``, ``dwell_s``, ``stage_from`` ...).
    """

    instrument: str
    modality: str
    location: Location
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, request: MeasurementRequest) -> PriceQuery:
        """The query of an executed request."""
        return cls(request.instrument, request.modality, request.location, request.params)


class PriceFunction(Protocol):
    """``price(instrument, modality, location, params=None) -> float``: the agent's price.

    The price (campaign cost unit, >= 0) of measuring ``modality`` at ``location`` on
    ``instrument`` with request ``params``: equal to what the instrument charges for that
    request. ``CampaignContext.expected_cost`` is one; it adds the stage origin from the trace
    when ``params`` has no ``stage_from``.
    """

    def __call__(
        self,
        instrument: str,
        modality: str,
        location: Location,
        params: Mapping[str, Any] | None = None,
        /,
    ) -> float: ...


@dataclass(frozen=True)
class Pricing:
    """The price model of one instrument (see the module docstring for the formula).

    Build it with :meth:`of` from the instrument (any stack: its base's capability counts).

    Attributes:
        instrument: Instrument name.
        modalities: Its modalities.
        cost: The spec's cost model (> 0 values, or a callable returning >= 0).
        relative: The base instrument's price capability, or ``None`` (relative price 1).
        travel_cost_per_um: Stage travel cost per micrometre, >= 0.
        pixel_size_um: Pixel pitch of the sample, micrometres.
    """

    instrument: str
    modalities: tuple[str, ...]
    cost: CostModel = 1.0
    relative: Priced | None = None
    travel_cost_per_um: float = 0.0
    pixel_size_um: float = 1.0

    def __post_init__(self) -> None:
        if not callable(self.cost):
            for m in self.modalities:
                per_modality(self.cost, m, "cost", ConfigError)
        per_um = self.travel_cost_per_um
        if not math.isfinite(per_um) or per_um < 0:
            raise ConfigError(f"travel_cost_per_um={per_um!r} is invalid: use a value >= 0.")

    @classmethod
    def of(
        cls,
        instrument: Instrument,
        cost: CostModel = 1.0,
        *,
        travel_cost_per_um: float = 0.0,
        pixel_size_um: float = 1.0,
    ) -> Pricing:
        """The price model of ``instrument`` under the spec's ``cost`` and travel settings."""
        base = unwrap(instrument)
        return cls(
            instrument.name,
            tuple(instrument.modalities),
            cost,
            base if isinstance(base, Priced) else None,
            float(travel_cost_per_um),
            float(pixel_size_um),
        )

    def unit_cost(self, modality: str, location: Location) -> float:
        """``cost(m, x)``: the spec's price of the reference request."""
        if not callable(self.cost):
            return per_modality(self.cost, modality, "cost")
        value = self.cost(modality, location)
        if not math.isfinite(value) or value < 0:
            raise InstrumentError(
                f"cost model returned {value!r} for {modality!r} at ({location.row}, "
                f"{location.col}): it must return a finite value >= 0."
            )
        return float(value)

    def reference(self, modality: str) -> float:
        """The spec's price of the reference request of ``modality`` (no travel, no factor).

        For a callable cost model, whose value depends on the location, the least of the
        reference prices is unknown: 0.
        """
        return 0.0 if callable(self.cost) else per_modality(self.cost, modality, "cost")

    def floor(self, modalities: Sequence[str]) -> float:
        """A lower bound of the price of any request for one of ``modalities``.

        The least :meth:`reference` price times the base's least relative price (its
        :class:`~coscope.instruments.base.PriceFloor`; 0 for a priced base that does not
        declare one); travel only adds. 0 for no modalities. Used to stop asking for
        proposals the budget cannot pay for; the proposal's own price is checked after.
        """
        if not modalities:
            return 0.0
        factor = 1.0
        if self.relative is not None:
            rel = self.relative
            factor = float(rel.lowest_relative_price()) if isinstance(rel, PriceFloor) else 0.0
        return min(self.reference(m) for m in modalities) * factor

    def price(self, query: PriceQuery) -> float:
        """The price of ``query`` (campaign cost unit, >= 0).

        Raises:
            InstrumentError: The query names another instrument or a modality not offered,
                or its params are invalid for the instrument (e.g. an unknown fidelity).
        """
        if query.instrument != self.instrument:
            raise InstrumentError(
                f"cannot price a request for instrument {query.instrument!r} with the prices "
                f"of {self.instrument!r}: ask the price function of that instrument."
            )
        if query.modality not in self.modalities:
            raise InstrumentError(
                f"modality {query.modality!r} is not offered by instrument {self.instrument!r}: "
                f"use one of {list(self.modalities)}."
            )
        params = query.params
        factor = 1.0
        if self.relative is not None:
            factor = float(self.relative.relative_price(query.modality, query.location, params))
            if not math.isfinite(factor) or factor < 0:
                raise InstrumentError(
                    f"instrument {self.instrument!r} priced params {dict(params)} at a relative "
                    f"{factor!r}: its relative_price must return a finite value >= 0."
                )
        origin = params.get(STAGE_FROM)
        start = None if origin is None else Location(int(origin[0]), int(origin[1]))
        travel = travel_cost(self.travel_cost_per_um, self.pixel_size_um, start, query.location)
        return self.unit_cost(query.modality, query.location) * factor + travel

    def quote(
        self,
        instrument: str,
        modality: str,
        location: Location,
        params: Mapping[str, Any] | None = None,
        origin: Location | None = None,
    ) -> float:
        """:meth:`price` as a :class:`PriceFunction` (for an agent deciding on this instrument).

        ``origin``: where the stage is (the instrument's latest decision) when ``params``
        give no ``stage_from``; None charges no travel.
        """
        query = dict(params or {})
        if origin is not None and STAGE_FROM not in query:
            query[STAGE_FROM] = [origin.row, origin.col]
        return self.price(PriceQuery(instrument, modality, location, query))

    def __call__(self, request: MeasurementRequest) -> float:
        """The price of an executed ``request`` (what :class:`WithCost` charges)."""
        return self.price(PriceQuery.of(request))


class WithCost(InstrumentWrapper):
    """Charges every measurement its price: ``Measurement.cost = pricing(request)``.

    The one layer of a stack that sets the cost; it replaces whatever the layers below said,
    from the request alone, so any order of wrappers charges the same.

    Args:
        inner: Any instrument (stack).
        cost: The spec's cost model (one value, one per modality, or ``f(modality, location)``).
        travel_cost_per_um: Stage travel cost per micrometre from the request's
            ``stage_from``, >= 0 (0: no travel term).
        pixel_size_um: Pixel pitch of the sample, micrometres.
    """

    def __init__(
        self,
        inner: Instrument,
        cost: CostModel = 1.0,
        *,
        travel_cost_per_um: float = 0.0,
        pixel_size_um: float = 1.0,
    ) -> None:
        super().__init__(inner)
        self.pricing = Pricing.of(
            inner, cost, travel_cost_per_um=travel_cost_per_um, pixel_size_um=pixel_size_um
        )

    def price(self, query: PriceQuery) -> float:
        """The price this stack charges for ``query``."""
        check_modality(self, query.modality)
        return self.pricing.price(query)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with the inner instrument, charging the request's price."""
        m = self._inner_measure(request)
        return dataclasses.replace(m, cost=self.pricing(request))


def pricing_of(instrument: Instrument) -> Pricing:
    """The price model a stack charges by: its outermost :class:`WithCost`'s, else unit cost.

    A stack without a cost layer charges what its base charges alone: the unit cost times
    the base's relative price (no travel).
    """
    layer: Instrument = instrument
    while isinstance(layer, InstrumentWrapper):
        if isinstance(layer, WithCost):
            return layer.pricing
        layer = layer.inner
    return Pricing.of(instrument)
