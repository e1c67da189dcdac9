"""The "map" objective (uncertainty reduction) and the "balance" policy of the DKL agent.

A campaign wants two things at once: *find* where the behaviour of interest lives (EI,
UCB: the registered acquisition policies) and *map* the structure–property relation
everywhere. The two objectives here are for the latter, on the DKL agent's latent GP
(:class:`~coscope.models.latent_gp.LatentGP`, exact posterior):

* ``"map"``: integrated variance reduction. Measuring candidate ``x`` would lower the
  posterior variance at every reference point ``r`` by ``cov(x, r)^2 / (var(x) + noise)``;
  the score is the mean of that over ``R`` — up to ``REFERENCE`` candidates, every
  ``ceil(m / REFERENCE)``-th (deterministic) — in standardised units. Cost
  ``O(m * (n + |R|) * n)`` for ``m`` candidates, in batches.
* ``"balance"``: one knob, ``map_share`` in ``[0, 1]`` (default 0.5): the share of the
  policy's picks that go to the map objective, the others to the find objective (UCB with
  ``beta``, default 4.0, i.e. mean + 2 sd). Pick ``k`` (``k`` = points observed or in flight
  when it is chosen) maps iff ``floor((k + 1) * share) > floor(k * share)``: evenly spread,
  deterministic in the data, so a resumed or replayed agent picks the same. ``map_share = 0``
  is UCB, ``1`` is ``"map"``.

Both are validated in plain Python (:func:`check_dkl_policy`, also used by the campaign
spec) and take the DKL's model only (``model: dkl``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from coscope.agents.dkl_policy_spec import DKL_POLICIES, check_dkl_policy
from coscope.models.latent_gp import LatentGP

__all__ = [
    "DKL_POLICIES",
    "REFERENCE",
    "check_dkl_policy",
    "map_or_find",
    "map_scores",
    "reference_points",
]

REFERENCE = 512
"""Largest number of reference points the variance reduction integrates over."""


def map_or_find(policy: str, params: Mapping[str, Any], k: int) -> str:
    """``"map"`` or ``"find"``: which objective pick ``k`` of ``policy`` serves."""
    if policy == "map":
        return "map"
    share = float(params.get("map_share", 0.5))
    return "map" if math.floor((k + 1) * share) > math.floor(k * share) else "find"


def reference_points(Z: np.ndarray) -> np.ndarray:
    """Up to ``REFERENCE`` of the candidates' latent points, every ``ceil(m / REFERENCE)``-th."""
    return np.asarray(Z)[:: max(1, math.ceil(len(Z) / REFERENCE))]


def map_scores(
    model: LatentGP,
    Z: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """Integrated variance reduction of every candidate, ``(m,)`` (higher is better).

    Args:
        model: The latent GP (possibly conditioned on believed points).
        Z: Candidate latent points, ``m x d``.
        reference: Points the variance is integrated over, ``r x d`` (default
            :func:`reference_points` of ``Z``).
        batch_size: Candidates per batch (memory ``O(batch_size * (n + r))``).
    """
    Z = torch.as_tensor(np.asarray(Z, dtype=np.float64))
    m = Z.shape[0]
    R = torch.as_tensor(reference_points(Z.numpy()) if reference is None else reference)
    VR = model._kernel(R, model.Z) @ model.L_inv_T  # |R| x n: whitened cross-covariance
    out = []
    with torch.no_grad():
        for start in range(0, m, batch_size):
            X = Z[start : start + batch_size]
            VX = model._kernel(X, model.Z) @ model.L_inv_T  # b x n
            cov = model._kernel(X, R) - VX @ VR.T  # b x |R|, standardised units
            var = (model.outputscale - VX.square().sum(-1)).clamp_min(0.0)
            out.append((cov.square().mean(-1) / (var + model.noise)).numpy())
    return np.concatenate(out) if out else np.empty(0)
