"""A fitted multi-task (ICM) kernel in plain numpy, for closed-form posterior arithmetic.

:func:`coscope.models.multitask.icm_kernel` reads it off a fitted ``MultiTaskGP``; the
knowledge-gain rule (:mod:`coscope.agents.knowledge_gain`) conditions and scores with it,
thousands of candidates at a time, without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.special


@dataclass(frozen=True)
class IcmKernel:
    """The fitted ICM GP in plain numpy: ``K((x, s), (x', t)) = B[s, t] exp(-|phi(x) -
    phi(x')|^2_l / 2)`` with ``phi(x) = [x, s_1(x) .. s_K(x)]``, ``s_k(x) = sigmoid((u_k . x -
    c_k) / tau_k)`` (:mod:`coscope.models.boundary_warp`; ``K = 0``: ``phi(x) = x``).

    Attributes:
        lengthscale: ARD lengthscales ``(d + K,)`` of the RBF data kernel.
        task_cov: ``B``, ``T x T``.
        noise: Noise variance per task ``(T,)``.
        mean: Constant prior mean per task ``(T,)``.
        direction: Unit boundary directions ``u``, ``K x d`` (empty: no boundary).
        offset: Boundary offsets ``c``, ``(K,)``, input units.
        tau: Boundary widths, ``(K,)``, input units.
    All in standard units (per-task standardised targets).
    """

    lengthscale: np.ndarray
    task_cov: np.ndarray
    noise: np.ndarray
    mean: np.ndarray
    direction: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tau: np.ndarray = field(default_factory=lambda: np.ones(0))

    def warp(self, x: np.ndarray) -> np.ndarray:
        """``phi(x)``: inputs ``n x d`` -> ``n x (d + K)`` (unchanged without boundaries)."""
        if len(self.offset) == 0:
            return x
        s = scipy.special.expit((x @ self.direction.T - self.offset) / self.tau)
        return np.concatenate([x, s], axis=1)

    def __call__(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Kernel matrix between rows ``A`` (``a x (d + 1)``) and ``B``, task index last."""
        xa = self.warp(A[:, :-1]) / self.lengthscale
        xb = self.warp(B[:, :-1]) / self.lengthscale
        sq = (xa**2).sum(1)[:, None] + (xb**2).sum(1)[None, :] - 2.0 * xa @ xb.T
        ta, tb = A[:, -1].astype(np.int64), B[:, -1].astype(np.int64)
        return self.task_cov[np.ix_(ta, tb)] * np.exp(-0.5 * np.clip(sq, 0.0, None))

    def diag(self, A: np.ndarray) -> np.ndarray:
        """Prior variances of rows ``A``."""
        t = A[:, -1].astype(np.int64)
        return self.task_cov[t, t].copy()
