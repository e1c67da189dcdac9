"""The fidelity policy: (location, dwell) by map information per price (docs/fidelity.md).

A 10 x 10 smooth bump, priced by the simulated microscope's own price function: a fixed
overhead of one reference dwell plus the dwell, ``(1 + d) / 2``. When the data are nearly
noise-free a short dwell already removes the variance at a point, so the cheapest wins; when
noise dominates, information grows with the dwell while the overhead does not, so a longer one
wins. Campaigns run end to end in this process (``run_local``): at high noise the policy
measures at longer dwells and maps at least as well per cost as a GP held at the shortest
dwell; at tiny noise it keeps to the shortest; the trace records each decision's dwell and
each measurement is charged its price.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.agents.fidelity_agent import FidelityAgent, variance_reduction
from coscope.agents.protocols import Ask, ScalarTarget
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import agent_from_spec, sample_from_spec
from coscope.infra.local import run_local
from coscope.instruments import DwellingInstrument, synthetic_film
from coscope.instruments.pricing import Pricing
from coscope.types import Location, Measurement, Proposal

H = W = 10
MODALITY = "beps_loop"
DWELLS = (0.25, 1.0, 4.0)
LOUD, N_LOUD = 0.5, 16
"""Noise std (bump height 1) and observations of the noise-dominated unit case."""
HIGH, SEED, BUDGET = 0.6, 0, 20.0
"""Relative noise at dwell 1, seed and cost budget of the campaigns compared."""
TARGET = ScalarTarget(MODALITY, lambda s: float(s[0]))
PRICE = Pricing.of(DwellingInstrument("inst", synthetic_film(size=H), dwell=DWELLS)).quote
"""The instrument's price function (overhead 1): 0.625, 1 and 2.5 for dwells 0.25, 1, 4."""


def _bump(loc: Location) -> float:
    r, c = loc.row / (H - 1), loc.col / (W - 1)
    return float(np.exp(-((r - 0.5) ** 2 + (c - 0.4) ** 2) / 0.1))


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
    proposal = agent.propose(Ask(agent.n_observations, "inst", (MODALITY,), pending, PRICE))
    assert proposal is not None
    return proposal


def test_low_noise_picks_the_shortest_dwell_and_high_noise_a_longer_one() -> None:
    quiet, loud = _choose(_agent_after(0.001)), _choose(_agent_after(LOUD, N_LOUD))
    assert quiet.policy == loud.policy == "fidelity"
    assert quiet.params == {"dwell": 0.25}
    assert loud.params["dwell"] > 0.25  # 1.0 here: the noise pays for a longer dwell
    for chosen in (quiet, loud):  # the price told, from the one price function
        assert chosen.expected_cost == PRICE("inst", MODALITY, chosen.location, chosen.params)


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


def _spec(tmp_path: Path, name: str = "fid", **changes: Any) -> Any:
    inst = {
        "name": "afm",
        "latency_s": 0.0,
        "cost": 2.0,
        "noise": 0.05,
        "options": {"dwell": [0.25, 1.0, 4.0], "overhead": 1.0},
    }
    data: dict[str, Any] = {
        "name": name,
        "seed": 2,
        "sample": {"kind": "synthetic_film", "params": {"size": 8}},
        "instruments": [inst],
        "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
        "policy": {"name": "fidelity", "n_initial": 3, "fit_iterations": 20},
        "budget": {"max_measurements": 9},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / name),
    }
    data.update(changes)
    return parse_spec(data)


def test_a_campaign_with_dwell_records_it_and_charges_its_price(tmp_path: Path) -> None:
    _, store = run_local(_spec(tmp_path))
    decisions = {d.step: d for d in store.decisions()}
    measurements = store.measurements()
    assert len(measurements) == 9
    for m in measurements:
        dwell = decisions[m.step].params["dwell"]
        assert dwell in (0.25, 1.0, 4.0)
        assert m.cost == pytest.approx(2.0 * (1.0 + dwell) / 2.0)  # cost x (o + d) / (o + 1)
        assert decisions[m.step].expected_cost == pytest.approx(m.cost)
    assert {decisions[s].policy for s in decisions} >= {"fidelity"}
    assert all(decisions[s].params == {"dwell": 1.0} for s in range(3))  # initial design


def _campaign(tmp_path: Path, name: str, noise: float, policy: str, dwell: list[float]):
    """A campaign of ``policy`` on a 10 x 10 film with ``dwell`` offered, 20 cost units."""
    inst = {
        "name": "afm",
        "latency_s": 0.0,
        "noise": noise,
        "options": {"dwell": dwell, "overhead": 1.0},
    }
    spec = _spec(
        tmp_path,
        name,
        seed=SEED,
        sample={"kind": "synthetic_film", "params": {"size": 10}},
        instruments=[inst],
        policy={"name": policy, "n_initial": 4, "fit_iterations": 30},
        budget={"max_cost": BUDGET, "max_measurements": 100},
    )
    outcome, store = run_local(spec)
    decisions = {d.step: d for d in store.decisions()}
    dwells = [decisions[m.step].params.get("dwell") for m in store.measurements()][4:]
    rmse = [r["rmse"] for r in outcome.history if "rmse" in r][-1]
    return outcome, dwells, rmse


def test_at_high_noise_longer_dwells_map_at_least_as_well_per_cost(tmp_path: Path) -> None:
    outcome, dwells, rmse = _campaign(tmp_path, "loud", HIGH, "fidelity", [0.25, 1.0, 4.0])
    short, _, rmse_short = _campaign(tmp_path, "short", HIGH, "maxvar", [0.25])
    assert max(dwells) > 0.25  # the noise pays for a longer dwell, at least sometimes
    assert outcome.cost_spent <= BUDGET and short.cost_spent <= BUDGET
    assert rmse <= rmse_short  # the same budget, the same seed: no worse a map


def test_at_tiny_noise_the_shortest_dwell_is_the_buy(tmp_path: Path) -> None:
    _, dwells, _ = _campaign(tmp_path, "quiet", 0.001, "fidelity", [0.25, 1.0, 4.0])
    assert dwells and set(dwells) == {0.25}


def test_policy_fidelity_without_dwells_is_refused_with_one_sentence(tmp_path: Path) -> None:
    spec = _spec(tmp_path, instruments=[{"name": "afm", "latency_s": 0.0, "noise": 0.05}])
    sample = sample_from_spec(spec.sample, spec.seed)
    with pytest.raises(ConfigError, match=r"offers dwell times: add options: \{dwell"):
        agent_from_spec(spec, sample)
