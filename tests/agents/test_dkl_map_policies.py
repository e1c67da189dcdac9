"""The DKL agent's "map" objective and "balance" policy (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coscope.agents import DKLAgent
from coscope.agents.map_objective import map_or_find, map_scores
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.models import patch_features
from coscope.models.latent_gp import LatentGP
from coscope.types import Location, Observation

H = W = 12
_rng = np.random.default_rng(2)
FEATURES = patch_features(_rng.normal(size=(H, W)), 3)
TRUTH = np.tanh(FEATURES[:, 4] + 0.5 * FEATURES[:, 5])


def _latent(Z, y):
    return LatentGP(
        torch.as_tensor(Z),
        torch.as_tensor(y),
        lengthscale=torch.tensor([0.3, 0.3], dtype=torch.float64),
        outputscale=1.0,
        noise=1e-3,
        constant=0.0,
        y_mean=0.0,
        y_std=1.0,
    )


def test_share_spreads_map_picks_evenly():
    picks = [map_or_find("balance", {"map_share": 0.5}, k) for k in range(6)]
    assert picks.count("map") == 3 and picks[:2] in (["map", "find"], ["find", "map"])
    assert {map_or_find("balance", {"map_share": 0.0}, k) for k in range(9)} == {"find"}
    assert {map_or_find("balance", {"map_share": 1.0}, k) for k in range(9)} == {"map"}
    assert [map_or_find("balance", {"map_share": 0.25}, k) for k in range(8)].count("map") == 2
    assert map_or_find("map", {}, 3) == "map"


def test_variance_reduction_prefers_unexplored_central_points():
    model = _latent(np.array([[0.0, 0.0]]), np.array([0.5]))
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9)), -1).reshape(-1, 2)
    s = map_scores(model, grid)
    assert s.shape == (81,) and (s >= 0).all()
    measured = int(np.argmin(np.abs(grid).sum(1)))
    assert s[measured] < 1e-2 * s.max()  # measuring the known point again teaches nothing
    corner = int(np.argmax(grid.sum(1)))
    assert s[corner] < s.max()  # a corner informs fewer points than a central unknown one


def _run(agent, n):
    out = []
    for k in range(n):
        (p,) = agent.suggest(1, step=k, instrument="a", modality="m")
        agent.ingest([Observation(k, "m", p.location, float(TRUTH[p.location.flat(W)]))])
        out.append(p)
    return out


@pytest.mark.parametrize("policy", ["map", "balance"])
def test_map_and_balance_agents_decide_reproducibly(policy):
    kw = {"features": FEATURES, "policy": policy, "n_initial": 4, "fit_iterations": 10}
    a = _run(DKLAgent((H, W), seed=1, **kw), 8)
    b = _run(DKLAgent((H, W), seed=1, **kw), 8)
    assert [p.location for p in a] == [p.location for p in b]
    assert len({p.location for p in a}) == 8
    assert all(p.policy == policy for p in a[4:])
    # pending pixels are never proposed, and a batch does not repeat itself
    agent = DKLAgent((H, W), seed=1, **kw)
    _run(agent, 5)
    pending = [Location(0, 0), Location(5, 5)]
    props = agent.suggest(3, step=5, instrument="a", modality="m", pending=pending)
    locs = [p.location for p in props]
    assert len(set(locs)) == 3 and not set(locs) & set(pending)


def test_policy_options_are_checked_in_agent_and_spec():
    with pytest.raises(ConfigError, match="map_share"):
        DKLAgent((H, W), features=FEATURES, policy="balance", policy_params={"map_share": 2})
    with pytest.raises(ConfigError, match="does not take"):
        DKLAgent((H, W), features=FEATURES, policy="map", policy_params={"beta": 1.0})
    spec = parse_spec(
        {
            "policy": {
                "name": "balance",
                "model": "dkl",
                "params": {"map_share": 0.3},
                "window": 16,
                "extractor": "cnn",
                "restarts": 2,
                "select": "loo",
            }
        }
    )
    assert spec.policy.window == 16 and spec.policy.patch_scaling == "standard"
    with pytest.raises(ConfigError, match="needs model: dkl"):
        parse_spec({"policy": {"name": "balance"}})
    with pytest.raises(ConfigError, match="extractor"):
        parse_spec({"policy": {"name": "ei", "model": "dkl", "extractor": "rnn"}})


def test_between_refits_the_model_is_conditioned_on_every_observation():
    from coscope.models import predict

    agent = DKLAgent((H, W), features=FEATURES, n_initial=4, refit_every=5, fit_iterations=10)
    props = _run(agent, 7)  # fitted on the first 5; 2 more observed since
    agent.report()
    assert agent.last_fit.n_train == 5 and agent.n_observations == 7
    Z = agent.candidates[[p.location.flat(W) for p in props[5:]]]
    _, sd_fit = predict(agent._fitted, Z)
    _, sd_now = predict(agent._model, Z)
    assert (sd_now < 0.9 * sd_fit).all()  # known now, without a refit
    rebuilt = DKLAgent((H, W), features=FEATURES, n_initial=4, refit_every=5, fit_iterations=10)
    rebuilt.ingest(agent.observations)
    a = agent.suggest(1, step=7, instrument="a", modality="m")
    b = rebuilt.suggest(1, step=7, instrument="a", modality="m")
    assert a[0].location == b[0].location
