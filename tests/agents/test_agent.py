from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coscope.agents import AgentReport, GPAgent, RandomAgent, RasterAgent, make_agent
from coscope.errors import ConfigError, ModelError
from coscope.models import fit_gp
from coscope.types import Location, Observation, Proposal

H = W = 30
_r, _c = np.mgrid[0:H, 0:W]
# A global bump at (20, 8) and a lower local one at (5, 25).
TRUTH = np.exp(-((_r - 20) ** 2 + (_c - 8) ** 2) / (2 * 4.0**2)) + 0.3 * np.exp(
    -((_r - 5) ** 2 + (_c - 25) ** 2) / (2 * 3.0**2)
)
GLOBAL_MAX = Location(*np.unravel_index(int(TRUTH.argmax()), TRUTH.shape))


def _observe(p: Proposal) -> Observation:
    return Observation(p.step, p.modality, p.location, float(TRUTH[p.location.row, p.location.col]))


def _suggest(agent, n=1, step=0, pending=()):
    return agent.suggest(n, step=step, instrument="afm", modality="m", pending=pending)


def _strip(p: Proposal) -> Proposal:
    return dataclasses.replace(p, t_decided=0.0)


def _run(agent, steps):
    """Closed loop; returns the step (1-based) at which the global max was measured."""
    for k in range(steps):
        (p,) = _suggest(agent, step=k)
        agent.ingest([_observe(p)])
        if p.location == GLOBAL_MAX:
            return k + 1
    return None


def test_candidates_are_pixel_centres():
    agent = GPAgent((3, 4), policy="ei", seed=0)
    assert agent.candidates.shape == (12, 2)
    np.testing.assert_allclose(agent.candidates[0], [0.5 / 3, 0.5 / 4])
    np.testing.assert_allclose(agent.candidates[Location(2, 1).flat(4)], [2.5 / 3, 1.5 / 4])


def test_seed_points_then_random_initial_then_policy():
    seeds = [Location(0, 0), Location(29, 29)]
    agent = GPAgent((H, W), policy="ei", seed=1, n_initial=4, seed_points=seeds)
    policies, locations = [], []
    for k in range(7):
        (p,) = _suggest(agent, step=k)
        policies.append(p.policy)
        locations.append(p.location)
        agent.ingest([_observe(p)])
    assert locations[:2] == seeds
    assert policies == ["seed", "seed", "random", "random", "ei", "ei", "ei"]
    assert len(set(locations)) == 7
    last = _suggest(agent, step=7)[0]
    assert last.model_version >= 0 and np.isfinite(last.score)
    assert np.isfinite(last.predicted_mean) and last.predicted_std >= 0


def test_batch_counts_pending_towards_initial_design():
    agent = GPAgent((H, W), policy="ucb", seed=2, n_initial=3, seed_points=[Location(1, 1)])
    props = _suggest(agent, n=5, step=0, pending=[Location(2, 2)])
    assert [p.policy for p in props] == ["seed", "random", "random", "random", "random"]
    assert [p.step for p in props] == [0, 1, 2, 3, 4]  # nothing observed: no model yet


def test_never_proposes_measured_or_pending():
    agent = GPAgent((6, 6), policy="maxvar", seed=3, n_initial=2)
    seen: set[Location] = set()
    pending = [Location(3, 3), Location(0, 5)]
    for k in range(34):
        props = _suggest(agent, step=k, pending=pending)
        assert len(props) == 1
        (p,) = props
        assert p.location not in seen and p.location not in pending
        seen.add(p.location)
        agent.ingest([_observe(p)])
    assert _suggest(agent, step=34, pending=pending) == []  # only pending left
    assert _suggest(agent, step=34) != []


