"""Steering: validators (one sentence, nothing changed), the pure fold, and voting targets."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.campaign.steering import (
    REJECTED,
    CampaignFacts,
    InterventionError,
    Settings,
    apply,
    effective_spec,
    fold,
    validate,
)
from coscope.campaign.voting import ScriptedVoter, normalise, similarity_reward, vote_target
from coscope.config import parse_spec
from coscope.types import Intervention

SPEC = parse_spec(
    {
        "name": "s",
        "instruments": [{"name": "afm", "cost": 1.0}, {"name": "raman", "cost": 3.0}],
        "seed_points": [[1, 1]],
    }
)
FACTS = CampaignFacts((10, 12), {"beps_loop": ("afm", "raman")}, {0: "beps_loop", 1: "beps_loop"})


def _do(settings: Settings, kind: str, payload: dict) -> Settings:
    return apply(settings, Intervention(kind, validate(kind, payload, settings, FACTS)))


def test_each_kind_changes_what_it_names() -> None:
    s0 = Settings.from_spec(SPEC)
    assert s0.must_measure == ((1, 1),) and s0.costs == {"afm": 1.0, "raman": 3.0}
    s = _do(s0, "policy", {"name": "ucb", "params": {"beta": 4.0}})
    assert s.policy["name"] == "ucb" and s.policy["params"] == {"beta": 4.0}
    assert s.policy["n_initial"] == s0.policy["n_initial"]  # merged onto the current policy
    s = _do(s, "policy", {"name": "ei"})
    assert s.policy["params"] == {}  # a new name without params resets them
    s = _do(s, "scalarizer", {"name": "coercive_field"})
    assert s.scalarizer == {"name": "coercive_field", "modality": "beps_loop", "params": {}}
    s = _do(s, "costs", {"raman": 5})
    assert s.costs == {"afm": 1.0, "raman": 5.0}
    s = _do(s, "seed_points", {"points": [[2, 3], [1, 1], [4, 4]]})
    assert s.must_measure == ((1, 1), (2, 3), (4, 4))
    s = _do(s, "exclude", {"rect": [0, 0, 1, 2], "pixels": [[9, 11]]})
    assert s.excluded == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (9, 11)}
    s = _do(s, "include", {"pixels": [[0, 0], [9, 11]]})
    assert (0, 0) not in s.excluded and len(s.excluded) == 5
    s = _do(s, "pause", {})
    assert s.paused
    s = _do(s, "resume", {})
    assert not s.paused
    s = _do(s, "vote", {"step": 1, "label": "good"})
    assert s.votes == ((1, 1.0),) and s.reward == "votes"
    s = _do(s, "vote", {"step": 1, "score": -0.5})  # a new vote on a step replaces the old
    assert s.votes == ((1, -0.5),)
    assert _do(s, "scalarizer", {"name": "loop_area"}).reward == "scalarizer"
    spec = effective_spec(SPEC, s)
    assert spec.policy.name == "ei" and spec.scalarizer.name == "coercive_field"
    assert [i.cost for i in spec.instruments] == [1.0, 5.0]
    assert spec.seed_points == [(1, 1), (2, 3), (4, 4)]


@pytest.mark.parametrize(
    ("kind", "payload", "words"),
    [
        ("polcy", {}, "unknown intervention kind 'polcy'"),
        ("policy", {"name": "nope"}, "policy"),
        ("policy", {"params": {"beta": 2}}, "beta"),  # ei takes no beta
        ("scalarizer", {"name": "loop_areaa"}, "scalarizer"),
        ("scalarizer", {"name": "window_integral", "params": {"lo": 1}}, "hi"),
        ("costs", {"xrd": 1.0}, "'xrd' is not in this campaign"),
        ("policy", {"name": "gain_per_cost", "model": "multitask"}, "different kinds"),
        ("costs", {"afm": -1}, "positive"),
        ("seed_points", {"points": [[10, 0]]}, "off the 10 x 12 sample"),
        ("exclude", {"rect": [3, 3, 1, 1]}, "empty"),
        ("exclude", {}, "rect"),
        ("resume", {}, "not paused"),
        ("vote", {"step": 7, "label": "good"}, "step 7 has no measured"),
        ("vote", {"step": 0, "score": 3}, "[-1, 1]"),
        ("vote", {"step": 0, "label": "meh"}, "good or bad"),
    ],
)
def test_invalid_requests_are_one_sentence(kind: str, payload: dict, words: str) -> None:
    with pytest.raises(InterventionError) as info:
        validate(kind, payload, Settings.from_spec(SPEC), FACTS)
    message = str(info.value)
    assert words in message and message.endswith(".") and "\n" not in message


def test_fold_respects_steps_and_skips_rejected() -> None:
    s0 = Settings.from_spec(SPEC)
    items = [
        Intervention("policy", validate("policy", {"name": "ucb"}, s0, FACTS), step=3),
        Intervention("pause", {REJECTED: "whatever"}, step=4),
        Intervention("costs", {"afm": 2.0}, step=6),
        Intervention("spec", {"budget": {"max_measurements": 9}}, step=6),
    ]
    assert fold(s0, items, before=2) == s0
    at5 = fold(s0, items, before=5)
    assert at5.policy["name"] == "ucb" and not at5.paused and at5.costs["afm"] == 1.0
    assert fold(s0, items).costs["afm"] == 2.0


def test_vote_target_and_reward() -> None:
    axis = np.linspace(-1, 1, 50)
    good, bad = np.sin(3 * axis), np.cos(3 * axis)
    target = vote_target([(0, 1.0), (1, -1.0)], {0: good, 1: bad})
    assert np.linalg.norm(target) == pytest.approx(1.0)
    reward = similarity_reward(target)
    assert reward(2 * good + 5) > 0.6 > -0.6 > reward(bad)  # scale and offset do not matter
    assert vote_target([(0, 1.0), (1, -1.0)], {0: good, 1: good}) is None  # votes cancel
    assert similarity_reward(None)(good) == 0.0
    assert np.allclose(normalise(np.ones(5)), 0.0)
    voter = ScriptedVoter(prop="max", threshold=0.5, every=2)
    assert voter.vote(1, good, axis) is None
    assert voter.vote(2, good, axis)["label"] == "good"
    assert voter.vote(4, 0.1 * good, axis)["label"] == "bad"


def test_per_modality_costs_are_changed_whole_and_checked() -> None:
    spec = parse_spec(
        {
            "name": "lib",
            "instruments": [
                {
                    "name": "scope",
                    "modalities": ["beps_loop", "raman"],
                    "cost": {"beps_loop": 1.0, "raman": 10.0},
                },
            ],
        }
    )
    facts = CampaignFacts((10, 10), {"beps_loop": ("scope",), "raman": ("scope",)}, {})
    s0 = Settings.from_spec(spec)
    assert s0.costs == {"scope": {"beps_loop": 1.0, "raman": 10.0}}
    payload = validate("costs", {"scope": {"beps_loop": 2, "raman": 20}}, s0, facts)
    s = apply(s0, Intervention("costs", payload))
    assert s.costs == {"scope": {"beps_loop": 2.0, "raman": 20.0}}
    assert effective_spec(spec, s).instruments[0].cost == {"beps_loop": 2.0, "raman": 20.0}
    with pytest.raises(InterventionError, match=r"missing \['beps_loop'\]"):
        validate("costs", {"scope": {"raman": 20}}, s0, facts)
    with pytest.raises(InterventionError, match="one per modality of"):
        validate("costs", {"scope": "cheap"}, s0, facts)
