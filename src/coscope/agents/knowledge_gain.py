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
import torch

DTYPE = torch.float64


def _kernel(covar_module, A: np.ndarray, B: np.ndarray) -> torch.Tensor:
    a = torch.as_tensor(A, dtype=DTYPE)
    b = torch.as_tensor(B, dtype=DTYPE)
    return covar_module(a, b).to_dense()


def posterior_terms(
    covar_module,
    noise: np.ndarray,
    conditioning: np.ndarray,
    candidates: np.ndarray,
    reference: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``C(candidates, reference)`` and ``diag C(candidates, candidates)``.

    Args:
        covar_module: The model's kernel over ``(x, task)`` rows (task index last column).
        noise: Noise variance per task, ``(T,)``.
        conditioning: Training and pending rows, ``n x (d + 1)``.
        candidates: Candidate rows, ``c x (d + 1)``.
        reference: Target rows, ``r x (d + 1)``.

    Returns:
        ``(cov, var)``: ``c x r`` and ``(c,)``, standard units.
    """
    with torch.no_grad():
        k_cr = _kernel(covar_module, candidates, reference)
        k_cc = covar_module(torch.as_tensor(candidates, dtype=DTYPE), diag=True).reshape(-1)
        if conditioning.shape[0] == 0:
            return k_cr.numpy(), k_cc.numpy()
        k_ss = _kernel(covar_module, conditioning, conditioning)
        tasks = conditioning[:, -1].astype(np.int64)
        k_ss = k_ss + torch.diag(torch.as_tensor(noise[tasks], dtype=DTYPE))
        chol = _cholesky(k_ss)
        v_c = torch.cholesky_solve(_kernel(covar_module, conditioning, candidates), chol)
        k_sc = _kernel(covar_module, conditioning, candidates)
        k_sr = _kernel(covar_module, conditioning, reference)
        cov = k_cr - v_c.T @ k_sr
        var = (k_cc - (k_sc * v_c).sum(0)).clamp_min(0.0)
    return cov.numpy(), var.numpy()


def _cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor, adding jitter (1e-8 .. 1e-4 of the mean diagonal) if needed."""
    scale = float(matrix.diagonal().mean())
    for jitter in (0.0, 1e-8, 1e-6, 1e-4):
        eye = torch.eye(matrix.shape[0], dtype=DTYPE) * jitter * scale
        chol, info = torch.linalg.cholesky_ex(matrix + eye)
        if int(info) == 0:
            return chol
    return torch.linalg.cholesky(matrix + torch.eye(matrix.shape[0], dtype=DTYPE) * 1e-2 * scale)


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
