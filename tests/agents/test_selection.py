from __future__ import annotations

import numpy as np

from coscope.agents import select


def test_excludes_measured_and_pending():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    excluded = np.array([True, False, True, False, False])
    assert select(scores, excluded, 2).tolist() == [1, 3]


def test_returns_fewer_when_few_are_eligible_and_none_when_all_excluded():
    scores = np.arange(4.0)
    assert select(scores, np.array([True, True, False, True]), 3).tolist() == [2]
    assert select(scores, np.ones(4, bool), 1).size == 0


def test_nan_scores_rank_last():
    scores = np.array([np.nan, 1.0, -5.0])
    assert select(scores, np.zeros(3, bool), 3).tolist() == [1, 2, 0]


def test_ties_are_deterministic():
    scores = np.zeros(50)
    scores[[7, 30]] = -1.0
    excluded = np.zeros(50, bool)
    assert select(scores, excluded, 3).tolist() == [0, 1, 2]  # no rng: lowest index
    a = select(scores, excluded, 5, np.random.default_rng([1, 2]))
    b = select(scores, excluded, 5, np.random.default_rng([1, 2]))
    c = select(scores, excluded, 5, np.random.default_rng([1, 3]))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert not {7, 30} & set(a.tolist())
