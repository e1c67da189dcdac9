"""Selection: the argmax over candidates, excluding measured and pending locations."""

from __future__ import annotations

import numpy as np


def select(
    scores: np.ndarray, excluded: np.ndarray, n: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Indices of the ``n`` best candidates that are not excluded, best first.

    Ties (exactly equal scores) are broken by a random priority drawn from ``rng`` — the same
    generator state gives the same choice — or by the lowest index when ``rng`` is None.
    NaN scores rank below every finite score (but are still eligible).

    Args:
        scores: ``(m,)`` scores, higher is better.
        excluded: ``(m,)`` bool mask of candidates that must not be chosen.
        n: How many to choose; fewer are returned when fewer are eligible.
        rng: Tie-break generator.

    Returns:
        ``(k,)`` int64 indices, ``k = min(n, number eligible)``.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    excluded = np.asarray(excluded, dtype=bool).reshape(-1)
    if scores.shape != excluded.shape:
        raise ValueError(f"scores {scores.shape} and excluded {excluded.shape} differ in shape")
    m = scores.shape[0]
    eligible = np.flatnonzero(~excluded)
    if n <= 0 or eligible.size == 0:
        return np.empty(0, dtype=np.int64)
    key = np.where(np.isnan(scores), -np.inf, scores)[eligible]
    tie = rng.permutation(m)[eligible] if rng is not None else eligible
    if n < key.size:  # sort only what can be among the n best (all ties of the n-th kept)
        keep = np.flatnonzero(key >= np.partition(key, key.size - n)[key.size - n])
        eligible, key, tie = eligible[keep], key[keep], tie[keep]
    order = np.lexsort((tie, -key))  # primary: score descending; then tie priority
    return eligible[order[:n]].astype(np.int64)
