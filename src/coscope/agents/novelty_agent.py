"""Novelty search in the target space (policy ``novelty``), after BEACON.

BEACON (Tang et al., "BEACON: a Bayesian optimization strategy for novelty search in
expensive black-box systems", 2024) looks for *different* outcomes rather than the best one:
the campaign's ``objectives`` (two or more scalarizers of one modality; their goals are not
used) span the target space, one exact GP per target models it over the sample, and the next
location is the one whose outcome, in one Thompson draw of those GPs, lies farthest from the
outcomes already seen.

Per decision:

1. one joint posterior draw ``f_j`` of every target's GP over the eligible candidates (at most
   :data:`~coscope.agents.thompson.MAX_JOINT` of them, a seeded random subset above that) and
   the pending ones;
2. targets standardised by the observed mean and spread of each (so scalarizers in different
   units weigh alike);
3. the reference set: the observed outcomes plus the drawn outcomes of pending locations (so a
   batch, or the instruments of a queue, do not all go to one novel region);
4. novelty of a candidate: the mean Euclidean distance of its drawn outcome to its ``k``
   nearest reference outcomes; the candidate with the largest is chosen.

The draw's normal deviates and subset come from ``(seed, data size, pending count)``: the
same trace gives the same decisions. Fits, maps and the recorded front are those of
:class:`~coscope.agents.hypervolume_agent.HypervolumeAgent`, whose fitting it shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coscope.agents.hypervolume_agent import HypervolumeAgent
from coscope.agents.thompson import MAX_JOINT, joint_draw
from coscope.errors import ConfigError

DEFAULT_K = 3
"""Nearest reference outcomes a candidate's novelty is averaged over."""


def novelty(drawn: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Mean distance of each drawn outcome to its ``k`` nearest reference outcomes.

    Args:
        drawn: ``c x m`` outcomes of the candidates (standardised target units).
        reference: ``r x m`` outcomes already seen (same units), ``r >= 1``.
        k: Neighbours averaged; ``min(k, r)`` are used.

    Returns:
        ``(c,)`` novelty, in standardised target units (0: an outcome already seen).
    """
    distances = np.linalg.norm(drawn[:, None, :] - reference[None, :, :], axis=-1)
    k = min(int(k), reference.shape[0])
    nearest = np.partition(distances, k - 1, axis=1)[:, :k]
    return nearest.mean(axis=1)


def coverage(outcomes: np.ndarray, low: np.ndarray, high: np.ndarray, n_bins: int = 8) -> int:
    """How much of a target space a set of outcomes reaches (BEACON's measure of success).

    Args:
        outcomes: ``n x m`` outcomes (target units).
        low, high: ``(m,)`` range of the space, e.g. the whole sample's noiseless outcomes.
        n_bins: Cells per target; the space is cut into ``n_bins ** m`` equal cells.

    Returns:
        The number of distinct cells the outcomes fall in (outcomes outside the range count
        in the nearest edge cell).
    """
    span = np.where(high > low, high - low, 1.0)
    cells = np.clip(((outcomes - low) / span * n_bins).astype(int), 0, n_bins - 1)
    return len({tuple(c) for c in cells.tolist()})


class NoveltyAgent(HypervolumeAgent):
    """BEACON-style novelty search over the candidates of a space (policy ``novelty``).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        objectives: The targets spanning the outcome space (two or more scalarizers of one
            modality; goals and reference points are not used by the choice).
        policy_params: ``{"k": 3}`` (nearest outcomes a novelty is averaged over).
        **kwargs: See :class:`~coscope.agents.base.GridAgent`.
    """

    policy_name = "novelty"
    param_names = ("k",)

    @property
    def k(self) -> int:
        """Nearest reference outcomes a novelty is averaged over."""
        return int(self.policy_params.get("k", DEFAULT_K))

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Novelty of every candidate, ``(H*W,)``; ``-inf`` where measured, pending,
        blocked or not in this decision's draw."""
        if not self._models:
            raise ConfigError("No model is loaded; call fit() first.")
        Y = self.objective_values()
        scores = np.full(self.candidates.shape[0], -np.inf)
        excluded = self._excluded(())
        pending = np.array(sorted(set(int(i) for i in believed)), dtype=np.int64)
        excluded[pending] = True
        eligible = np.flatnonzero(~excluded)
        if eligible.size == 0 or Y.shape[0] == 0:
            return scores
        rng = np.random.default_rng([self.seed, 104729, Y.shape[0], pending.size])
        room = max(MAX_JOINT - pending.size, 1)
        if eligible.size > room:
            eligible = np.sort(rng.choice(eligible, size=room, replace=False))
        drawn_at = np.concatenate([eligible, pending])
        X = self.candidates[drawn_at]
        drawn = np.stack([joint_draw(model, X, rng) for model in self._models], axis=1)
        centre, spread = Y.mean(axis=0), Y.std(axis=0)
        spread[spread <= 0] = 1.0
        drawn = (drawn - centre) / spread
        reference = np.concatenate([(Y - centre) / spread, drawn[eligible.size :]])
        scores[eligible] = novelty(drawn[: eligible.size], reference, self.k)
        return scores
