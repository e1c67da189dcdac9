from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coscope.agents import AgentReport, DKLAgent, GridAgent, thompson_indices
from coscope.errors import ConfigError, ModelError
from coscope.models import DKLState, fit_gp, fit_model, load_latent_model, patch_features
from coscope.models.dkl_config import DKLConfig
from coscope.types import Location, Observation, Proposal

H = W = 20
_rng = np.random.default_rng(0)
STRUCTURE = _rng.normal(size=(H, W))
FEATURES = patch_features(STRUCTURE, 5)
# property: a nonlinear function of the local patch (centre and right neighbour)
TRUTH = np.tanh(FEATURES[:, 12] + 0.5 * FEATURES[:, 13]).reshape(H, W)
ITER = 30  # Adam steps: enough for the contracts, keeps the suite fast


def _observe(p: Proposal) -> Observation:
    return Observation(p.step, p.modality, p.location, float(TRUTH[p.location.row, p.location.col]))


def _agent(**kw) -> DKLAgent:
    kw.setdefault("policy", "ei")
    kw.setdefault("fit_iterations", ITER)
    return DKLAgent((H, W), features=FEATURES, **kw)


def _suggest(agent, n=1, step=0, pending=()):
    return agent.suggest(n, step=step, instrument="afm", modality="m", pending=pending)


def _strip(p: Proposal) -> Proposal:
    """Without the decision time and the model version (a counter local to each agent)."""
    return dataclasses.replace(p, t_decided=0.0, model_version=0)


def _run(agent, steps, start=0):
    out = []
    for k in range(start, start + steps):
        (p,) = _suggest(agent, step=k)
        agent.ingest([_observe(p)])
        out.append(p)
    return out


def test_is_a_grid_agent_with_dkl_kind():
    agent = _agent()
    assert isinstance(agent, GridAgent) and agent.model_kind == "dkl"
    assert agent.fit_options() == {"config": DKLConfig()}
    assert agent.candidates.shape == (H * W, 2)  # coordinates until the first fit


def test_seeds_first_then_random_then_policy():
    seeds = [Location(0, 0), Location(19, 19)]
    agent = _agent(seed=1, n_initial=4, seed_points=seeds)
    props = _run(agent, 7)
    assert [p.location for p in props[:2]] == seeds
    assert [p.policy for p in props] == ["seed", "seed", "random", "random", "ei", "ei", "ei"]
    assert all(p.model_version == -1 for p in props[:4])
    assert all(p.model_version >= 0 and np.isfinite(p.score) for p in props[4:])
    assert len({p.location for p in props}) == 7


@pytest.mark.parametrize("policy", ["ei", "ucb", "maxvar", "thompson"])
def test_never_proposes_measured_or_pending(policy):
    agent = _agent(policy=policy, seed=2, n_initial=3)
    props = _run(agent, 6)
    measured = {p.location for p in props}
    pending = [Location(5, 5), Location(6, 6)]
    batch = _suggest(agent, n=4, step=6, pending=pending)
    locs = [p.location for p in batch]
    assert len(batch) == 4 and len(set(locs)) == 4
    assert not (set(locs) & (measured | set(pending)))
    assert all(p.policy == policy for p in batch)


def test_rebuilt_from_same_observations_proposes_the_same():
    agent = _agent(seed=3, n_initial=4)
    props = _run(agent, 8)
    obs = list(agent.observations)
    nxt = [_strip(p) for p in _suggest(agent, n=2, step=8)]
    rebuilt = _agent(seed=3, n_initial=4)
    rebuilt.ingest(obs[::-1])  # order of arrival does not matter
    assert [_strip(p) for p in _suggest(rebuilt, n=2, step=8)] == nxt
    assert props  # the run itself happened


def test_thompson_agent_is_reproducible_and_seed_dependent():
    def first_policy_pick(seed):
        agent = _agent(policy="thompson", seed=seed, n_initial=5)
        _run(agent, 5)
        return _strip(_suggest(agent, step=5)[0])

    assert first_policy_pick(4) == first_policy_pick(4)


