"""Candidate masks from a spec: a mask file, a list of pixels, a rectangle or a patch interior.

A spec names one of them under ``sample.mask`` (:class:`coscope.config.MaskSpec`)::

    mask: {file: runs/datasets/beps_mask.zarr}     # .npy, .png or an imported mask dataset
    mask: {pixels: [[3, 4], [3, 5]]}               # (row, col) pairs
    mask: {rect: [8, 8, 43, 43]}                   # rows 8..42, columns 8..42 (ends exclusive)
    mask: {interior: 16}                           # pixels whose 16 x 16 patch fits the image

Every function returns an ``H x W`` bool array or raises :class:`SpaceError` (one sentence).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coscope.errors import DatasetError
from coscope.spaces.base import SpaceError
from coscope.storage.dataset_tables import MASK_CHANNEL, read_mask_image
from coscope.storage.datasets import load_dataset


def read_mask_file(path: str | Path) -> np.ndarray:
    """The mask in ``path`` (``.npy``, ``.png`` or a mask dataset folder) as ``H x W`` bool.

    Nonzero values (any colour channel of a PNG) are candidates.
    """
    path = Path(path).expanduser()
    try:
        if not path.is_dir():
            return read_mask_image(path)
        ds = load_dataset(path)
    except DatasetError as exc:
        raise SpaceError(f"sample.mask.file: {exc}") from None
    if ds.space.get("kind") != MASK_CHANNEL:
        raise SpaceError(
            f"sample.mask.file: {path} is a dataset but not a mask; import one with `coscope "
            "dataset import MASK.npy --format mask --out MASK.zarr`."
        )
    return ds.structure[MASK_CHANNEL] != 0


def pixels_mask(shape: tuple[int, int], pixels: Sequence[Sequence[int]]) -> np.ndarray:
    """``H x W`` mask True at the listed ``(row, col)`` pixels."""
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    for pixel in pixels:
        row, col = (int(v) for v in pixel)
        if not (0 <= row < h and 0 <= col < w):
            raise SpaceError(
                f"mask pixel ({row}, {col}) is off the {h} x {w} sample: rows must be in "
                f"0..{h - 1} and columns in 0..{w - 1}."
            )
        mask[row, col] = True
    return mask


def rect_mask(shape: tuple[int, int], rect: Sequence[int]) -> np.ndarray:
    """``H x W`` mask of rows ``r0..r1-1`` and columns ``c0..c1-1``, ``rect = (r0, c0, r1, c1)``."""
    h, w = shape
    r0, c0, r1, c1 = (int(v) for v in rect)
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise SpaceError(
            f"mask rect {list(rect)} does not fit the {h} x {w} sample: give [r0, c0, r1, c1] "
            f"with 0 <= r0 < r1 <= {h} and 0 <= c0 < c1 <= {w} (ends exclusive)."
        )
    mask = np.zeros((h, w), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def interior_mask(shape: tuple[int, int], window: int) -> np.ndarray:
    """Pixels whose ``window x window`` patch (from ``-window // 2``) lies inside the image.

    For ``window = 16`` on a 50 x 50 image: rows and columns 8..42, 35 x 35 pixels.
    """
    h, w = shape
    k = int(window)
    if k < 1 or k > min(h, w):
        raise SpaceError(
            f"mask interior {window!r} does not fit the {h} x {w} sample: give a patch width "
            f"in 1..{min(h, w)}."
        )
    half = k // 2
    return rect_mask(shape, (half, half, h - k + half + 1, w - k + half + 1))


__all__ = ["interior_mask", "pixels_mask", "read_mask_file", "rect_mask"]
