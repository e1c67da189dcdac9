"""The Space contract: where a campaign may measure, and what the models see of it.

A *space* is a finite set of candidate locations laid out on an ``H x W`` grid (the
*layout*): a :class:`~coscope.types.Location` ``(row, col)`` names a candidate, its flat
index is ``row * W + col``. A pixel grid uses every pixel; a masked grid a subset; a table
of ``N`` candidates is laid out ``N x 1`` (candidate ``i`` is ``Location(i, 0)``). For each
candidate a space gives

* its **features** for the models, ``n x d`` float64 in ``[0, 1]`` (normalised coordinates
  for a grid, the min-max normalised feature columns for a table),
* its **coordinates** for stage travel and maps, ``n x 2`` float64 in :attr:`Space.units`,
* a plain-data **description** stored in the trace, from which
  :func:`coscope.spaces.space_from_description` rebuilds it without running user code.

Agents index everything by the layout's flat index; :attr:`Space.allowed` says which
layout cells are candidates.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from coscope.errors import ConfigError
from coscope.types import Location


class SpaceError(ConfigError):
    """A location or a description does not fit the space (one sentence, says the fix)."""


@runtime_checkable
class Space(Protocol):
    """Where a campaign may measure (see the module docstring)."""

    @property
    def kind(self) -> str:
        """Registered kind: ``"pixel_grid"``, ``"masked_grid"`` or ``"table"``."""
        ...

    @property
    def layout(self) -> tuple[int, int]:
        """``(H, W)`` of the grid the candidate locations live on."""
        ...

    @property
    def allowed(self) -> np.ndarray:
        """``(H*W,)`` bool, row-major: which layout cells are candidates (read-only)."""
        ...

    @property
    def indices(self) -> np.ndarray:
        """``(n,)`` int64 flat layout indices of the candidates, ascending (read-only)."""
        ...

    @property
    def size(self) -> int:
        """Number of candidates ``n``."""
        ...

    @property
    def units(self) -> str:
        """Units of :meth:`coordinates` (``"um"`` for grids, ``"index"`` for a table)."""
        ...

    def features(self) -> np.ndarray:
        """Model inputs of the candidates, ``n x d`` float64 in ``[0, 1]``, in index order."""
        ...

    def coordinates(self) -> np.ndarray:
        """Positions of the candidates, ``n x 2`` float64 in :attr:`units`, in index order."""
        ...

    def contains(self, location: Location) -> bool:
        """Whether ``location`` is a candidate of this space."""
        ...

    def check(self, location: Location, what: str = "location") -> None:
        """Raise :class:`SpaceError` (one sentence naming ``what``) unless a candidate."""
        ...

    def describe(self) -> dict[str, Any]:
        """Plain JSON data (kind and parameters) that rebuilds this space exactly."""
        ...


class LayoutSpace:
    """What every finite space shares, given its layout and candidate mask.

    Subclasses set ``self._layout`` (``(H, W)``) and ``self._allowed`` (``(H*W,)`` bool)
    in ``__init__`` and call :meth:`_freeze`.
    """

    kind = "layout"
    _layout: tuple[int, int]
    _allowed: np.ndarray
    _indices: np.ndarray

    def _freeze(self) -> None:
        h, w = self._layout
        if self._allowed.shape != (h * w,) or not self._allowed.any():
            raise SpaceError(
                f"a {self.kind} space needs at least one candidate on its {h} x {w} layout: "
                "give a non-empty mask or table."
            )
        self._allowed = np.asarray(self._allowed, dtype=bool).copy()
        self._allowed.flags.writeable = False
        self._indices = np.flatnonzero(self._allowed).astype(np.int64)
        self._indices.flags.writeable = False

    @property
    def layout(self) -> tuple[int, int]:
        """``(H, W)`` of the layout."""
        return self._layout

    @property
    def allowed(self) -> np.ndarray:
        """``(H*W,)`` bool candidate mask, row-major."""
        return self._allowed

    @property
    def indices(self) -> np.ndarray:
        """``(n,)`` flat indices of the candidates, ascending."""
        return self._indices

    @property
    def size(self) -> int:
        """Number of candidates ``n``."""
        return int(self._indices.size)

    def contains(self, location: Location) -> bool:
        """Whether ``location`` is a candidate."""
        h, w = self._layout
        inside = 0 <= location.row < h and 0 <= location.col < w
        return inside and bool(self._allowed[location.row * w + location.col])

    def check(self, location: Location, what: str = "location") -> None:
        """:class:`SpaceError` unless ``location`` is a candidate."""
        if not self.contains(location):
            raise SpaceError(
                f"{what} ({location.row}, {location.col}) is not a candidate of the "
                f"{self._where()}: {self._hint()}."
            )

    def location(self, flat: int) -> Location:
        """The location of flat layout index ``flat``."""
        return Location.from_flat(int(flat), self._layout[1])

    def _where(self) -> str:
        h, w = self._layout
        return f"{h} x {w} {self.kind.replace('_', ' ')}"

    def _hint(self) -> str:
        h, w = self._layout
        return f"rows must be in 0..{h - 1} and columns in 0..{w - 1}"


def layout_features(space: Space) -> np.ndarray:
    """The space's features at every layout cell, ``(H*W) x d``, row-major; zeros at cells
    that are not candidates (what the agents index by flat location)."""
    height, width = space.layout
    features = space.features()
    out = np.zeros((height * width, features.shape[1]), dtype=np.float64)
    out[space.indices] = features
    return out


__all__ = ["LayoutSpace", "Space", "SpaceError", "layout_features"]
