"""The constrained agent: outcome constraints and feasibility learned from failures.

A synthetic 12 x 12 problem whose signal is ``[objective, constraint]``: the objective peaks
in the left half, the constraint ``c >= 0`` holds only in the right half. Plain EI spends on
the peak (left); the constrained agent learns the constraint from the same measurements and keeps to
the feasible half. With learned feasibility, a left half where every measurement fails is
avoided after a few failures. Deterministic: seeded agents, no timing.
"""

from __future__ import annotations

import numpy as np
import pytest

from coscope.agents import GPAgent
from coscope.agents.constrained_agent import ConstrainedAgent
from coscope.agents.protocols import Constrained, OutcomeConstraints, ScalarTarget, abilities_of
from coscope.errors import ModelError
from coscope.types import Location, Measurement

H = W = 12
MODALITY = "toy"


def _objective(loc: Location) -> float:
    r, c = loc.row / (H - 1), loc.col / (W - 1)
    left = np.exp(-((r - 0.5) ** 2 + (c - 0.2) ** 2) / 0.06)
    return float(left + 0.6 * np.exp(-((r - 0.4) ** 2 + (c - 0.8) ** 2) / 0.06))


def _constraint(loc: Location) -> float:
    return loc.col / (W - 1) - 0.5  # >= 0: the right half


def _signal(loc: Location) -> np.ndarray:
    return np.array([_objective(loc), _constraint(loc)])


TARGET = ScalarTarget(MODALITY, lambda s: float(s[0]))
CONSTRAINTS = OutcomeConstraints(
    modality=MODALITY,
    names=("c",),
    values=(lambda s: float(s[1]),),
    lower=(0.0,),
    upper=(None,),
)
COMMON = {
    "seed": 3,
    "n_initial": 4,
    "seed_points": [Location(3, 3), Location(8, 8)],
    "fit_iterations": 30,
    "scalar_target": TARGET,
}


def _measurement(step: int, loc: Location) -> Measurement:
    return Measurement(step, "inst", MODALITY, loc, _signal(loc))


def _campaign(agent: GPAgent, n: int, fails: bool = False) -> list[Location]:
    """``n`` decisions; with ``fails`` the left half's measurements fail (retired)."""
    chosen, retired = [], []
    for step in range(n):
        (p,) = agent.suggest(1, step=step, instrument="inst", modality=MODALITY, pending=retired)
        chosen.append(p.location)
        if fails and p.location.col < W // 2:
            retired.append(p.location)
            if isinstance(agent, Constrained):
                agent.mark_infeasible(step, p.location)
        else:
            agent.ingest_measurements([_measurement(step, p.location)])
    return chosen


def _left(locations: list[Location]) -> int:
    return sum(loc.col < W // 2 for loc in locations)


def test_constrained_agent_keeps_to_the_feasible_half() -> None:
    plain = _campaign(GPAgent((H, W), **COMMON), 20)
    constrained_agent = ConstrainedAgent((H, W), constraints=CONSTRAINTS, **COMMON)
    constrained = _campaign(constrained_agent, 20)
    # after the 4 random pixels plain EI goes for the infeasible peak; the constrained one not
    assert _left(plain[4:]) >= 6
    assert _left(constrained[4:]) == 0
    best = max(_objective(loc) for loc in constrained if _constraint(loc) >= 0)
    feasible_max = max(
        _objective(Location(r, c)) for r in range(H) for c in range(W) if c >= W // 2
    )
    assert best >= 0.95 * feasible_max


def test_min_p_feasible_ranks_unlikely_candidates_last() -> None:
    agent = ConstrainedAgent((H, W), constraints=CONSTRAINTS, min_p_feasible=0.5, **COMMON)
    _campaign(agent, 8)
    scores = agent.scores()
    p = np.exp(agent._last["log_c"] + agent._last["log_m"])
    assert (p < 0.5).any() and (p >= 0.5).any()
    assert scores[p < 0.5].max() < scores[p >= 0.5].min()


def test_p_feasible_is_remembered_for_policy_decisions() -> None:
    agent = ConstrainedAgent((H, W), constraints=CONSTRAINTS, **COMMON)
    _campaign(agent, 8)
    assert agent.decision_feasibility(0) == {}  # a random initial pick
    row = agent.decision_feasibility(7)
    assert set(row) == {"p_feasible", "p_constraints"}
    assert 0.0 <= row["p_feasible"] <= 1.0
    assert agent.decision_feasibility(7) == {}  # asked once


def test_feasibility_is_learned_from_failures() -> None:
    plain = _campaign(GPAgent((H, W), **COMMON), 24, fails=True)
    learning = ConstrainedAgent((H, W), learn_feasibility=True, **COMMON)
    learned = _campaign(learning, 24, fails=True)
    assert abilities_of(learning).constrained is learning
    assert _left(plain) >= 10  # plain EI keeps spending where measurements fail
    assert _left(learned) <= _left(plain) - 3


def test_decisions_are_deterministic() -> None:
    a = _campaign(ConstrainedAgent((H, W), constraints=CONSTRAINTS, **COMMON), 10, fails=True)
    b = _campaign(ConstrainedAgent((H, W), constraints=CONSTRAINTS, **COMMON), 10, fails=True)
    assert a == b


def test_non_finite_constraint_value_is_refused() -> None:
    agent = ConstrainedAgent((H, W), constraints=CONSTRAINTS, **COMMON)
    bad = Measurement(0, "inst", MODALITY, Location(0, 0), np.array([1.0, np.nan]))
    with pytest.raises(ModelError, match="not all finite"):
        agent.ingest_measurements([bad])
