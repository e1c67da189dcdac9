"""The terms of an instrument's price: the spec's per-modality cost and stage travel.

The price itself, ``cost(m, x) * relative_price(request) + travel``, is put together once in
:mod:`coscope.instruments.pricing`; these are its parts (the spec validates them with
:func:`coscope.config.check_per_modality`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from coscope.instruments.base import STAGE_FROM
from coscope.types import Location

__all__ = ["STAGE_FROM", "base_cost", "travel_cost"]


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
