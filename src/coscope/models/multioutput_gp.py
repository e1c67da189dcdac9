"""An exact GP with one kernel shared by many outputs (whole loops), in plain numpy.

Used for the co-navigation surrogates, whose outputs are whole signals (``m`` = the loop
length): one ``n x n`` Cholesky factor serves every output, so the cost is that of a scalar
GP plus ``O(n^2 m)``. Kernel: ARD squared exponential on inputs scaled to ``[0, 1]``,

    k(x, x') = s^2 exp(-0.5 sum_d (x_d - x'_d)^2 / l_d^2),   K_y = K + noise^2 I,

on outputs standardised per column. Hyperparameters ``(log l_1..l_d, log s, log noise)``
maximise the log marginal likelihood summed over outputs (L-BFGS-B, finite-difference
gradients, deterministic start), with ``l`` in ``[0.02, 20]`` and ``noise`` in
``[1e-4, 1]`` (standardised units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize

_JITTER = 1e-8


def _sq_dist(a: np.ndarray, b: np.ndarray, lengthscale: np.ndarray) -> np.ndarray:
    a, b = a / lengthscale, b / lengthscale
    d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


@dataclass
class SharedKernelGP:
    """A fitted multi-output GP.

    Attributes:
        X: Training inputs ``n x d`` in ``[0, 1]``.
        y_mean: Output means ``(m,)``; y_std: output scales ``(m,)``.
        lengthscale: ``(d,)``; signal: kernel std; noise: noise std (standardised units).
    """

    X: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    lengthscale: np.ndarray
    signal: float
    noise: float
    _chol: tuple | None = None
    _alpha: np.ndarray | None = None

    @classmethod
    def fit(cls, X: np.ndarray, Y: np.ndarray, *, max_iter: int = 60) -> SharedKernelGP:
        """Fit to inputs ``X`` (``n x d``, in ``[0, 1]``) and outputs ``Y`` (``n x m``)."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        y_mean = Y.mean(0)
        y_std = Y.std(0)
        y_std = np.where(y_std > 1e-12 * max(float(y_std.max()), 1e-300), y_std, 1.0)
        Z = (Y - y_mean) / y_std
        n, d = X.shape
        m = Z.shape[1]

        def nll(log_params: np.ndarray) -> float:
            ls, sig, noise = np.exp(log_params[:d]), np.exp(log_params[d]), np.exp(log_params[-1])
            K = sig**2 * np.exp(-0.5 * _sq_dist(X, X, ls)) + (noise**2 + _JITTER) * np.eye(n)
            try:
                c, low = cho_factor(K, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                return 1e12
            fit = float(np.sum(Z * cho_solve((c, low), Z, check_finite=False)))
            return 0.5 * fit + m * float(np.log(np.diag(c)).sum())

        start = np.r_[np.full(d, np.log(0.3)), 0.0, np.log(0.05)]
        bounds = [(np.log(0.02), np.log(20.0))] * d + [(np.log(0.05), np.log(20.0))]
        bounds += [(np.log(1e-4), 0.0)]
        if n >= 2:
            res = minimize(
                nll, start, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iter}
            )
            best = res.x
        else:
            best = start
        gp = cls(
            X, y_mean, y_std, np.exp(best[:d]), float(np.exp(best[d])), float(np.exp(best[-1]))
        )
        gp._factor(Z)
        return gp

    def _factor(self, Z: np.ndarray) -> None:
        K = self.kernel(self.X, self.X) + (self.noise**2 + _JITTER) * np.eye(len(self.X))
        self._chol = cho_factor(K, lower=True, check_finite=False)
        self._alpha = cho_solve(self._chol, Z, check_finite=False)

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Prior covariance ``len(a) x len(b)`` (standardised units)."""
        return self.signal**2 * np.exp(-0.5 * _sq_dist(a, b, self.lengthscale))

    def predict(self, Xs: np.ndarray, batch: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(k, m)`` in output units and latent variance ``(k,)`` (standardised).

        The variance of output ``j`` is ``var * y_std[j]**2``.
        """
        Xs = np.atleast_2d(np.asarray(Xs, dtype=np.float64))
        means, variances = [], []
        for lo in range(0, len(Xs), batch):
            ks = self.kernel(Xs[lo : lo + batch], self.X)
            means.append(ks @ self._alpha)
            v = cho_solve(self._chol, ks.T, check_finite=False)
            variances.append(np.maximum(self.signal**2 - np.sum(ks * v.T, axis=1), 1e-12))
        mean = np.concatenate(means) * self.y_std + self.y_mean
        return mean, np.concatenate(variances)

    def posterior_cov(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Posterior latent covariance ``len(a) x len(b)`` (standardised units)."""
        ka, kb = self.kernel(a, self.X), self.kernel(b, self.X)
        return self.kernel(a, b) - ka @ cho_solve(self._chol, kb.T, check_finite=False)

    def loo_mse(self) -> np.ndarray:
        """Leave-one-out mean squared error per output ``(m,)``, output units squared.

        Closed form: the LOO residual of point ``i`` is ``alpha_i / [K_y^-1]_ii``.
        """
        k_inv = cho_solve(self._chol, np.eye(len(self.X)), check_finite=False)
        resid = self._alpha / np.diag(k_inv)[:, None]
        return np.mean(resid**2, axis=0) * self.y_std**2

    def state(self) -> dict[str, np.ndarray]:
        """Arrays enough to rebuild the fitted model (see :meth:`from_state`)."""
        return {
            "X": self.X,
            "alpha": self._alpha,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "lengthscale": self.lengthscale,
            "signal": np.array(self.signal),
            "noise": np.array(self.noise),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> SharedKernelGP:
        """Rebuild a fitted model from :meth:`state` (same predictions)."""
        gp = cls(
            state["X"],
            state["y_mean"],
            state["y_std"],
            state["lengthscale"],
            float(state["signal"]),
            float(state["noise"]),
        )
        K = gp.kernel(gp.X, gp.X) + (gp.noise**2 + _JITTER) * np.eye(len(gp.X))
        gp._chol = cho_factor(K, lower=True, check_finite=False)
        gp._alpha = np.asarray(state["alpha"])
        return gp
