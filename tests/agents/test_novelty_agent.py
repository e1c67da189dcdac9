"""Novelty search (policy ``novelty``): the novelty score, and a campaign through the loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.campaign.test_loop import _run, _spec

from coscope.agents.novelty_agent import coverage, novelty
from coscope.campaign.front import objectives_of
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import agent_from_spec, sample_from_spec
from coscope.types import Location

OBJECTIVES = [
    {"name": "loop_area", "modality": "beps_loop"},
    {"name": "coercive_field", "modality": "beps_loop"},
]


def test_novelty_is_the_mean_distance_to_the_nearest_seen_outcomes() -> None:
    reference = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    drawn = np.array([[0.0, 0.0], [0.5, 0.0], [10.0, 10.0]])
    out = novelty(drawn, reference, k=1)
    np.testing.assert_allclose(out, [0.0, 0.5, np.hypot(5, 5)])
    two = novelty(drawn, reference, k=2)
    np.testing.assert_allclose(two[:2], [0.5, 0.5])
    assert novelty(drawn, reference[:1], k=5).shape == (3,)  # k larger than the set


def test_coverage_counts_distinct_cells_of_the_range() -> None:
    low, high = np.zeros(2), np.ones(2)
    outcomes = np.array([[0.05, 0.05], [0.06, 0.07], [0.95, 0.95], [2.0, -1.0]])
    assert coverage(outcomes, low, high, n_bins=4) == 3  # (0,0) twice, (3,3), edge (3,0)
    assert coverage(outcomes[:1], low, low, n_bins=4) == 1  # a degenerate range


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory):
    out = {}
    for policy in ("novelty", "random"):
        spec = _spec(
            tmp_path_factory.mktemp(policy),
            objectives=OBJECTIVES,
            seed=0,
            sample={"kind": "synthetic_film", "params": {"size": 20}},
            policy={"name": policy, "n_initial": 5, "fit_iterations": 40},
            budget={"max_measurements": 30},
        )
        out[policy] = _run(spec)
    return out


def test_novelty_campaign_finishes_without_repeats_and_scores_each_choice(campaigns) -> None:
    outcome, ctx = campaigns["novelty"]
    assert outcome.status == "finished"
    decisions = ctx.store.decisions()
    assert len({(d.location.row, d.location.col) for d in decisions}) == len(decisions) == 30
    assert all(
        d.policy == "novelty" and np.isfinite(d.score) and d.score >= 0 for d in decisions[5:]
    )


def reached(ctx, n_bins: int = 8) -> int:
    """Cells of the whole sample's target space (its noiseless outcomes' range) reached."""
    objectives = objectives_of(ctx.spec, lambda m: ctx.store.modalities[m].axis)
    sample = sample_from_spec(ctx.spec.sample, ctx.spec.seed)
    H, W = sample.shape
    cells = [Location(r, c) for r in range(H) for c in range(W)]
    full = np.array([objectives.of(sample.signal("beps_loop", loc)) for loc in cells])
    measured = np.array([objectives.of(m.signal) for m in ctx.store.measurements()])
    return coverage(measured, full.min(axis=0), full.max(axis=0), n_bins)


def test_novelty_covers_more_of_the_target_space_than_random(campaigns) -> None:
    """Same seed, same initial design: the outcomes novelty search measures fall in more
    cells of the sample's target space than a random scan's (10 vs 7 of 64 here; over 10
    seeds see docs/benchmarks.md, "Novelty search")."""
    assert reached(campaigns["novelty"][1]) > reached(campaigns["random"][1])


def test_novelty_refuses_other_params_and_needs_objectives(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'policy.params'|k"):
        parse_spec(
            {
                "objectives": OBJECTIVES,
                "policy": {"name": "novelty", "params": {"k": 0}},
            }
        )
    with pytest.raises(ConfigError, match="needs objectives"):
        parse_spec({"policy": {"name": "novelty"}})
    spec = _spec(tmp_path, objectives=OBJECTIVES, policy={"name": "novelty"})
    sample = sample_from_spec(spec.sample, spec.seed)
    assert type(agent_from_spec(spec, sample)).__name__ == "NoveltyAgent"
