"""Acquisition functions over a discrete candidate set (maximisation of the scalar target).

A *policy* is registered by name and builds a botorch ``AcquisitionFunction`` from a model
and typed options; :func:`evaluate` scores ``m x d`` candidates in batches, each candidate
as its own ``q = 1`` batch (``X.unsqueeze(-2)``), giving an ``(m,)`` tensor. Any botorch
``Model`` works, including a fake with fixed moments in tests — no fitting here.

Registered policies:
    * ``"ei"``: :class:`~botorch.acquisition.analytic.LogExpectedImprovement` over the best
      observed value ``best_f``. Scores are log-EI: same argmax as EI, but no underflow to
      exact zero (and hence no mass ties) far from the incumbent.
    * ``"ucb"``: :class:`~botorch.acquisition.analytic.UpperConfidenceBound`,
      ``mean + sqrt(beta) * std``; option ``beta`` (default 4.0, i.e. two std).
    * ``"maxvar"``: :class:`~botorch.acquisition.analytic.PosteriorStandardDeviation`, pure
      exploration.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.analytic import (
    LogExpectedImprovement,
    PosteriorStandardDeviation,
    UpperConfidenceBound,
)
from botorch.models.model import Model

from coscope import catalog
from coscope.catalog import declare_acquisition
from coscope.errors import ConfigError
from coscope.models import predict
from coscope.registry import Registry

PolicyBuilder = Callable[..., AcquisitionFunction]
"""``(model, *, best_f: float, **options) -> AcquisitionFunction``."""

POLICIES: Registry[PolicyBuilder] = Registry("acquisition policy")
policy_names = POLICIES.names
get_policy = POLICIES.get


def register_policy(name: str) -> Callable[[PolicyBuilder], PolicyBuilder]:
    """Decorator registering ``(model, *, best_f, **options) -> AcquisitionFunction``.

    Its keyword options are the policy's parameters, validated by :func:`build_acquisition`;
    they are declared in :mod:`coscope.catalog` (a built-in policy must take the options
    declared there), so that a spec naming the policy validates without torch.
    """

    def decorate(builder: PolicyBuilder) -> PolicyBuilder:
        declare_acquisition(name, _options(builder))
        return POLICIES.register(name)(builder)

    return decorate


def _options(builder: PolicyBuilder) -> tuple[str, ...]:
    """The keyword options of a policy builder (its parameters but ``model`` and ``best_f``)."""
    return tuple(p for p in inspect.signature(builder).parameters if p not in ("model", "best_f"))


def build_acquisition(
    name: str, model: Model, *, best_f: float, params: Mapping[str, Any] | None = None
) -> AcquisitionFunction:
    """Build policy ``name`` on ``model``.

    Args:
        name: Registered policy name.
        model: A botorch model with one output (posterior in target units).
        best_f: Best observed target value (used by improvement-based policies).
        params: Policy options, e.g. ``{"beta": 4.0}`` for UCB.

    Raises:
        ConfigError: Unknown policy, or an option the policy does not take.
    """
    builder = validate_policy(name, params)
    return builder(model, best_f=float(best_f), **dict(params or {}))


def validate_policy(name: str, params: Mapping[str, Any] | None = None) -> PolicyBuilder:
    """Check that ``name`` is registered and takes the options ``params``; return its builder.

    Raises:
        ConfigError: Unknown policy, or an option the policy does not take.
    """
    builder = get_policy(name)
    allowed = list(_options(builder))
    unknown = sorted(set(params or {}) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Policy {name!r} does not take option(s) {unknown}; it takes: {allowed or 'none'}."
        )
    for key, value in (params or {}).items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(
                f"policy {name!r} option {key} must be a finite number; got {value!r}."
            )
        rules = catalog.POLICIES.get(name).params if name in catalog.POLICIES else {}
        if key in rules:  # bounds, as declared in coscope.catalog
            try:
                rules[key].check(key, value)
            except ValueError as exc:
                raise ConfigError(f"policy {name!r}: {exc}.") from None
    return builder


def believing(model: Model, points: np.ndarray) -> Model:
    """``model`` conditioned on ``points`` (``m x d``, in flight) at its own posterior mean:
    the "kriging believer" — the mean is unchanged, the uncertainty around them shrinks, so
    the next choice does not crowd a point already being measured. ``m = 0``: ``model``."""
    if not len(points):
        return model
    mean, _ = predict(model, points)  # also builds the caches that conditioning needs
    with torch.no_grad():
        believed = model.condition_on_observations(
            torch.as_tensor(points, dtype=torch.float64),
            torch.as_tensor(mean, dtype=torch.float64).unsqueeze(-1),
        )
    believed.eval()
    return believed


def evaluate(acqf: AcquisitionFunction, X: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Score candidates one by one (``q = 1``), streamed in batches.

    Args:
        acqf: An analytic acquisition function.
        X: Candidates, ``m x d``.
        batch_size: Candidates per batch (memory is ``O(batch_size * n)``).

    Returns:
        Scores, ``(m,)``; higher is better.
    """
    out = []
    with torch.no_grad(), gpytorch.settings.fast_pred_var(), warnings.catch_warnings():
        # variances rounded up from -1e-16 at measured points are harmless
        warnings.simplefilter("ignore", gpytorch.utils.warnings.NumericalWarning)
        for start in range(0, X.shape[0], batch_size):
            out.append(acqf(X[start : start + batch_size].unsqueeze(-2)).reshape(-1))
    return torch.cat(out) if out else X.new_empty(0)


@register_policy("ei")
def expected_improvement(model: Model, *, best_f: float) -> AcquisitionFunction:
    """Log expected improvement over ``best_f``."""
    return LogExpectedImprovement(model, best_f=best_f)


@register_policy("ucb")
def upper_confidence_bound(
    model: Model, *, best_f: float, beta: float = 4.0
) -> AcquisitionFunction:
    """``mean + sqrt(beta) * std``; ``beta`` must be >= 0."""
    del best_f
    if not beta >= 0:
        raise ConfigError(f"UCB option beta must be >= 0; got {beta!r}.")
    return UpperConfidenceBound(model, beta=float(beta))


@register_policy("maxvar")
def max_variance(model: Model, *, best_f: float) -> AcquisitionFunction:
    """Posterior standard deviation (maximising it maximises the variance)."""
    del best_f
    return PosteriorStandardDeviation(model)
