"""The study metrics on hand-built cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coscope.studies.metrics import (
    METRICS,
    StepMetrics,
    gaussian_nlpd,
    regret,
    rmse,
    top_fraction,
    top_set,
)


def _truth() -> np.ndarray:
    return np.arange(200, dtype=float).reshape(10, 20)  # flat index == value; max 199 at 199


def test_top_set_is_the_highest_one_percent() -> None:
    assert top_set(_truth()) == {199, 198}  # round(0.01 * 200) = 2
    assert top_set(np.zeros((3, 3))) == {0}  # at least one pixel, ties by position


def test_top_fraction_counts_measured_top_pixels() -> None:
    top = top_set(_truth())
    assert top_fraction(top, []) == 0.0
    assert top_fraction(top, [199, 5, 7]) == 0.5
    assert top_fraction(top, [198, 199, 199]) == 1.0


def test_regret_is_true_max_minus_truth_at_best_observed() -> None:
    assert regret(_truth(), 199) == 0.0
    assert regret(_truth(), 150) == 49.0


def test_nlpd_of_a_perfect_prediction_is_the_gaussian_normaliser() -> None:
    truth = _truth()
    sigma = 0.5
    expected = 0.5 * math.log(2 * math.pi * sigma**2)
    assert gaussian_nlpd(truth, np.full_like(truth, sigma), truth) == pytest.approx(expected)
    # one std off everywhere adds exactly 1/2 nat
    off = gaussian_nlpd(truth + sigma, np.full_like(truth, sigma), truth)
    assert off == pytest.approx(expected + 0.5)
    # zero std is floored: large but finite
    assert np.isfinite(gaussian_nlpd(truth + 1, np.zeros_like(truth), truth))


def test_rmse() -> None:
    assert rmse(_truth() + 3.0, _truth()) == pytest.approx(3.0)


def test_step_metrics_accumulate_and_use_best_observation() -> None:
    truth = _truth()
    m = StepMetrics(truth)
    m.add(10, 1.0)
    m.add(199, 0.5)  # the true max, but observed (noisily) lower than pixel 10
    row = m.row(truth, np.full_like(truth, 1.0))
    assert set(row) == set(METRICS)
    assert row["best_so_far"] == 1.0
    assert row["regret"] == 189.0  # judged at the best *observed* pixel, 10
    assert row["top1_fraction"] == 0.5
    assert row["rmse"] == 0.0
    m.add(198, 2.0)
    row = m.row(np.full_like(truth, np.nan), np.full_like(truth, np.nan))
    assert row["regret"] == 1.0 and row["top1_fraction"] == 1.0
    assert row["rmse"] is None and row["nlpd"] is None  # no model yet


def test_without_ground_truth_only_observed_quantities() -> None:
    m = StepMetrics(None)
    m.add(3, 4.2)
    row = m.row(np.zeros((2, 2)), np.ones((2, 2)))
    assert row["best_so_far"] == 4.2
    assert all(row[k] is None for k in METRICS if k != "best_so_far")