def test_training_data_is_features_and_load_fit_uses_dkl_state():
    agent = _agent(seed=5, n_initial=4)
    props = _run(agent, 4)
    F, y = agent.training_data()
    assert F.shape == (4, FEATURES.shape[1])
    np.testing.assert_array_equal(F[0], FEATURES[props[0].location.flat(W)])
    assert agent.needs_fit(4)
    state = fit_model(agent.model_kind, F, y, agent.fit_seed(), ITER, **agent.fit_options())
    record = agent.load_fit(state, 7, 4)
    assert record.version == 7 and not agent.needs_fit(4)
    assert agent.embedding().shape == (H * W, 2)
    with pytest.raises(ModelError):
        agent.load_fit(fit_gp(np.zeros((1, 2)) + 0.5, np.ones(1), seed=0), 8)


def test_report_maps_and_embedding():
    agent = _agent(seed=6, n_initial=5)
    assert agent.embedding() is None  # no DKL loaded yet
    empty = agent.report()
    assert np.isnan(empty.mean).all() and empty.model_version == -1
    _run(agent, 12)
    rep = agent.report()
    assert isinstance(rep, AgentReport)
    assert rep.mean.shape == (H, W) and rep.std.shape == (H, W)
    assert np.isfinite(rep.mean).all() and (rep.std >= 0).all()
    assert rep.n_observations == 12 and rep.last_fit is not None
    assert isinstance(agent._state, DKLState)
    assert agent.embedding().shape == (H * W, 2)


def test_bad_configuration():
    with pytest.raises(ConfigError):
        DKLAgent((H, W), features=FEATURES[:-1])
    with pytest.raises(ConfigError):
        DKLAgent((H, W), features=np.full_like(FEATURES, np.nan))
    with pytest.raises(ConfigError):
        DKLAgent((H, W), features=FEATURES, policy="nope")
    with pytest.raises(ConfigError):
        DKLAgent((H, W), features=FEATURES, policy="thompson", policy_params={"beta": 1})
    with pytest.raises(ConfigError):
        DKLAgent((H, W), features=FEATURES, latent_dim=0)


# ------------------------------------------------------------------ thompson
@pytest.fixture(scope="module")
def latent_case():
    idx = np.random.default_rng(9).choice(H * W, size=15, replace=False)
    state = fit_model("dkl", FEATURES[idx], TRUTH.ravel()[idx], 1, ITER)
    agent = _agent()
    agent.load_fit(state, 0)
    excluded = np.zeros(H * W, dtype=bool)
    excluded[idx] = True
    return load_latent_model(state), agent.embedding(), excluded


def test_thompson_indices_are_valid_and_vary_with_rng(latent_case):
    model, Z, excluded = latent_case
    picks = {
        tuple(thompson_indices(model, Z, excluded, np.random.default_rng(s), n=3)) for s in range(6)
    }
    for p in picks:
        assert len(p) == 3 and len(set(p)) == 3
        assert not excluded[list(p)].any()
    assert len(picks) > 1
    same = thompson_indices(model, Z, excluded, np.random.default_rng(0), n=3)
    again = thompson_indices(model, Z, excluded, np.random.default_rng(0), n=3)
    assert np.array_equal(same, again)


def test_thompson_subset_above_max_joint(latent_case):
    model, Z, excluded = latent_case
    picks = thompson_indices(model, Z, excluded, np.random.default_rng(1), n=2, max_joint=50)
    assert picks.size == 2 and not excluded[picks].any()
    everything = np.ones(H * W, dtype=bool)
    assert thompson_indices(model, Z, everything, np.random.default_rng(1)).size == 0


# ------------------------------------------------------------ warm starts
def _warm_agent(**kw) -> DKLAgent:
    return _agent(warm_start=True, cold_every=4, warm_iterations=5, **kw)


