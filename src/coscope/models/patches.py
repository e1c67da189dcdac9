"""Structure patches: the local picture around every pixel, as a feature vector per pixel.

A deep-kernel surrogate learns the map *local structure → property*; its inputs are the
``window x window`` patches of the sample's structure image centred on each pixel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import rankdata

from coscope.errors import ConfigError

SCALINGS = ("standard", "quantile")
"""How :class:`PatchGrid` scales each channel before cutting patches."""


def patch_features(structure: np.ndarray, window: int, scaling: str = "standard") -> np.ndarray:
    """The ``window x window`` patch centred on every pixel, flattened, one row per pixel.

    Each channel is first standardised over the whole image (zero mean, unit variance; a
    constant channel becomes zeros) — with ``scaling="quantile"`` after replacing every
    value by its quantile in the channel (``(rank - 0.5) / (H*W)``, ties averaged), which
    keeps the order of values and ignores their spacing, so spikes and heavy tails no
    longer squash the rest of the image — then padded by ``window // 2`` pixels before and
    ``(window - 1) // 2`` after with reflect padding (``numpy.pad(mode="reflect")``: the
    edge pixel is not repeated), so edge pixels get full patches. An odd window is centred
    on its pixel; an even one (e.g. 16) has the pixel at ``(window // 2, window // 2)``.
    Rows are in row-major pixel order, i.e. row ``Location(r, c).flat(W)``
    is the patch of pixel ``(r, c)``; columns are ordered channel, patch row, patch column,
    so the centre of channel ``k`` is column ``k * window**2 + window**2 // 2``.

    Memory: the whole ``(H*W) x p`` matrix; for large images use :class:`PatchGrid`, which
    gives the same rows on demand.

    Args:
        structure: The structure image, ``H x W`` or ``C x H x W``, finite floats.
        window: Patch width, ``1 <= window <= 2 * min(H, W) - 1`` (reflect padding
            needs ``window // 2 < min(H, W)``); odd or even.
        scaling: ``"standard"`` or ``"quantile"`` (see above).

    Returns:
        ``(H*W) x (C*window*window)`` float64 (``C = 1`` for a 2-D image).

    Raises:
        ConfigError: Wrong ``ndim``, non-finite values, or a window < 1 or too large.
    """
    return PatchGrid(structure, window, scaling).block(0, None)


class PatchGrid:
    """The rows of :func:`patch_features` on demand: any pixels, or blocks of image rows.

    Holds only the padded, standardised image (``C x (H + w - 1) x (W + w - 1)``); a block
    of ``r`` image rows costs ``r * W * p`` floats. Rows are bit-identical to
    :func:`patch_features`'s.

    Args:
        structure: The structure image, ``H x W`` or ``C x H x W``, finite floats.
        window: Patch width, odd or even (see :func:`patch_features`).
        scaling: ``"standard"`` or ``"quantile"`` (see :func:`patch_features`).

    Raises:
        ConfigError: As :func:`patch_features`, or an unknown ``scaling``.
    """

    def __init__(self, structure: np.ndarray, window: int, scaling: str = "standard") -> None:
        img = np.asarray(structure, dtype=np.float64)
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3 or min(img.shape) < 1:
            raise ConfigError(
                f"structure must be an image of shape (H, W) or (C, H, W); got shape "
                f"{np.shape(structure)}. Pass one 2-D image or a stack of channels."
            )
        if not np.isfinite(img).all():
            raise ConfigError("structure contains NaN or inf; fill or crop those pixels first.")
        C, H, W = img.shape
        window = int(window)
        if window < 1:
            raise ConfigError(f"patch window must be a positive int; got {window}. Use e.g. 9.")
        half = window // 2
        if half >= min(H, W):
            raise ConfigError(
                f"patch window {window} is too large for a {H} x {W} image; use at most "
                f"{2 * min(H, W) - 1}."
            )
        if scaling not in SCALINGS:
            raise ConfigError(f"patch scaling must be one of {SCALINGS}; got {scaling!r}.")
        if scaling == "quantile":
            ranks = np.stack([rankdata(ch).reshape(H, W) for ch in img])
            img = (ranks - 0.5) / (H * W)
        mean = img.mean(axis=(1, 2), keepdims=True)
        std = img.std(axis=(1, 2), keepdims=True)
        img = (img - mean) / np.where(std > 0, std, 1.0)
        after = (window - 1) // 2
        self.padded = np.pad(img, ((0, 0), (half, after), (half, after)), mode="reflect")
        self.window = window
        self.image_shape = (H, W)
        self.shape = (H * W, C * window * window)
        """``(H*W, p)``, as the matrix :func:`patch_features` would return."""

    def __len__(self) -> int:
        return self.shape[0]

    def _views(self, r0: int, r1: int) -> np.ndarray:
        w = self.window
        rows = self.padded[:, r0 : r1 + w - 1]
        return sliding_window_view(rows, (w, w), axis=(1, 2))  # C, r, W, w, w

    def block(self, r0: int, r1: int | None) -> np.ndarray:
        """Rows of the pixels in image rows ``r0 .. r1 - 1`` (all rows for ``r1=None``)."""
        H, W = self.image_shape
        r1 = H if r1 is None else min(int(r1), H)
        views = self._views(int(r0), r1)
        return np.ascontiguousarray(views.transpose(1, 2, 0, 3, 4)).reshape((r1 - r0) * W, -1)

    def __getitem__(self, flat: np.ndarray) -> np.ndarray:
        """Rows of the pixels with flat indices ``flat`` (``(k,)`` ints), ``k x p``."""
        flat = np.asarray(flat, dtype=np.int64).reshape(-1)
        H, W = self.image_shape
        w = self.window
        r, c = np.divmod(flat, W)
        if flat.size and (flat.min() < 0 or flat.max() >= H * W):
            raise IndexError(f"pixel indices must lie in [0, {H * W}); got {flat}")
        win = np.arange(w)
        patches = self.padded[:, r[:, None, None] + win[None, :, None], c[:, None, None] + win]
        return np.ascontiguousarray(patches.transpose(1, 0, 2, 3)).reshape(flat.size, -1)

    def blocks(self, max_rows: int):
        """``(first_flat_index, rows)`` blocks of whole image rows, ``<= max_rows`` pixels
        each (at least one image row)."""
        H, W = self.image_shape
        step = max(1, int(max_rows) // W)
        for r0 in range(0, H, step):
            yield r0 * W, self.block(r0, r0 + step)
