"""From a campaign's locations to motor set-points and back (plain numpy, no ophyd).

A space gives each candidate a position, ``space.coordinates()``: ``n x 2`` in
``space.units`` (µm for grids: ``(row, col) * pixel_size_um``; candidate indices for a
table). One positioner drives each coordinate; its set-point is
``origin[i] + scale[i] * coordinate[i]`` in the positioner's own units (``scale`` 1e-3 for a
stage in mm).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coscope.errors import ConfigError
from coscope.spaces import Space
from coscope.types import Location


class StageMap:
    """Set-points of the positioners for each candidate of a space.

    Args:
        space: The campaign's space.
        origin: Set-point of coordinate 0 per axis, positioner units (default all 0).
        scale: Positioner units per ``space.units`` per axis (default all 1).

    Raises:
        ConfigError: ``origin`` or ``scale`` has another length than the space's
            coordinates, or a value that is not finite (a zero scale included).
    """

    def __init__(
        self,
        space: Space,
        origin: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
    ) -> None:
        coordinates = np.asarray(space.coordinates(), dtype=np.float64)
        self.dims = int(coordinates.shape[1])
        self.origin = self._per_axis("origin", origin, 0.0)
        self.scale = self._per_axis("scale", scale, 1.0)
        if np.any(self.scale == 0):
            raise ConfigError(
                "a stage scale of 0 maps every location to one point: give a non-zero scale "
                "per axis."
            )
        self.setpoints_all = self.origin + self.scale * coordinates  # n x dims
        self._space = space
        self._width = space.layout[1]
        self._row_of = {int(flat): i for i, flat in enumerate(space.indices)}

    def _per_axis(self, what: str, values: Sequence[float] | None, default: float) -> np.ndarray:
        if values is None:
            return np.full(self.dims, default)
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.shape != (self.dims,) or not np.all(np.isfinite(array)):
            raise ConfigError(
                f"stage {what} {list(values)!r} does not fit the space: give {self.dims} finite "
                f"numbers, one per coordinate."
            )
        return array

    def setpoints(self, location: Location) -> tuple[float, ...]:
        """The positioners' set-points for ``location``, one per coordinate.

        Raises:
            SpaceError: ``location`` is not a candidate of the space.
        """
        self._space.check(location)
        row = self._row_of[location.flat(self._width)]
        return tuple(float(v) for v in self.setpoints_all[row])

    def nearest(self, positions: Sequence[float]) -> Location:
        """The candidate whose set-points are nearest to ``positions`` (Euclidean, in the
        positioners' units): where a stage at ``positions`` stands."""
        at = np.asarray(positions, dtype=np.float64).reshape(1, -1)
        row = int(np.argmin(np.sum((self.setpoints_all - at) ** 2, axis=1)))
        return Location.from_flat(int(self._space.indices[row]), self._width)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest set-point per axis over every candidate, ``(dims,)`` each."""
        return self.setpoints_all.min(axis=0), self.setpoints_all.max(axis=0)