def test_everything_measured_returns_empty():
    agent = GPAgent((2, 2), policy="ei", seed=0, n_initial=1)
    agent.ingest([Observation(k, "m", Location(k // 2, k % 2), float(k)) for k in range(4)])
    assert _suggest(agent, n=3, step=4) == []


def test_same_seed_same_data_same_proposals_and_resume():
    def observations(n):
        agent = GPAgent((H, W), policy="ei", seed=5, n_initial=4)
        obs = []
        for k in range(n):
            (p,) = _suggest(agent, step=k)
            o = _observe(p)
            agent.ingest([o])
            obs.append(o)
        return agent, obs

    original, obs = observations(10)
    twin, obs2 = observations(10)
    assert obs == obs2
    nxt = [_strip(p) for p in _suggest(original, n=3, step=10, pending=[obs[0].location])]
    assert nxt == [_strip(p) for p in _suggest(twin, n=3, step=10, pending=[obs[0].location])]
    # Resume: a fresh agent fed the same observations in another order proposes the same.
    resumed = GPAgent((H, W), policy="ei", seed=5, n_initial=4)
    resumed.ingest(list(reversed(obs)))
    again = [_strip(p) for p in _suggest(resumed, n=3, step=10, pending=[obs[0].location])]
    assert [dataclasses.replace(p, model_version=0) for p in again] == [
        dataclasses.replace(p, model_version=0) for p in nxt
    ]
    assert nxt[0].policy == "ei"


def test_fit_schedule_and_worker_fit_handoff():
    agent = GPAgent((H, W), policy="ei", seed=0, n_initial=2, refit_every=3)
    rng = np.random.default_rng(0)
    flat = rng.permutation(H * W)[:7]
    obs = [Observation(k, "m", Location.from_flat(i, W), float(k)) for k, i in enumerate(flat)]
    agent.ingest(obs[:2])
    assert agent.needs_fit(2)
    X, y = agent.training_data()
    assert X.shape == (2, 2) and y.tolist() == [0.0, 1.0]
    state = fit_gp(X, y, seed=agent.fit_seed(), iterations=agent.fit_iterations)  # "worker"
    rec = agent.load_fit(state, version=4)
    assert rec.version == 4 and agent.model_version == 4 and not agent.needs_fit(2)
    agent.ingest(obs[2:4])  # n = 4 -> serves the first 3
    assert agent.needs_fit(4)
    agent.fit(4)
    assert agent.model_version == 5 and agent.last_fit.n_train == 3
    agent.ingest(obs[4:5])  # n = 5 -> still the first 3
    assert not agent.needs_fit(5)
    agent.ingest(obs[5:7])  # n = 7 -> first 6
    assert agent.needs_fit(7) and agent.training_data()[0].shape == (6, 2)


def test_ingest_validates():
    agent = GPAgent((4, 4), policy="ei", seed=0)
    with pytest.raises(ModelError, match="non-finite"):
        agent.ingest([Observation(0, "m", Location(0, 0), float("nan"))])
    with pytest.raises(ModelError, match="outside"):
        agent.ingest([Observation(0, "m", Location(4, 0), 1.0)])
    agent.ingest([Observation(0, "m", Location(0, 0), 1.0)])
    agent.ingest([Observation(0, "m", Location(0, 0), 1.0)])  # idempotent
    assert agent.n_observations == 1
    with pytest.raises(ModelError, match="already ingested"):
        agent.ingest([Observation(0, "m", Location(1, 0), 1.0)])


def test_report_maps_and_best():
    agent = GPAgent((H, W), policy="ei", seed=0, n_initial=5)
    empty = agent.report()
    assert isinstance(empty, AgentReport) and empty.model_version == -1
    assert np.isnan(empty.mean).all() and empty.best_location is None
    _run(agent, 12)
    rep = agent.report()
    assert rep.mean.shape == rep.std.shape == (H, W)
    assert rep.n_observations == agent.n_observations
    assert rep.last_fit is not None and rep.last_fit.n_train == agent.n_observations
    best = max(agent.observations, key=lambda o: o.value)
    assert rep.best_value == best.value and rep.best_location == best.location
    measured = [o.location.flat(W) for o in agent.observations]
    assert rep.std.reshape(-1)[measured].max() < np.median(rep.std)


def test_ei_closed_loop_finds_global_max_and_beats_random():
    ei_hits = [_run(GPAgent((H, W), policy="ei", seed=s, n_initial=5), 40) for s in range(3)]
    assert all(h is not None and h <= 30 for h in ei_hits), ei_hits
    rand_hits = [_run(RandomAgent((H, W), seed=s), 40) for s in range(3)]
    assert rand_hits == [None, None, None]  # 40 of 900 pixels: ~4 % per run


def test_make_agent_by_policy():
    assert isinstance(make_agent("ucb", (4, 4), policy_params={"beta": 1.0}), GPAgent)
    assert isinstance(make_agent("random", (4, 4), seed=1), RandomAgent)
    assert isinstance(make_agent("raster", (4, 4), refit_every=2), RasterAgent)
    with pytest.raises(ConfigError, match="ei, maxvar, random, raster, ucb"):
        make_agent("greedy", (4, 4))
    with pytest.raises(ConfigError, match="policy_params"):
        make_agent("raster", (4, 4), policy_params={"beta": 1.0})
    with pytest.raises(ConfigError, match="beta"):
        make_agent("ucb", (4, 4), policy_params={"kappa": 1.0})


def test_pending_points_repel_the_next_choice():
    agent = GPAgent((H, W), policy="maxvar", seed=4, n_initial=8)
    for k in range(8):
        (p,) = _suggest(agent, step=k)
        agent.ingest([_observe(p)])
    (first,) = _suggest(agent, step=8)
    (second,) = _suggest(agent, step=8, pending=[first.location])
    far = abs(second.location.row - first.location.row) + abs(
        second.location.col - first.location.col
    )
    assert far > 3
    batch = _suggest(agent, n=3, step=8)
    assert batch[0].location == first.location and batch[1].location == second.location
    assert len({p.location for p in batch}) == 3
