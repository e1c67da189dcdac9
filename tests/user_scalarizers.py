"""User-supplied scalarizers for the tests (named in specs as 'tests.user_scalarizers:…')."""

from __future__ import annotations

import numpy as np


def peak_to_peak(signal: np.ndarray, axis: np.ndarray) -> float:
    """max - min of the signal."""
    return float(np.ptp(signal))


def broken(signal: np.ndarray, axis: np.ndarray) -> float:
    """Returns NaN: a scalarizer that is not robust."""
    return float("nan")


NOT_A_FUNCTION = 3
