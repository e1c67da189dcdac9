"""Structure patches: the local picture around every pixel, as a feature vector per pixel.

A deep-kernel surrogate learns the map *local structure → property*; its inputs are the
``window x window`` patches of the sample's structure image centred on each pixel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from coscope.errors import ConfigError


def patch_features(structure: np.ndarray, window: int) -> np.ndarray:
    """The ``window x window`` patch centred on every pixel, flattened, one row per pixel.

    Each channel is first standardised over the whole image (zero mean, unit variance; a
    constant channel becomes zeros), then padded by ``window // 2`` pixels with reflect
    padding (``numpy.pad(mode="reflect")``: the edge pixel is not repeated), so edge pixels
    get full patches. Rows are in row-major pixel order, i.e. row ``Location(r, c).flat(W)``
    is the patch of pixel ``(r, c)``; columns are ordered channel, patch row, patch column,
    so the centre of channel ``k`` is column ``k * window**2 + window**2 // 2``.

    Args:
        structure: The structure image, ``H x W`` or ``C x H x W``, finite floats.
        window: Odd patch width, ``1 <= window <= 2 * min(H, W) - 1`` (reflect padding
            needs ``window // 2 < min(H, W)``).

    Returns:
        ``(H*W) x (C*window*window)`` float64 (``C = 1`` for a 2-D image).

    Raises:
        ConfigError: Wrong ``ndim``, non-finite values, or an even or too large ``window``.
    """
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
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"patch window must be a positive odd int; got {window}. Use e.g. 9.")
    half = window // 2
    if half >= min(H, W):
        raise ConfigError(
            f"patch window {window} is too large for a {H} x {W} image; use at most "
            f"{2 * min(H, W) - 1}."
        )
    mean = img.mean(axis=(1, 2), keepdims=True)
    std = img.std(axis=(1, 2), keepdims=True)
    img = (img - mean) / np.where(std > 0, std, 1.0)
    padded = np.pad(img, ((0, 0), (half, half), (half, half)), mode="reflect")
    views = sliding_window_view(padded, (window, window), axis=(1, 2))  # C, H, W, win, win
    return np.ascontiguousarray(views.transpose(1, 2, 0, 3, 4)).reshape(H * W, -1)
