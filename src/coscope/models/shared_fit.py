"""The ``shared_gp`` fit kind: a :class:`SharedKernelGP` fitted through ``fit_model``.

Co-navigation fits three whole-loop surrogates (theory emulator, experiment GP, discrepancy
GP). Registered as a model kind they run wherever the campaign's executor runs fits (a Dask
worker, a Prefect ``fit`` task), and come back as plain data, :class:`SharedGPState`, which
:meth:`SharedGPState.model` turns into the same model (the Cholesky factor is recomputed from
the same kernel matrix, so predictions are bit-identical to an in-process fit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coscope.models.multioutput_gp import SharedKernelGP
from coscope.types import FitRecord


@dataclass(frozen=True)
class SharedGPState:
    """Plain-data state of a fitted :class:`SharedKernelGP`.

    Attributes:
        arrays: :meth:`SharedKernelGP.state` (``X`` ``n x d``, ``alpha`` ``n x m``,
            ``y_mean``/``y_std`` ``(m,)``, ``lengthscale`` ``(d,)``, ``signal``, ``noise``).
        n_train: Training points ``n``.
        loss: Negative log marginal likelihood per point and output (standardised units).
        seconds: Wall time of the fit.
        seed: The seed the fit was asked for (the fit itself is deterministic: its optimiser
            starts from a fixed point, so the seed is recorded, not used).
        where: Where it ran: the Dask worker's address, or ``"local"`` (this process).
    """

    arrays: dict[str, np.ndarray] = field(repr=False)
    n_train: int
    loss: float
    seconds: float
    seed: int = 0
    where: str = "local"

    def model(self) -> SharedKernelGP:
        """The fitted model (same predictions as the one fitted)."""
        return SharedKernelGP.from_state(self.arrays)

    def record(self, version: int, step: int, **extra: Any) -> FitRecord:
        """The trace's record of this fit as model ``version`` serving decision ``step``."""
        a = self.arrays
        hyper: dict[str, Any] = {
            "lengthscale": [float(v) for v in np.atleast_1d(a["lengthscale"])],
            "signal": float(a["signal"]),
            "noise": float(a["noise"]),
            "n_outputs": int(np.asarray(a["y_mean"]).size),
            "seed": self.seed,
            "where": self.where,
            **extra,
        }
        return FitRecord(int(version), int(step), self.n_train, self.loss, self.seconds, hyper)


def fit_shared_gp(
    X: np.ndarray, y: np.ndarray, *, seed: int = 0, iterations: int = 60
) -> SharedGPState:
    """Fit a :class:`SharedKernelGP` to ``X`` (``n x d`` in ``[0, 1]``), ``y`` (``n x m``).

    Args:
        X: Inputs ``n x d``.
        y: Outputs ``n x m`` (whole loops; a ``(n,)`` vector is one output).
        seed: Recorded only (see :class:`SharedGPState`).
        iterations: L-BFGS-B iterations of the hyperparameter search.
    """
    t0 = time.perf_counter()
    Y = np.asarray(y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    gp = SharedKernelGP.fit(X, Y, max_iter=int(iterations))
    arrays = gp.state()
    Z = (Y - gp.y_mean) / gp.y_std
    chol = np.diag(gp._chol[0])  # the factor the model predicts with
    nll = 0.5 * float(np.sum(Z * arrays["alpha"])) + Z.shape[1] * float(np.log(chol).sum())
    loss = nll / max(Z.size, 1)
    seconds = time.perf_counter() - t0
    return SharedGPState(arrays, len(Y), loss, seconds, int(seed), _where())


def _where() -> str:
    """The Dask worker running this call, or ``"local"``."""
    try:  # heavy: Dask's worker module, only to name the worker a fit ran on
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"
