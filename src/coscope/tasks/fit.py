"""Fitting the surrogate as a Prefect task on a Dask worker: data in, plain state out."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from coscope.models.fitting import fit_model


def fit_surrogate(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    iterations: int,
    options: dict[str, Any] | None = None,
) -> Any:
    """Fit the surrogate ``kind`` (``"gp"``, ``"dkl"``) on ``X`` (n x d) and ``y`` (n,).

    Returns the model's plain-data state (``GPState``, ``DKLState``) — nothing live crosses
    back from a Dask worker.

    Thread count is the process's own: Dask workers get theirs when the campaign warms them
    (``infra.runner``), so a fit gives the same bits in a worker and in the flow process.
    """
    return fit_model(kind, X, y, seed, iterations, **(options or {}))


fit_task = task(fit_surrogate, name="fit", cache_policy=NO_CACHE, persist_result=False)
