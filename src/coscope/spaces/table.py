"""A finite table of candidates described by feature columns (compositions, recipes, molecules).

Layout: candidate ``i`` of ``N`` is ``Location(row=i, col=0)`` on an ``N x 1`` layout, so
every part that speaks of locations (trace, instruments, replay, maps) works unchanged; a
table dataset stores its columns as ``N x 1`` structure channels (``docs/spaces.md``).
The models see the feature columns min-max normalised to ``[0, 1]`` (a constant column
becomes 0.5), never the row index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coscope.spaces.base import LayoutSpace, SpaceError


def normalise_columns(values: np.ndarray) -> np.ndarray:
    """Min-max normalise each column of ``values`` (``n x d``) to ``[0, 1]``; constant: 0.5."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (values - lo) / span
    out[:, hi <= lo] = 0.5
    return out


class CandidateTable(LayoutSpace):
    """``N`` candidates with ``d`` named feature columns.

    Args:
        values: Raw feature values, ``N x d`` float64, finite, ``N >= 1``, ``d >= 1``.
        names: The ``d`` column names.

    Raises:
        SpaceError: Wrong shapes, non-finite values or repeated names.
    """

    kind = "table"
    units = "index"

    def __init__(self, values: np.ndarray, names: Sequence[str]) -> None:
        arr = np.array(values, dtype=np.float64)
        names = [str(n) for n in names]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != len(names) or not names:
            raise SpaceError(
                f"a table needs an N x d array of features with d = {len(names)} named columns; "
                f"got shape {arr.shape}."
            )
        if len(set(names)) != len(names):
            raise SpaceError(f"feature names {names} repeat a name: give each column once.")
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise SpaceError(
                f"feature {names[col]!r} of candidate {row} is {arr[row, col]}: every feature "
                "must be a finite number."
            )
        arr.flags.writeable = False
        self.values = arr
        self.names = tuple(names)
        self._layout = (int(arr.shape[0]), 1)
        self._allowed = np.ones(arr.shape[0], dtype=bool)
        self._freeze()
        self._features = normalise_columns(arr)
        self._features.flags.writeable = False

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> CandidateTable:
        """A table from named columns, each ``(N,)`` or ``N x 1`` (a table dataset's channels)."""
        names = list(columns)
        if not names:
            raise SpaceError("a table needs at least one feature column.")
        return cls(np.stack([np.asarray(columns[n]).reshape(-1) for n in names], axis=1), names)

    def features(self) -> np.ndarray:
        """Min-max normalised feature columns, ``N x d`` in ``[0, 1]``."""
        return self._features

    def coordinates(self) -> np.ndarray:
        """``(i, 0)`` per candidate: a table has no stage; travel between rows is not priced."""
        return np.stack([self._indices, np.zeros_like(self._indices)], axis=1).astype(float)

    def _hint(self) -> str:
        return f"use Location(i, 0) with i in 0..{self.size - 1}"

    def _where(self) -> str:
        return f"table of {self.size} candidates"

    def describe(self) -> dict[str, Any]:
        """``{"kind", "names", "values"}`` (values: the raw ``N x d`` rows as lists)."""
        return {"kind": self.kind, "names": list(self.names), "values": self.values.tolist()}


__all__ = ["CandidateTable", "normalise_columns"]
