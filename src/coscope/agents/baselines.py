"""Baselines with the agent interface: a raster scan and a seeded random order.

They choose without a model. Their :meth:`report` still fits the same GP as
:class:`~coscope.agents.agent.GPAgent`, so learning curves compare the policy, not the model.
Both propose the seed points first; ``n_initial`` is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coscope.agents.base import GridAgent
from coscope.types import Location, Proposal


class _OrderAgent(GridAgent):
    """Proposes the first eligible pixels of a fixed order (flat indices)."""

    def _order(self) -> np.ndarray:
        raise NotImplementedError

    def suggest(
        self,
        n: int,
        *,
        step: int,
        instrument: str,
        modality: str,
        pending: Sequence[Location] = (),
        expected_cost: float = 0.0,
    ) -> list[Proposal]:
        """The next ``n`` unmeasured, non-pending pixels: seed points, then the fixed order."""
        excluded = self._excluded(pending)
        chosen = [(i, "seed") for i in self._seed_choices(n, excluded)]
        if len(chosen) < n:
            order = self._order()
            free = order[~excluded[order]]
            chosen += [(int(i), self.policy_name) for i in free[: n - len(chosen)]]
        return [
            self._proposal(
                idx,
                step=step + k,
                instrument=instrument,
                modality=modality,
                policy=policy,
                expected_cost=expected_cost,
            )
            for k, (idx, policy) in enumerate(chosen)
        ]


class RasterAgent(_OrderAgent):
    """Row-major serpentine scan: row 0 left to right, row 1 right to left, …"""

    policy_name = "raster"

    def _order(self) -> np.ndarray:
        H, W = self.grid_shape
        idx = np.arange(H * W).reshape(H, W)
        idx[1::2] = idx[1::2, ::-1]
        return idx.reshape(-1)


class RandomAgent(_OrderAgent):
    """Pixels in the order of one permutation drawn from the seed (no repeats)."""

    policy_name = "random"

    def _order(self) -> np.ndarray:
        H, W = self.grid_shape
        return np.random.default_rng([self.seed, 15485863]).permutation(H * W)