def test_warm_start_fits_from_the_cold_anchor_only():
    agent = _warm_agent(seed=8, n_initial=4)
    _run(agent, 4)
    assert "init" not in agent.fit_options()  # n = 4: the anchor itself is a cold fit
    _run(agent, 1, start=4)  # fits the anchor (cold) at n = 4
    assert not agent._state.warm and agent._state.n_train == 4
    anchor = agent._state
    _run(agent, 2, start=5)  # warm fits at n = 5 and 6, both from that anchor
    options = agent.fit_options()
    assert options["init"] is anchor and options["warm_iterations"] == 5
    assert agent._state.warm and agent._state.iterations == 5
    _run(agent, 2, start=7)  # n = 8: the next anchor, cold again
    assert not agent._state.warm and agent._state.n_train == 8
    assert agent.fit_options()["init"] is agent._state


def test_warm_started_agent_rebuilt_from_its_observations_decides_the_same():
    agent = _warm_agent(seed=9, n_initial=4)
    _run(agent, 10)
    obs = list(agent.observations)
    nxt = [_strip(p) for p in _suggest(agent, n=2, step=10)]
    assert agent._state.warm  # n = 10 sits between the anchors 8 and 12
    rebuilt = _warm_agent(seed=9, n_initial=4)
    rebuilt.ingest(obs[::-1])
    # the rebuilt agent has no anchor yet: it refits it (cold, n = 8) and warm-starts from it
    assert [_strip(p) for p in _suggest(rebuilt, n=2, step=10)] == nxt
    assert rebuilt._state.loss == agent._state.loss


def test_warm_start_options_are_checked():
    with pytest.raises(ConfigError, match="cold_every"):
        _agent(warm_start=True, cold_every=0)
    with pytest.raises(ConfigError, match="warm_iterations"):
        _agent(warm_start=True, warm_iterations=0)


# ------------------------------------------------------------ large grids
def test_patch_grid_agent_decides_like_the_feature_matrix_agent():
    from coscope.models.patches import PatchGrid

    a = _agent(seed=10, n_initial=4)
    b = DKLAgent((H, W), features=PatchGrid(STRUCTURE, 5), policy="ei", seed=10, n_initial=4)
    b.fit_iterations = ITER
    pa, pb = _run(a, 7), _run(b, 7)
    assert [p.location for p in pa] == [p.location for p in pb]
    np.testing.assert_array_equal([p.score for p in pa], [p.score for p in pb])
    with pytest.raises(ConfigError, match="patch grid"):
        DKLAgent((H, W + 1), features=PatchGrid(STRUCTURE, 5))


def test_lattice_scores_interpolate_and_are_exact_at_the_top():
    from coscope.agents.dkl_scoring import lattice_scores

    Z = np.random.default_rng(0).uniform(-2, 3, size=(5000, 2))

    def score(P):
        return -np.sum((P - 0.7) ** 2, axis=1)

    approx = lattice_scores(score, Z, resolution=64, refine=50)
    exact = score(Z)
    top = np.argsort(-approx)[:50]
    np.testing.assert_array_equal(approx[top], exact[top])
    assert np.abs(approx - exact).max() < 0.01  # bilinear error of a quadratic, spacing ~0.08
    assert int(np.argmax(approx)) == int(np.argmax(exact))


@pytest.mark.parametrize("policy", ["ei", "ucb", "map"])
def test_lattice_path_picks_what_exact_scoring_picks(policy):
    exact = _agent(policy=policy, seed=11, n_initial=6)
    lattice = _agent(policy=policy, seed=11, n_initial=6)
    lattice.exact_max = 100  # 400 candidates: above it, so scored on the latent lattice
    got = [_strip(p) for p in _run(lattice, 12)]
    want = [_strip(p) for p in _run(exact, 12)]
    assert [p.location for p in got] == [p.location for p in want]
    np.testing.assert_allclose([p.score for p in got[6:]], [p.score for p in want[6:]], rtol=1e-3)
