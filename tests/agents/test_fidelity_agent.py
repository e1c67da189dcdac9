"""The fidelity policy: (location, dwell) by map information per price (docs/fidelity.md).

A 10 x 10 smooth bump. Each measurement has a fixed overhead (1) plus its dwell in the price.
When the data are nearly noise-free a short dwell already removes the variance at a point, so
the cheapest wins; when noise dominates, information grows with the dwell while the overhead
does not, so a longer one wins. A campaign with ``dwell`` offered runs end to end through the
spec, the trace records each decision's dwell and each measurement costs ``dwell x cost``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.campaign.test_loop import _run

from coscope.agents.fidelity_agent import FidelityAgent, variance_reduction
from coscope.agents.protocols import Ask, ScalarTarget, abilities_of
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import agent_from_spec, sample_from_spec
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, Proposal

H = W = 10
MODALITY = "toy"
DWELLS = (0.25, 1.0, 4.0)
TARGET = ScalarTarget(MODALITY, lambda s: float(s[0]))


def _bump(loc: Location) -> float:
    r, c = loc.row / (H - 1), loc.col / (W - 1)
    return float(np.exp(-((r - 0.5) ** 2 + (c - 0.4) ** 2) / 0.1))


def _price(instrument: str, modality: str, location: Location, params: Any = None) -> float:
    return 1.0 + float((params or {}).get("dwell", 1.0))  # overhead + dwell


def _agent_after(noise: float, n: int = 16) -> FidelityAgent:
    agent = FidelityAgent(
        (H, W),
        dwells={"inst": DWELLS},
        seed=1,
        n_initial=4,
        fit_iterations=40,
        scalar_target=TARGET,
    )
    rng = np.random.default_rng(5)
    flat = rng.choice(H * W, size=n, replace=False)
    for step, i in enumerate(flat.tolist()):
        loc = Location.from_flat(i, W)
        agent.remember_params(step, {"dwell": 1.0})
        value = _bump(loc) + noise * rng.standard_normal()
        agent.ingest_measurements([Measurement(step, "inst", MODALITY, loc, np.array([value]))])
    return agent


def _choose(agent: FidelityAgent, pending: tuple[Proposal, ...] = ()) -> Proposal:
    proposal = agent.propose(Ask(agent.n_observations, "inst", (MODALITY,), pending, _price))
    assert proposal is not None
    return proposal


def test_low_noise_picks_the_cheap_dwell_and_dominant_noise_the_long_one() -> None:
    quiet, loud = _choose(_agent_after(0.001)), _choose(_agent_after(0.5))
    assert quiet.policy == loud.policy == "fidelity"
    assert quiet.params == {"dwell": 0.25}
    assert loud.params["dwell"] > quiet.params["dwell"]  # noise dominates: a longer dwell
    for chosen in (quiet, loud):
        assert chosen.expected_cost == _price("inst", MODALITY, chosen.location, chosen.params)


def test_the_learned_noise_is_per_observation() -> None:
    agent = _agent_after(0.3)
    agent.remember_params(0, {"dwell": 4.0})  # step 0 was in fact a long dwell
    agent.fit(agent.n_observations)
    noise = agent.surrogate.likelihood.noise.reshape(-1).detach().numpy()
    assert noise[0] == pytest.approx(noise[1] / 4.0)  # s^2 / d_i, standardised units
    assert np.isfinite(agent.base_noise) and agent.base_noise > 0


def test_pending_measurements_reduce_the_information_near_them() -> None:
    agent = _agent_after(0.05)
    first = _choose(agent)
    i = first.location.flat(W)
    alone = agent.information([], DWELLS)[i]
    after = agent.information([(i, float(first.params["dwell"]))], DWELLS)[i]
    assert np.all(after < alone)
    second = _choose(agent, (first,))
    assert second.location != first.location


def test_variance_reduction_of_a_noise_free_observation_at_a_point_is_its_variance() -> None:
    import torch
    from gpytorch.kernels import RBFKernel

    kernel = RBFKernel()
    X = torch.tensor([[50.0]], dtype=torch.float64)  # far away: the prior at C
    C = torch.tensor([[0.3]], dtype=torch.float64)
    out = variance_reduction(kernel, X, torch.tensor([1e-6], dtype=torch.float64), C, C, [0.0, 1.0])
    np.testing.assert_allclose(out[0], [1.0, 0.5], rtol=1e-6)  # k(c,c)=1: 1/1, 1/(1+1)


def _spec(tmp_path: Path, **changes: Any) -> Any:
    inst = {
        "name": "afm",
        "latency_s": 0.0,
        "cost": 2.0,
        "noise": 0.05,
        "options": {"dwell": [0.25, 1.0, 4.0]},
    }
    data: dict[str, Any] = {
        "name": "fid",
        "seed": 2,
        "sample": {"kind": "synthetic_film", "params": {"size": 8}},
        "instruments": [inst],
        "policy": {"name": "fidelity", "n_initial": 3, "fit_iterations": 20},
        "budget": {"max_measurements": 9},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "fid"),
    }
    data.update(changes)
    return parse_spec(data)


def test_a_campaign_with_dwell_records_it_and_charges_dwell_times_cost(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _, ctx = _run(spec)
    assert abilities_of(ctx.agent).remembers_params is not None
    store = TraceStore.open(spec.resolved_store(), mode="r")
    decisions = {d.step: d for d in store.decisions()}
    measurements = store.measurements()
    assert len(measurements) == 9
    for m in measurements:
        dwell = decisions[m.step].params["dwell"]
        assert dwell in (0.25, 1.0, 4.0)
        assert m.cost == pytest.approx(2.0 * dwell)
    assert {decisions[s].policy for s in decisions} >= {"fidelity"}
    assert all(decisions[s].params == {"dwell": 1.0} for s in range(3))  # initial design


def test_policy_fidelity_without_dwells_is_refused_with_one_sentence(tmp_path: Path) -> None:
    spec = _spec(tmp_path, instruments=[{"name": "afm", "latency_s": 0.0, "noise": 0.05}])
    sample = sample_from_spec(spec.sample, spec.seed)
    with pytest.raises(ConfigError, match=r"offers dwell times: add options: \{dwell"):
        agent_from_spec(spec, sample)
