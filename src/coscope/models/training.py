"""What every surrogate shares: checking training data, and its fit as a trace row."""

from __future__ import annotations

from typing import Any

import numpy as np

from coscope.errors import ModelError
from coscope.types import FitRecord


def check_training_data(
    X: np.ndarray, y: np.ndarray, model: str, inputs: str = "X"
) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as float64 ``n x d`` and ``y`` as float64 ``(n,)``; ModelError when unusable.

    Args:
        X: Inputs, ``n x d`` (coordinates, features …), ``n, d >= 1``.
        y: Targets, ``(n,)``.
        model: Model name for the message (``"GP"``, ``"DKL"``).
        inputs: Name of the inputs in the message (``"X"``, ``"F"``).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] == 0 or X.shape[1] == 0:
        raise ModelError(
            f"{model} training data must be {inputs} of shape (n, d) and y of shape (n,) with "
            f"n, d >= 1; got {inputs} {X.shape} and y {y.shape}."
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ModelError(
            f"{model} training data contains NaN or inf; drop or fix those observations."
        )
    return X, y


class FitRecordMixin:
    """``record(version, step)`` for a fitted state with ``n_train``, ``loss``, ``seconds``
    and ``named_hyperparameters()``."""

    n_train: Any
    loss: float
    seconds: float

    def named_hyperparameters(self) -> dict[str, float]:  # pragma: no cover - overridden
        raise NotImplementedError

    def record(self, version: int, step: int) -> FitRecord:
        """The trace row of this fit: ``version``, ``step`` and named hyperparameters."""
        return FitRecord(
            version=int(version),
            step=int(step),
            n_train=int(self.n_train),
            loss=float(self.loss),
            seconds=float(self.seconds),
            hyperparameters=self.named_hyperparameters(),
        )
