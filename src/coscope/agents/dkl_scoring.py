"""Scoring a million latent candidates: a lattice over the latent plane, then exact refinement.

A DKL maps every pixel to a point of a low-dimensional latent plane, and the acquisition
score is a smooth function of that point (a function of the latent GP's posterior mean and
variance). For large grids (above ``EXACT_MAX`` candidates, 2-D latent) the agent scores a
``resolution x resolution`` lattice over the bounding box of the candidates' latent points
exactly, interpolates bilinearly to every candidate (``O(m)``), then rescores the
``refine`` best candidates exactly, so the chosen pixel carries its exact score. The cost
is ``resolution**2 + refine`` exact evaluations instead of ``m``.

This is an approximation: a candidate whose interpolated score falls outside the
``refine`` best while its exact score would have won is missed (the lattice spacing must be
small against the latent lengthscales, which the benchmark checks by comparing the pick
with the exact argmax at 100,000 candidates). Below ``EXACT_MAX`` every score is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EXACT_MAX = 65_536
"""Largest candidate count scored exactly, one by one."""
RESOLUTION = 128
"""Lattice points per latent axis."""
REFINE = 4096
"""Best interpolated candidates rescored exactly."""


def lattice_scores(
    score: Callable[[np.ndarray], np.ndarray],
    Z: np.ndarray,
    *,
    resolution: int = RESOLUTION,
    refine: int = REFINE,
) -> np.ndarray:
    """Scores of ``m`` 2-D latent points: lattice + bilinear interpolation + exact top.

    Args:
        score: Exact scores of ``k x 2`` latent points, ``(k,)``.
        Z: Latent points, ``m x 2``.
        resolution: Lattice points per axis (>= 2).
        refine: How many of the best interpolated candidates are rescored exactly.

    Returns:
        ``(m,)`` float64 scores (exact for the ``refine`` best, interpolated elsewhere).
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"lattice scoring needs 2-D latent points; got shape {Z.shape}")
    g = int(resolution)
    lo, hi = Z.min(axis=0), Z.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    axes = [lo[d] + span[d] * np.arange(g) / (g - 1) for d in (0, 1)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    S = np.asarray(score(lattice), dtype=np.float64).reshape(g, g)
    u = (Z - lo) / span * (g - 1)
    i = np.clip(np.floor(u).astype(np.int64), 0, g - 2)
    f = u - i
    i0, i1, f0, f1 = i[:, 0], i[:, 1], f[:, 0], f[:, 1]
    out = (
        S[i0, i1] * (1 - f0) * (1 - f1)
        + S[i0 + 1, i1] * f0 * (1 - f1)
        + S[i0, i1 + 1] * (1 - f0) * f1
        + S[i0 + 1, i1 + 1] * f0 * f1
    )
    k = min(int(refine), Z.shape[0])
    top = np.argpartition(-out, k - 1)[:k] if k < Z.shape[0] else np.arange(Z.shape[0])
    out[top] = np.asarray(score(Z[top]), dtype=np.float64)
    return out
