"""The discriminating acquisition of hypothesis learning (fixed moments, no fitting)."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.agents.discrimination import discrimination_scores, mixture_moments


def test_it_picks_where_the_hypotheses_disagree_most_relative_to_their_uncertainty() -> None:
    # 5 candidates: agreement, a small gap, a large gap, a large gap drowned in uncertainty,
    # and agreement where both are uncertain
    means = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 2.0, 2.0, 0.0]])
    variances = np.array([[0.01, 0.01, 0.01, 25.0, 4.0], [0.01, 0.01, 0.01, 25.0, 4.0]])
    noise = np.array([0.01, 0.01])
    score, mi = discrimination_scores(means, variances, noise, np.array([0.5, 0.5]), explore=0)
    assert int(np.argmax(score)) == 2
    assert mi[0] == pytest.approx(0.0, abs=1e-12) and mi[4] == pytest.approx(0.0, abs=1e-12)
    assert mi[2] > mi[1] > mi[3] > 0
    assert score == pytest.approx(mi)


def test_a_settled_hypothesis_leaves_only_the_map_to_learn() -> None:
    means = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    variances = np.array([[0.01, 0.01, 1.0], [0.01, 0.01, 1.0]])
    noise = np.array([0.01, 0.01])
    settled = np.array([1.0, 0.0])
    score, mi = discrimination_scores(means, variances, noise, settled, explore=1.0)
    assert mi == pytest.approx(0.0, abs=1e-12)  # nothing left to learn about the model index
    assert int(np.argmax(score)) == 2  # where the leading hypothesis is least sure
    undecided, _ = discrimination_scores(means, variances, noise, np.array([0.5, 0.5]), explore=0.1)
    assert int(np.argmax(undecided)) == 1


def test_the_mixture_is_the_probability_weighted_map() -> None:
    mean, std = mixture_moments(
        np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 4.0]]), np.array([0.5, 0.5])
    )
    assert mean == pytest.approx([2.0, 0.0])
    assert std == pytest.approx([np.sqrt(2.0), np.sqrt(2.5)])


def test_the_agent_refuses_one_hypothesis_and_unknown_options() -> None:
    from coscope.agents import Hypothesis, HypothesisAgent
    from coscope.errors import ConfigError

    wall, plain = Hypothesis("domain_wall", "domain_wall"), Hypothesis("plain", "none")
    with pytest.raises(ConfigError, match="at least two models"):
        HypothesisAgent((4, 4), hypotheses=[wall])
    with pytest.raises(ConfigError, match="does not take params"):
        HypothesisAgent((4, 4), hypotheses=[wall, plain], policy_params={"beta": 1.0})
    with pytest.raises(ConfigError, match="explore"):
        HypothesisAgent((4, 4), hypotheses=[wall, plain], policy_params={"explore": -1.0})
    assert plain.kind == "gp" and plain.options() == {} and wall.kind == "structured"
