"""Turn effective :class:`~coscope.campaign.steering.Settings` into a wired agent and reward.

Shared by the loop (live), replay and retrace (read-only), so that the same settings give the
same agent: the spec with the settings' policy, scalarizer, costs and must-measure points
(:func:`~coscope.campaign.steering.effective_spec`), the agent built from it by the composition
root, steering exclusions as the agent's ``blocked`` mask, and the reward (the scalarizer, or
similarity to the vote target, :mod:`coscope.campaign.voting`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from coscope.campaign.steering import CampaignFacts, Settings, effective_spec
from coscope.campaign.voting import similarity_map, similarity_reward, vote_target
from coscope.config import CampaignSpec
from coscope.instruments import Sample
from coscope.types import Location


@dataclass
class Steered:
    """What a campaign runs with under some settings.

    Attributes:
        spec: Effective spec (policy, scalarizer, costs, seed points of the settings).
        agent: A fresh agent for that spec (no observations), exclusions applied.
        reward: ``signal -> float`` when the reward is vote similarity, else None (the
            spec's scalarizer applies).
        truth: Ground-truth reward map ``(H, W)`` under these settings, or None.
    """

    spec: CampaignSpec
    agent: Any
    reward: Callable[[np.ndarray], float] | None
    truth: np.ndarray | None


def steer(
    base: CampaignSpec,
    sample: Sample,
    settings: Settings,
    signals: Mapping[int, np.ndarray],
    *,
    with_truth: bool = True,
) -> Steered:
    """Build the agent, reward and truth map of ``settings``.

    Args:
        base: The stored campaign spec.
        sample: The campaign's sample.
        settings: Effective settings.
        signals: Step -> signal ``(L,)`` of measured target-modality steps (for vote targets).
        with_truth: Compute the ground-truth map (one scalarization per pixel).
    """
    from coscope.infra.compose import agent_from_spec, truth_map

    spec = effective_spec(base, settings)
    agent = agent_from_spec(spec, sample)
    restrict(agent, settings)
    reward = truth = None
    modality = spec.scalarizer.modality
    if settings.reward == "votes":
        target = vote_target(settings.votes, signals)
        reward = similarity_reward(target)
        known = sample.truth.get(modality) if sample.truth else None
        if with_truth and known is not None:
            truth = similarity_map(np.asarray(known), target)
    elif with_truth:
        truth = truth_map(spec, sample)
    return Steered(spec, agent, reward, truth)


RESTRICTING = ("exclude", "include", "seed_points")
"""Intervention kinds that need an agent with a ``blocked`` mask and ``seed_points``."""


def restrictable(agent: Any) -> bool:
    """Whether ``agent`` honours exclusions and must-measure points (a grid agent does)."""
    return hasattr(agent, "blocked") and hasattr(agent, "grid_shape")


def restrict(agent: Any, settings: Settings) -> None:
    """Apply the settings' exclusions and must-measure queue to a live agent.

    Agents without a ``blocked`` mask (e.g. co-navigation) are left alone; the loop rejects
    the interventions that would need one (:data:`RESTRICTING`).
    """
    if not restrictable(agent):
        return
    H, W = agent.grid_shape
    blocked = np.zeros(H * W, dtype=bool)
    for r, c in settings.excluded:
        blocked[r * W + c] = True
    agent.blocked = blocked
    agent.seed_points = tuple(Location(r, c) for r, c in settings.must_measure)


def facts_of(
    spec: CampaignSpec,
    grid_shape: tuple[int, int],
    measured: dict[int, str],
    axes: Mapping[str, np.ndarray] | None = None,
    signals: Mapping[str, tuple[np.ndarray, ...]] | None = None,
) -> CampaignFacts:
    """:class:`CampaignFacts` of a campaign (validators' view); ``axes`` and ``signals``
    (modality -> axis ``(L,)``, a few stored signals ``(L,)``) let scalarizers be probed."""
    modalities: dict[str, list[str]] = {}
    for inst in spec.instruments:
        for m in inst.modalities:
            modalities.setdefault(m, []).append(inst.name)
    return CampaignFacts(
        tuple(grid_shape),
        {k: tuple(v) for k, v in modalities.items()},
        dict(measured),
        dict(axes or {}),
        dict(signals or {}),
    )
