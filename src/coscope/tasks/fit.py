"""Fitting the surrogate as a Prefect task on a Dask worker: data in, plain state out."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from coscope.models.fitting import fit_here

fit_surrogate = fit_here
"""Fit the surrogate ``kind`` on ``X`` (n x d) and ``y`` (n,); the model's plain-data state
comes back (``GPState``, ``DKLState`` …) — nothing live crosses back from a Dask worker.

Thread count is the process's own: Dask workers get theirs when the campaign warms them
(``infra.runner``), so a fit gives the same bits in a worker and in the flow process."""

fit_task = task(fit_surrogate, name="fit", cache_policy=NO_CACHE, persist_result=False)
