"""Expected knowledge gain on the target task from one observation of any task (closed form).

With a GP over ``(x, t)`` (kernel ``K``, noise variance ``s_t`` per task, standard units),
conditioning set ``S`` = the training points **and every pending point** (pending points
enter as fantasies: a GP's posterior variance does not depend on the values observed, so a
fantasy at a pending point reduces variance exactly as the real measurement will), the
posterior covariance is ``C(a, b) = K(a, b) - K(a, S) (K(S, S) + diag(s_S))^-1 K(S, b)``.

Observing task ``m`` at ``x`` (noise ``s_m``) lowers the posterior variance of the target
``f(z, target)`` at every reference point ``z`` by ``C((x, m), (z, target))^2 / (C((x, m),
(x, m)) + s_m)``. The **knowledge gain** is that reduction integrated (averaged) over the
reference points ``Z`` (the whole grid, or a seeded subsample of it)::

    G(m, x) = (1 / |Z|) sum_{z in Z} C((x, m), (z, T))^2 / (C((x, m), (x, m)) + s_m)

in units of the target's variance (standardised target: 1 = the prior variance of the
map), and the cost-aware rule maximises ``G(m, x) / cost(m, x)``. The reference rule
("max uncertainty") maximises ``C((x, m), (x, m))`` over every (modality, location).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from coscope.models.icm_kernel import IcmKernel


def posterior_terms(
    kernel: IcmKernel,
    conditioning: np.ndarray,
    candidates: np.ndarray,
    reference: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``C(candidates, reference)`` and ``diag C(candidates, candidates)``.

    Args:
        kernel: The fitted kernel (:func:`coscope.models.multitask.icm_kernel`).
        conditioning: Training and pending rows, ``n x (d + 1)`` (values are not needed).
        candidates: Candidate rows, ``c x (d + 1)``.
        reference: Target rows, ``r x (d + 1)``.

    Returns:
        ``(cov, var)``: ``c x r`` and ``(c,)``, standard units.
    """
    k_cr = kernel(candidates, reference)
    k_cc = kernel.diag(candidates)
    if conditioning.shape[0] == 0:
        return k_cr, k_cc
    chol = _cholesky(kernel(conditioning, conditioning), kernel.noise, conditioning)
    w_c = scipy.linalg.solve_triangular(chol, kernel(conditioning, candidates), lower=True)
    w_r = scipy.linalg.solve_triangular(chol, kernel(conditioning, reference), lower=True)
    return k_cr - w_c.T @ w_r, np.clip(k_cc - (w_c**2).sum(0), 0.0, None)


def posterior_mean(
    kernel: IcmKernel, rows: np.ndarray, values: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance (standard units) at ``points`` given ``values`` at ``rows``."""
    mean0 = kernel.mean[points[:, -1].astype(np.int64)]
    if rows.shape[0] == 0:
        return mean0, kernel.diag(points)
    chol = _cholesky(kernel(rows, rows), kernel.noise, rows)
    resid = values - kernel.mean[rows[:, -1].astype(np.int64)]
    alpha = scipy.linalg.cho_solve((chol, True), resid)
    k_sp = kernel(rows, points)
    w = scipy.linalg.solve_triangular(chol, k_sp, lower=True)
    return mean0 + k_sp.T @ alpha, np.clip(kernel.diag(points) - (w**2).sum(0), 0.0, None)


def _cholesky(k_ss: np.ndarray, noise: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``K + diag(noise)``, with jitter (1e-8 .. 1e-2) if needed."""
    matrix = k_ss + np.diag(noise[rows[:, -1].astype(np.int64)])
    scale = float(np.mean(np.diag(matrix)))
    for jitter in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):
        try:
            return np.linalg.cholesky(matrix + np.eye(len(matrix)) * jitter * scale)
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def knowledge_gain(cov: np.ndarray, var: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``G = mean_z cov[:, z]^2 / (var + noise)`` per candidate (see module docstring).

    Args:
        cov: Posterior covariance candidate x reference point, ``c x r``.
        var: Posterior variance of each candidate, ``(c,)``.
        noise: Noise variance of each candidate's task, ``(c,)``.

    Returns:
        ``(c,)`` expected reduction of the mean posterior variance of the target, >= 0.
    """
    return np.mean(cov**2, axis=1) / (var + noise)
