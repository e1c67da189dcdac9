"""Fitting the surrogate as a Prefect task on a Dask worker: data in, plain state out."""

from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from coscope.models import GPState, fit_gp


def fit_surrogate(X: np.ndarray, y: np.ndarray, seed: int, iterations: int) -> GPState:
    """Fit the exact GP on ``X`` (n x d, in [0, 1]) and ``y`` (n,); returns plain data.

    Thread count is the process's own: Dask workers get theirs when the campaign warms them
    (``infra.runner``), so a fit gives the same bits in a worker and in the flow process.
    """
    return fit_gp(X, y, seed=seed, iterations=iterations)


fit_task = task(fit_surrogate, name="fit", cache_policy=NO_CACHE, persist_result=False)
