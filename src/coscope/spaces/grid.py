"""Grid spaces: every pixel of an ``H x W`` grid, or the pixels of a candidate mask.

Features are the normalised pixel-centre coordinates ``((row + 0.5) / H, (col + 0.5) / W)``
— exactly what the grid agents have always used — and coordinates the pixel position in
micrometres, ``(row, col) * pixel_size_um`` (the units of stage travel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coscope.spaces.base import LayoutSpace, SpaceError


def _shape(shape: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise SpaceError(f"a grid needs two positive sides (H, W); got {tuple(shape)!r}.")
    return h, w


def _pitch(pixel_size_um: float) -> float:
    value = float(pixel_size_um)
    if not np.isfinite(value) or value <= 0:
        raise SpaceError(f"pixel_size_um={pixel_size_um!r} is invalid: give a positive pitch.")
    return value


def grid_features(shape: tuple[int, int], flat: np.ndarray) -> np.ndarray:
    """Normalised pixel-centre coordinates of flat indices ``flat``, ``n x 2`` float64."""
    h, w = shape
    rows, cols = np.divmod(np.asarray(flat, dtype=np.int64), w)
    return np.stack([(rows + 0.5) / h, (cols + 0.5) / w], axis=1)


def runs_of(mask: np.ndarray) -> list[list[int]]:
    """Run-length form of a flat bool mask: ``[[start, stop), …]`` of its True runs."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def mask_of_runs(runs: list[list[int]], size: int) -> np.ndarray:
    """Inverse of :func:`runs_of` on a layout of ``size`` cells; SpaceError when out of range."""
    mask = np.zeros(size, dtype=bool)
    for run in runs:
        start, stop = (int(v) for v in run)
        if not 0 <= start < stop <= size:
            raise SpaceError(
                f"mask run {run!r} lies outside the {size} cells of the layout: the trace's "
                "space description is corrupt."
            )
        mask[start:stop] = True
    return mask


class PixelGrid(LayoutSpace):
    """Every pixel of an ``H x W`` grid (the behaviour of coscope before spaces).

    Args:
        shape: ``(H, W)``.
        pixel_size_um: Pixel pitch, µm (coordinates are ``(row, col) * pitch``).
    """

    kind = "pixel_grid"
    units = "um"

    def __init__(self, shape: tuple[int, int], pixel_size_um: float = 1.0) -> None:
        self._layout = _shape(shape)
        self.pixel_size_um = _pitch(pixel_size_um)
        self._allowed = self._mask()
        self._freeze()

    def _mask(self) -> np.ndarray:
        h, w = self._layout
        return np.ones(h * w, dtype=bool)

    def features(self) -> np.ndarray:
        """Normalised pixel-centre coordinates, ``n x 2``."""
        return grid_features(self._layout, self._indices)

    def coordinates(self) -> np.ndarray:
        """Pixel positions ``(row, col) * pixel_size_um``, ``n x 2`` µm."""
        rows, cols = np.divmod(self._indices, self._layout[1])
        return np.stack([rows, cols], axis=1).astype(np.float64) * self.pixel_size_um

    def describe(self) -> dict[str, Any]:
        """``{"kind", "shape", "pixel_size_um"}``."""
        return {
            "kind": self.kind,
            "shape": list(self._layout),
            "pixel_size_um": self.pixel_size_um,
        }


class MaskedGrid(PixelGrid):
    """The pixels of an ``H x W`` grid where a candidate mask is True.

    Args:
        shape: ``(H, W)``.
        mask: Candidate mask, ``H x W`` bool (True: may be measured); at least one True.
        pixel_size_um: Pixel pitch, µm.
    """

    kind = "masked_grid"

    def __init__(
        self, shape: tuple[int, int], mask: np.ndarray, pixel_size_um: float = 1.0
    ) -> None:
        arr = np.asarray(mask)
        h, w = _shape(shape)
        if arr.shape != (h, w):
            raise SpaceError(
                f"the candidate mask has shape {arr.shape}, the sample is {h} x {w}: give a "
                "mask of the sample's shape."
            )
        if not arr.any():
            raise SpaceError(
                "the candidate mask selects no pixel: give a mask with at least one candidate."
            )
        self._given = arr.astype(bool).reshape(-1)
        super().__init__((h, w), pixel_size_um)

    def _mask(self) -> np.ndarray:
        return self._given

    def _hint(self) -> str:
        return f"choose one of its {self.size} masked-in pixels (see the spec's sample.mask)"

    def describe(self) -> dict[str, Any]:
        """``{"kind", "shape", "pixel_size_um", "runs"}`` (runs: :func:`runs_of` the mask)."""
        return {**super().describe(), "runs": runs_of(self._allowed)}


__all__ = ["MaskedGrid", "PixelGrid", "grid_features", "mask_of_runs", "runs_of"]
