"""The terms of an instrument's price: the spec's per-modality cost and stage travel.

The price itself, ``cost(m, x) * relative_price(request) + travel``, is put together once in
:mod:`coscope.instruments.pricing`; these are its checked parts (the spec validation uses
:func:`check_per_modality`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from coscope.instruments.base import STAGE_FROM
from coscope.types import Location

__all__ = ["STAGE_FROM", "base_cost", "check_per_modality", "travel_cost"]


def check_per_modality(
    value: float | Mapping[str, float],
    modalities: Sequence[str],
    what: str,
    *,
    minimum: float | None,
) -> None:
    """ValueError (one sentence) unless ``value`` is a valid number or per-modality mapping.

    Args:
        value: One number, or modality -> number.
        modalities: The instrument's modalities; a mapping must give each exactly once.
        what: Field name for the message.
        minimum: Smallest allowed value (inclusive); ``None`` means strictly positive.
    """
    values = value if isinstance(value, Mapping) else {"": value}
    if isinstance(value, Mapping):
        missing = sorted(set(modalities) - set(value))
        extra = sorted(set(value) - set(modalities))
        if missing or extra:
            raise ValueError(
                f"{what} per modality must name exactly the instrument's modalities "
                f"{list(modalities)} (missing {missing}, unknown {extra})"
            )
    for key, v in values.items():
        bad = not math.isfinite(v) or (v <= 0 if minimum is None else v < minimum)
        if bad:
            where = f" for {key!r}" if key else ""
            limit = "> 0" if minimum is None else f">= {minimum:g}"
            raise ValueError(f"{what}{where} must be a finite number {limit}, got {v!r}")


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
