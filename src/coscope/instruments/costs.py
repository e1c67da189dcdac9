"""Spec-level cost model of an instrument: per-modality costs and stage travel.

``cost(m, x) = base[m] + travel_cost_per_um * pixel_size_um * |x - x_last|`` where ``base[m]``
is the spec's ``cost`` (one value or one per modality), ``x_last`` the location of the
instrument's latest decision (its stage position once that measurement runs) and ``|.|`` the
Euclidean distance in pixels; no travel term before the instrument's first decision. The
latest decision per instrument is read from the trace, so the state survives a resume.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from coscope.errors import ConfigError
from coscope.instruments.base import Instrument
from coscope.instruments.wrappers import InstrumentWrapper
from coscope.types import Location, Measurement, MeasurementRequest


def base_cost(cost: float | Mapping[str, float], modality: str) -> float:
    """The spec cost of one measurement of ``modality`` (no travel)."""
    return float(cost[modality]) if isinstance(cost, Mapping) else float(cost)


def travel_cost(
    per_um: float, pixel_size_um: float, origin: Location | None, location: Location
) -> float:
    """``per_um * pixel_size_um * |location - origin|`` (0 without an origin)."""
    if origin is None or per_um == 0.0:
        return 0.0
    distance = math.hypot(location.row - origin.row, location.col - origin.col)
    return float(per_um * pixel_size_um * distance)


STAGE_FROM = "stage_from"
"""Request param ``[row, col]``: where the stage is when the measurement starts."""


class WithTravel(InstrumentWrapper):
    """Charges stage travel on top of the inner cost: ``+ per_um * pixel_size_um * distance``.

    The origin comes from the request's ``params["stage_from"]`` (``[row, col]``, set by the
    deciding agent from the instrument's latest decision, the same origin as
    :meth:`CampaignContext.expected_cost <coscope.campaign.context.CampaignContext.expected_cost>`);
    without it no travel is charged. Stateless, so it works in any Dask worker.

    Args:
        inner: Any instrument.
        per_um: Cost per micrometre of travel, >= 0.
        pixel_size_um: Pixel pitch of the sample, micrometres.
    """

    def __init__(self, inner: Instrument, per_um: float, pixel_size_um: float) -> None:
        super().__init__(inner)
        if not math.isfinite(per_um) or per_um < 0:
            raise ConfigError(f"travel_cost_per_um={per_um!r} is invalid: use a value >= 0.")
        self.per_um = float(per_um)
        self.pixel_size_um = float(pixel_size_um)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with the inner instrument and add the travel from ``stage_from``."""
        m = self._inner_measure(request)
        origin = request.params.get(STAGE_FROM)
        start = None if origin is None else Location(int(origin[0]), int(origin[1]))
        extra = travel_cost(self.per_um, self.pixel_size_um, start, request.location)
        return dataclasses.replace(m, cost=m.cost + extra)
