"""A continuous box: ``d`` named dimensions with bounds, explored point by point.

A box has no finite candidate set: its points are proposed one at a time (by botorch's
``optimize_acqf`` on the agent's acquisition, :mod:`coscope.agents.box_agent`). So that every
part that speaks of locations keeps working, the point decided at step ``k`` is
``Location(k, 0)`` on a ``capacity x 1`` layout (a *slot* per possible step), and its
coordinates travel in the decision's request params, ``params["x"]`` (a list of ``d``
floats in the dimensions' units, in dimension order): the instrument measures exactly what
the trace records (``docs/spaces.md``, "A continuous box").

The models see points normalised to ``[0, 1]^d`` (:meth:`Box.to_unit`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coscope.spaces.base import LayoutSpace, SpaceError
from coscope.types import Location

POINT_PARAM = "x"
"""Request param holding a box point's coordinates, ``[x_1, …, x_d]`` in the box's units."""

DEFAULT_CAPACITY = 4096
"""Default number of slots (decision steps) of a box campaign's layout."""


class Box(LayoutSpace):
    """``d`` named dimensions ``[lo_i, hi_i]`` (units per dimension).

    Args:
        names: The ``d`` dimension names (distinct, non-empty).
        lo: Lower bounds, ``(d,)`` finite.
        hi: Upper bounds, ``(d,)`` finite, each ``> lo``.
        units: Units per dimension (default: ``""`` each).
        capacity: Slots of the ``capacity x 1`` layout: the largest decision step + 1.

    Raises:
        SpaceError: A bad name, bound or capacity (one sentence).
    """

    kind = "box"
    units = "index"

    def __init__(
        self,
        names: Sequence[str],
        lo: Sequence[float],
        hi: Sequence[float],
        units: Sequence[str] | None = None,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        names = [str(n) for n in names]
        if not names or any(not n for n in names) or len(set(names)) != len(names):
            raise SpaceError(
                f"a box needs distinct, non-empty dimension names; got {names}: name each "
                "dimension once."
            )
        low = np.array(lo, dtype=np.float64).reshape(-1)
        high = np.array(hi, dtype=np.float64).reshape(-1)
        if low.shape != (len(names),) or high.shape != (len(names),):
            raise SpaceError(
                f"a box of {len(names)} dimensions needs {len(names)} lower and upper bounds; "
                f"got {low.size} and {high.size}."
            )
        for name, a, b in zip(names, low, high, strict=True):
            if not (np.isfinite(a) and np.isfinite(b)) or a >= b:
                raise SpaceError(
                    f"dimension {name!r} has bounds [{a:g}, {b:g}]: give finite bounds with "
                    "lo < hi."
                )
        unit_list = [str(u) for u in units] if units is not None else [""] * len(names)
        if len(unit_list) != len(names):
            raise SpaceError(f"give one unit per dimension ({len(names)}); got {unit_list}.")
        if int(capacity) != capacity or capacity < 1:
            raise SpaceError(f"box capacity {capacity!r} is invalid: give a positive integer.")
        low.flags.writeable = high.flags.writeable = False
        self.names = tuple(names)
        self.lo, self.hi = low, high
        self.dimension_units = tuple(unit_list)
        self._layout = (int(capacity), 1)
        self._allowed = np.ones(int(capacity), dtype=bool)
        self._freeze()

    @property
    def dim(self) -> int:
        """Number of dimensions ``d``."""
        return len(self.names)

    @property
    def capacity(self) -> int:
        """Slots of the layout: decision steps ``0 .. capacity - 1`` may hold a point."""
        return self._layout[0]

    # ------------------------------------------------------------------ points
    def to_unit(self, points: np.ndarray) -> np.ndarray:
        """Points ``(..., d)`` in the box's units -> ``[0, 1]^d``."""
        return (np.asarray(points, dtype=np.float64) - self.lo) / (self.hi - self.lo)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """Points ``(..., d)`` in ``[0, 1]^d`` -> the box's units (clipped into the box)."""
        out = self.lo + np.asarray(unit, dtype=np.float64) * (self.hi - self.lo)
        return np.clip(out, self.lo, self.hi)

    def check_point(self, point: Any, what: str = "point") -> np.ndarray:
        """The point as ``(d,)`` float64; SpaceError (one sentence) unless inside the box."""
        try:
            arr = np.array(point, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            arr = np.full(0, np.nan)
        if arr.shape != (self.dim,) or not np.isfinite(arr).all():
            raise SpaceError(
                f"{what} {point!r} is not {self.dim} finite coordinates: give one number per "
                f"dimension {list(self.names)}."
            )
        outside = np.flatnonzero((arr < self.lo) | (arr > self.hi))
        if outside.size:
            i = int(outside[0])
            raise SpaceError(
                f"{what} has {self.names[i]} = {arr[i]:g}, outside the box's "
                f"[{self.lo[i]:g}, {self.hi[i]:g}]: give a point inside the bounds."
            )
        return arr

    def point_of(self, named: Mapping[str, float], what: str = "point") -> np.ndarray:
        """A point given by dimension name, ``{name: value}`` -> ``(d,)`` (checked)."""
        unknown = sorted(set(named) - set(self.names))
        missing = [n for n in self.names if n not in named]
        if unknown or missing:
            raise SpaceError(
                f"{what} names unknown dimension(s) {unknown} and lacks {missing}: give exactly "
                f"the box's dimensions {list(self.names)}."
            )
        return self.check_point([named[n] for n in self.names], what)

    def point_params(self, point: np.ndarray) -> dict[str, Any]:
        """The request params carrying ``point`` (``{"x": [...]}``, exact float64 in JSON)."""
        return {POINT_PARAM: [float(v) for v in np.asarray(point, dtype=np.float64)]}

    def point_in(self, params: Mapping[str, Any], what: str = "decision") -> np.ndarray:
        """The point a decision's params carry (SpaceError when missing or outside)."""
        if POINT_PARAM not in params:
            raise SpaceError(
                f"{what} carries no box point (params['{POINT_PARAM}']): a box campaign's "
                "decisions must name their coordinates."
            )
        return self.check_point(params[POINT_PARAM], what)

    def named(self, point: np.ndarray) -> dict[str, float]:
        """``{name: value}`` of a point ``(d,)``."""
        return {n: float(v) for n, v in zip(self.names, np.asarray(point), strict=True)}

    # ------------------------------------------------------------------ the Space contract
    def features(self) -> np.ndarray:
        """The slot centres ``(i + 0.5) / capacity`` (``capacity x 1``): a box has no finite
        candidate features; its agents learn on the points (:meth:`to_unit`)."""
        return ((self._indices + 0.5) / self.capacity).reshape(-1, 1)

    def coordinates(self) -> np.ndarray:
        """``(i, 0)`` per slot: slots are decision steps, not stage positions."""
        return np.stack([self._indices, np.zeros_like(self._indices)], axis=1).astype(float)

    def _where(self) -> str:
        return f"box's {self.capacity} point slots"

    def _hint(self) -> str:
        return f"a box point is Location(step, 0) with step in 0..{self.capacity - 1}"

    def describe(self) -> dict[str, Any]:
        """``{"kind", "names", "lo", "hi", "units", "capacity"}``."""
        return {
            "kind": self.kind,
            "names": list(self.names),
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
            "units": list(self.dimension_units),
            "capacity": self.capacity,
        }

    def slot(self, step: int) -> Location:
        """The location of the point decided at ``step``."""
        return Location(int(step), 0)


def points_of(box: Box, decisions: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``(n,)`` and points ``n x d`` of a box campaign's decisions (``Proposal``s)."""
    steps = np.array([d.step for d in decisions], dtype=np.int64)
    points = np.array(
        [box.point_in(d.params, f"decision {d.step}") for d in decisions], dtype=np.float64
    ).reshape(-1, box.dim)
    return steps, points


__all__ = ["DEFAULT_CAPACITY", "POINT_PARAM", "Box", "points_of"]
