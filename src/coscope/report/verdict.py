"""The verdict of a hypothesis-learning campaign, from its fits table alone (docs/hypotheses.md).

Policy ``hypotheses`` records one fit per hypothesis at every refresh, each with
``role`` ``hypothesis.<name>``, ``elpd`` (leave-one-out log score, nats) and ``prob`` in its
hyperparameters. The verdict is read from the latest refresh: no model is rebuilt and no law
imported (:mod:`coscope.trust`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from coscope.types import FitRecord

ROLE_PREFIX = "hypothesis."
"""``role`` of a hypothesis' fit record: ``hypothesis.<name>``."""


def latest_refresh(fits: Sequence[FitRecord]) -> list[FitRecord]:
    """The hypotheses' fits of the latest refresh (the last record of each hypothesis among
    those at the last hypothesis fit's step), in trace order; empty without any."""
    rows = [f for f in fits if str(f.hyperparameters.get("role", "")).startswith(ROLE_PREFIX)]
    if not rows:
        return []
    step = rows[-1].step
    latest: dict[str, FitRecord] = {}
    for f in rows:
        if f.step == step:
            latest[str(f.hyperparameters["role"])] = f
    return sorted(latest.values(), key=lambda f: f.version)


def verdict_of(fits: Sequence[FitRecord]) -> dict[str, Any] | None:
    """``{"leading", "probability", "n_observations", "probabilities", "elpd", "version"}``
    of the latest refresh (``version``: the leading fit's); None without hypothesis fits."""
    refresh = latest_refresh(fits)
    if not refresh:
        return None
    names = [str(f.hyperparameters["role"])[len(ROLE_PREFIX) :] for f in refresh]
    probs = [_number(f.hyperparameters.get("prob")) for f in refresh]
    lead = max(range(len(refresh)), key=lambda k: (probs[k], -k))  # the first on ties
    return {
        "leading": names[lead],
        "probability": probs[lead],
        "n_observations": refresh[lead].n_train,
        "probabilities": dict(zip(names, probs, strict=True)),
        "elpd": {
            n: _number(f.hyperparameters.get("elpd")) for n, f in zip(names, refresh, strict=True)
        },
        "version": refresh[lead].version,
    }


def leading_fit(fits: Sequence[FitRecord]) -> FitRecord | None:
    """The leading hypothesis' fit of the latest refresh (None without hypothesis fits)."""
    verdict = verdict_of(fits)
    if verdict is None:
        return None
    return next(f for f in fits if f.version == verdict["version"])


def verdict_line(verdict: dict[str, Any]) -> str:
    """``domain_wall leads with p=0.93 after 12 measurements (gaussian_peak 0.05, ...)``."""
    others = ", ".join(
        f"{n} {p:.2f}" for n, p in verdict["probabilities"].items() if n != verdict["leading"]
    )
    return (
        f"{verdict['leading']} leads with p={verdict['probability']:.2f} after "
        f"{verdict['n_observations']} measurements" + (f" ({others})" if others else "")
    )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0
