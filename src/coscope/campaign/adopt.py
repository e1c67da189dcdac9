"""Turn effective :class:`~coscope.campaign.steering.Settings` into a wired agent and reward.

Shared by the loop (live), replay and retrace (read-only), so that the same settings give the
same agent: the spec with the settings' policy, scalarizer, costs and must-measure points
(:func:`~coscope.campaign.steering.effective_spec`), the agent built from it by the composition
root with its target (the scalarizer, or similarity to the vote target,
:mod:`coscope.campaign.voting`), and steering exclusions as the ``blocked`` mask of an agent that
is :class:`~coscope.agents.protocols.Steerable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from coscope.agents.protocols import Agent, AgentAbilities, Steerable, abilities_of
from coscope.campaign.steering import CampaignFacts, Settings, effective_spec
from coscope.campaign.voting import similarity_map, similarity_reward, vote_target
from coscope.config import CampaignSpec
from coscope.instruments import Sample
from coscope.spaces import mask_from_spec
from coscope.types import Location


@dataclass
class Steered:
    """What a campaign runs with under some settings.

    Attributes:
        spec: Effective spec (policy, scalarizer, costs, seed points of the settings).
        agent: A fresh agent for that spec and reward (no observations), exclusions applied.
        reward: ``signal -> float`` when the reward is vote similarity, else None (the
            spec's scalarizer applies).
        truth: Ground-truth reward map ``(H, W)`` under these settings, or None.
        abilities: The agent's abilities, resolved once.
    """

    spec: CampaignSpec
    agent: Agent
    reward: Callable[[np.ndarray], float] | None
    truth: np.ndarray | None
    abilities: AgentAbilities = field(init=False)

    def __post_init__(self) -> None:
        self.abilities = abilities_of(self.agent)


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
    steered = Steered(spec, agent_from_spec(spec, sample, reward=reward), reward, truth)
    restrict(steered.abilities.steerable, settings)
    return steered


RESTRICTING = ("exclude", "include", "seed_points")
"""Intervention kinds that need a :class:`~coscope.agents.protocols.Steerable` agent."""


def restrict(agent: Steerable | None, settings: Settings) -> None:
    """Apply the settings' exclusions and must-measure queue to a live agent.

    Agents that are not steerable (``None``, e.g. co-navigation) are left alone; the loop
    rejects the interventions that would need it (:data:`RESTRICTING`).
    """
    if agent is None:
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
    height, width = grid_shape
    shape = (int(height), int(width))
    mask = spec.sample.mask
    allowed = mask_from_spec(mask.model_dump(), shape) if mask is not None else None
    return CampaignFacts(
        shape,
        {k: tuple(v) for k, v in modalities.items()},
        dict(measured),
        dict(axes or {}),
        dict(signals or {}),
        allowed,
        box=spec.sample.box is not None,
        multi_objective=bool(spec.objectives),
    )
