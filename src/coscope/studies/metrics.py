"""Per-step quality metrics of a campaign: the one place studies compute them.

Every function is pure numpy over the grid (``H x W`` maps, flat row-major pixel indices).
A NaN in the truth map marks a cell that is not a candidate of the campaign's space (off a
mask, :func:`coscope.infra.compose.truth_map`): every metric is taken over the candidates
only, so "top 1 %" means the top 1 % of the candidates.
:class:`StepMetrics` accumulates what was measured so far and turns the agent's report
after each measurement into one row of a learning curve.

Metrics (``None`` when they need a ground truth the sample does not have):

* ``rmse``: root mean squared error of the posterior-mean map against the truth map.
* ``nlpd``: Gaussian negative log predictive density of the truth under the report's mean
  and standard deviation, mean over pixels (nats). The std is the latent posterior std,
  floored at ``std_floor`` so a zero variance gives a large finite number, not ``inf``.
* ``best_so_far``: best *observed* (noisy, scalarized) target — known without ground truth.
* ``regret``: true max − truth at the pixel of the best *observation* so far (what a user
  who trusts the measurements would pick).
* ``top1_fraction``: fraction of the true top-1 % pixels measured so far; the top set is the
  ``max(1, round(0.01 H W))`` highest truth pixels (ties broken by position).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

METRICS = ("rmse", "nlpd", "best_so_far", "regret", "top1_fraction")
"""Metric columns of a curve row, in order (after step, n_measurements, cost_spent)."""

LOWER_IS_BETTER = {"rmse": True, "nlpd": True, "regret": True}


def top_set(truth: np.ndarray, fraction: float = 0.01) -> set[int]:
    """Flat indices of the ``max(1, round(fraction * n))`` highest of the ``n`` finite cells."""
    flat = np.asarray(truth, dtype=np.float64).reshape(-1)
    known = np.flatnonzero(np.isfinite(flat))
    k = max(1, round(fraction * known.size))
    order = known[np.argsort(-flat[known], kind="stable")]
    return set(order[:k].tolist())


def rmse(mean: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error of ``mean`` against ``truth`` (same shape; finite truth only)."""
    truth = np.asarray(truth, dtype=np.float64)
    known = np.isfinite(truth)
    error = np.asarray(mean, dtype=np.float64)[known] - truth[known]
    return float(np.sqrt(np.mean(error**2)))


def gaussian_nlpd(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, std_floor: float = 1e-6
) -> float:
    """Mean over pixels of ``-log N(truth | mean, std^2)`` (nats), ``std`` floored; finite
    truth only."""
    truth = np.asarray(truth, dtype=np.float64)
    known = np.isfinite(truth)
    var = np.maximum(np.asarray(std, dtype=np.float64)[known], std_floor) ** 2
    error = truth[known] - np.asarray(mean, dtype=np.float64)[known]
    return float(np.mean(0.5 * np.log(2 * math.pi * var) + 0.5 * error**2 / var))


def regret(truth: np.ndarray, best_observed_flat: int) -> float:
    """True max minus the truth at flat pixel ``best_observed_flat``."""
    flat = np.asarray(truth, dtype=np.float64).reshape(-1)
    return float(np.nanmax(flat) - flat[best_observed_flat])


def top_fraction(top: set[int], measured_flat: Iterable[int]) -> float:
    """Fraction of the pixels in ``top`` that appear in ``measured_flat``."""
    return len(top & set(measured_flat)) / len(top)


class StepMetrics:
    """Turns (measurement so far, agent report) into curve rows.

    Args:
        truth: Ground-truth target map ``H x W``, or ``None`` when unknown.
        std_floor: Floor of the predictive std in :func:`gaussian_nlpd`.
    """

    def __init__(self, truth: np.ndarray | None, std_floor: float = 1e-6) -> None:
        self.truth = None if truth is None else np.asarray(truth, dtype=np.float64)
        self.std_floor = std_floor
        self.top = top_set(self.truth) if self.truth is not None else set()
        self.measured: set[int] = set()
        self._best_value = -math.inf
        self._best_flat = -1

    def add(self, flat: int, value: float) -> None:
        """Record one observation: flat pixel index and observed target value."""
        self.measured.add(int(flat))
        if value > self._best_value:  # first max wins on ties, as the agent's report
            self._best_value, self._best_flat = float(value), int(flat)

    def row(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> dict:
        """Metrics now; ``mean``/``std`` are the report maps (``H x W``, NaN without a model)."""
        out: dict[str, float | None] = dict.fromkeys(METRICS)
        if self._best_flat >= 0:
            out["best_so_far"] = self._best_value
        if self.truth is None:
            return out
        if self._best_flat >= 0:
            out["regret"] = regret(self.truth, self._best_flat)
        out["top1_fraction"] = top_fraction(self.top, self.measured)
        known = np.isfinite(self.truth)
        if mean is not None and np.all(np.isfinite(np.asarray(mean)[known])):
            out["rmse"] = rmse(mean, self.truth)
            if std is not None and np.all(np.isfinite(np.asarray(std)[known])):
                out["nlpd"] = gaussian_nlpd(mean, std, self.truth, self.std_floor)
        return out


class BoxMetrics:
    """Curve rows of a campaign over a continuous box (no map to compare: no ``rmse``,
    ``nlpd`` or ``top1_fraction``).

    Args:
        truth: Noise-free target at points, ``n x d -> (n,)``, or ``None`` when unknown.
        maximum: The target's known maximum over the box, or ``None``.

    ``regret`` is ``maximum - truth(best observed point)`` (simple regret of the point a
    user who trusts the measurements would pick).
    """

    def __init__(
        self,
        truth: Callable[[np.ndarray], np.ndarray] | None = None,
        maximum: float | None = None,
    ) -> None:
        self.truth = truth
        self.maximum = maximum
        self._best_value = -math.inf
        self._best_point: np.ndarray | None = None

    def add(self, point: np.ndarray, value: float) -> None:
        """Record one observation: its point ``(d,)`` and observed target value."""
        if value > self._best_value:  # first max wins on ties, as the agent's report
            self._best_value, self._best_point = float(value), np.asarray(point, dtype=float)

    def row(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> dict:
        """Metrics now (``mean``, ``std`` are accepted for symmetry and unused)."""
        del mean, std
        out: dict[str, float | None] = dict.fromkeys(METRICS)
        if self._best_point is None:
            return out
        out["best_so_far"] = self._best_value
        if self.truth is not None and self.maximum is not None:
            out["regret"] = float(self.maximum - self.truth(self._best_point[None, :])[0])
        return out
