"""select sorts only the contenders: same picks as a full sort, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.agents.selection import select


def _full_sort(scores, excluded, n, rng):
    eligible = np.flatnonzero(~excluded)
    key = np.where(np.isnan(scores), -np.inf, scores)[eligible]
    tie = rng.permutation(scores.size)[eligible] if rng is not None else eligible
    return eligible[np.lexsort((tie, -key))[:n]]


@pytest.mark.parametrize("n", [1, 3, 40, 999, 1000, 5000])
def test_partial_selection_equals_a_full_sort(n):
    gen = np.random.default_rng(n)
    scores = gen.integers(0, 20, size=1000).astype(float)  # many exact ties
    scores[gen.choice(1000, 30, replace=False)] = np.nan
    scores[gen.choice(1000, 30, replace=False)] = -np.inf
    excluded = gen.random(1000) < 0.2
    for seed in (None, 5):
        rng_a = None if seed is None else np.random.default_rng(seed)
        rng_b = None if seed is None else np.random.default_rng(seed)
        got = select(scores, excluded, n, rng_a)
        assert got.tolist() == _full_sort(scores, excluded, n, rng_b).tolist()
