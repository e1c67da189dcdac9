"""Thompson sampling over a discrete candidate set: argmax of one joint posterior draw.

One draw of the latent target ``f`` (no observation noise) over the eligible candidates:

* ``m_eligible <= max_joint`` (default 5,000): an exact joint draw from the predictive
  ``N(mu, Sigma)`` over all of them — ``Sigma`` is built densely (``m^2`` floats, 200 MB at
  5,000 in float64) and factorised by Cholesky with jitter raised from ``1e-9`` of its mean
  diagonal until it succeeds.
* larger sets: the same exact draw over a random subset of ``max_joint - 1`` eligible
  candidates (drawn from ``rng``) plus the eligible candidate with the highest posterior
  mean (so the incumbent region can always win); the others score ``-inf`` and are never
  chosen by that draw. This is an approximation of Thompson sampling (a random thinning of
  the candidate set), not an exact draw over all of them.

Works with any botorch ``Model`` with one output, e.g. the latent GP of a DKL
(:func:`coscope.models.load_latent_model`) on latent candidates. The normal deviates come
from ``rng``: the same generator state gives the same choice.
"""

from __future__ import annotations

import warnings

import gpytorch
import numpy as np
import torch
from botorch.models.model import Model

from coscope.agents.selection import select
from coscope.models import predict

MAX_JOINT = 5000
"""Largest candidate set drawn jointly and exactly."""


def joint_draw(model: Model, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One exact joint draw of the latent ``f`` at ``X`` (``k x d``); returns ``(k,)``."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), warnings.catch_warnings():
        warnings.simplefilter("ignore", gpytorch.utils.warnings.NumericalWarning)
        post = model.posterior(Xt)
        mean = post.mean.reshape(-1)
        cov = post.distribution.covariance_matrix
        if cov.dim() > 2:
            cov = cov.reshape(mean.shape[0], mean.shape[0])
    scale = float(cov.diagonal().clamp_min(0).mean()) or 1.0
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    jitter = 1e-9
    while True:
        L, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if int(info) == 0:
            break
        if jitter > 1e-2:
            raise np.linalg.LinAlgError("posterior covariance is not positive definite")
        jitter *= 10
    eps = torch.as_tensor(rng.standard_normal(cov.shape[0]), dtype=cov.dtype)
    return (mean + L @ eps).numpy()


def thompson_scores(
    model: Model,
    candidates: np.ndarray,
    excluded: np.ndarray,
    rng: np.random.Generator,
    *,
    max_joint: int = MAX_JOINT,
    batch_size: int = 4096,
) -> np.ndarray:
    """One posterior draw as scores: ``(m,)``, ``-inf`` where excluded or not drawn.

    Args:
        model: A botorch model with one output.
        candidates: Model inputs of every candidate, ``m x d``.
        excluded: ``(m,)`` bool, candidates that must not be chosen (measured, pending).
        rng: Source of the subset and of the normal deviates.
        max_joint: Largest set drawn jointly; above it a random subset (module docstring).
        batch_size: Candidates per batch when ranking by posterior mean (large ``m`` only).
    """
    excluded = np.asarray(excluded, dtype=bool).reshape(-1)
    scores = np.full(excluded.shape[0], -np.inf)
    eligible = np.flatnonzero(~excluded)
    if eligible.size == 0:
        return scores
    if eligible.size > max_joint:
        mean, _ = predict(model, candidates[eligible], batch_size=batch_size)
        best = eligible[int(np.argmax(mean))]
        others = np.setdiff1d(eligible, [best], assume_unique=True)
        eligible = np.sort(np.append(rng.choice(others, size=max_joint - 1, replace=False), best))
    scores[eligible] = joint_draw(model, candidates[eligible], rng)
    return scores


def thompson_indices(
    model: Model,
    candidates: np.ndarray,
    excluded: np.ndarray,
    rng: np.random.Generator,
    *,
    n: int = 1,
    max_joint: int = MAX_JOINT,
) -> np.ndarray:
    """Up to ``n`` Thompson picks, one independent posterior draw per pick.

    Args:
        model: A botorch model with one output.
        candidates: Model inputs of every candidate, ``m x d``.
        excluded: ``(m,)`` bool mask of candidates not to choose (measured, pending).
        rng: Randomness of the draws (same state, same picks).
        n: Number of picks; fewer when fewer candidates are eligible.
        max_joint: See :func:`thompson_scores`.

    Returns:
        ``(k,)`` int64 flat indices, never excluded, distinct, in pick order.
    """
    excluded = np.array(excluded, dtype=bool).reshape(-1)
    picks: list[int] = []
    for _ in range(int(n)):
        scores = thompson_scores(model, candidates, excluded, rng, max_joint=max_joint)
        chosen = select(scores, excluded, 1, rng)
        if chosen.size == 0:
            break
        picks.append(int(chosen[0]))
        excluded[chosen[0]] = True
    return np.asarray(picks, dtype=np.int64)
