"""The Agent contract, checked on every agent kind the composition root builds from a spec.

For each kind: ``ingest_measurements`` is idempotent per step and independent of the order of
the measurements; ``propose`` answers an :class:`Ask` with its step, instrument, an offered
modality and a finite expected cost, never at a pending or excluded location; ``report`` has
the grid's shapes; and every ability the agent declares (resolved by :func:`abilities_of`)
can actually be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.agents.protocols import Agent, AgentReport, Ask, abilities_of
from coscope.campaign.executors import LocalExecutor
from coscope.config import CampaignSpec, parse_spec
from coscope.infra.compose import agent_from_spec, instruments_from_spec, sample_from_spec
from coscope.instruments import Sample
from coscope.types import FitRecord, Location, Measurement, MeasurementRequest, Proposal

FILM = {"kind": "synthetic_film", "params": {"size": 8}}
AFM = [{"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.02}]
LIBRARY = {"kind": "combinatorial_library", "params": {"members": 25}}
SCOPES = [
    {
        "name": "scope",
        "modalities": ["pfm_loop", "raman"],
        "cost": {"pfm_loop": 1.0, "raman": 10.0},
        "latency_s": {"pfm_loop": 0.0, "raman": 0.0},
        "noise": 0.0,
    },
    {"name": "raman2", "modalities": ["raman"], "cost": 10.0, "noise": 0.0},
]
CO = {
    "sample": LIBRARY,
    "instruments": SCOPES,
    "scalarizer": {"name": "peak_position", "modality": "raman", "params": {"lo": 120, "hi": 200}},
    "auxiliary": [{"name": "loop_area", "modality": "pfm_loop"}],
}
THEORY = {
    "sample": {
        "kind": "with_theory",
        "params": {
            "base": {"kind": "synthetic_film", "params": {"size": 8}},
            "theory": {"theory_lgd": "beps_loop"},
        },
    },
    "instruments": [
        {"name": "afm", "modalities": ["beps_loop"], "latency_s": 0, "noise": 0.02},
        {
            "name": "lgd",
            "kind": "theory_lgd",
            "modalities": ["theory_lgd"],
            "latency_s": 0,
            "cost": 0.5,
            "noise": 0,
            "options": {"calibrate": {"coercive_field": [1.0, 5.0], "imprint_gain": [-1.0, 1.0]}},
        },
    ],
    "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
}
GRID = {"sample": FILM, "instruments": AFM}

KINDS: dict[str, dict[str, Any]] = {
    "gp-ei": {**GRID, "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 20}},
    "gp-ucb": {**GRID, "policy": {"name": "ucb", "n_initial": 3, "fit_iterations": 20}},
    "structured-ei": {
        **GRID,
        "policy": {
            "name": "ei",
            "model": "structured",
            "mean": {"law": "domain_wall"},
            "n_initial": 3,
            "fit_iterations": 20,
        },
    },
    "hypotheses": {
        **GRID,
        "policy": {
            "name": "hypotheses",
            "models": [{"law": "domain_wall"}, {"law": "none"}],
            "n_initial": 3,
            "fit_iterations": 20,
        },
    },
    "random": {**GRID, "policy": {"name": "random", "n_initial": 3, "fit_iterations": 20}},
    "raster": {**GRID, "policy": {"name": "raster", "n_initial": 3, "fit_iterations": 20}},
    "dkl-thompson": {
        **GRID,
        "policy": {
            "name": "thompson",
            "model": "dkl",
            "window": 3,
            "n_initial": 3,
            "fit_iterations": 15,
        },
    },
    "chooser-gp": {
        **CO,
        "auxiliary": [],
        "policy": {"name": "max_uncertainty", "model": "gp", "n_initial": 3, "fit_iterations": 20},
    },
    "multitask": {
        **CO,
        "policy": {
            "name": "gain_per_cost",
            "model": "multitask",
            "n_initial": 3,
            "fit_iterations": 20,
        },
    },
    "latent-multitask": {
        **CO,
        "policy": {
            "name": "gain_per_cost",
            "model": "multitask",
            "n_initial": 3,
            "fit_iterations": 20,
            "params": {"latent_dim": 1, "vae_epochs": 20},
        },
    },
    "qlognehvi": {
        **GRID,
        "objectives": [
            {"name": "loop_area", "modality": "beps_loop"},
            {"name": "coercive_field", "modality": "beps_loop", "goal": "min"},
        ],
        "policy": {
            "name": "qlognehvi",
            "n_initial": 3,
            "fit_iterations": 20,
            "params": {"mc_samples": 16},
        },
    },
    "novelty": {
        **GRID,
        "objectives": [
            {"name": "loop_area", "modality": "beps_loop"},
            {"name": "coercive_field", "modality": "beps_loop"},
        ],
        "policy": {"name": "novelty", "n_initial": 3, "fit_iterations": 20, "params": {"k": 2}},
    },
    "constrained-ei": {
        **GRID,
        "constraints": [
            {"name": "coercive_field", "modality": "beps_loop", "op": "<=", "value": 4}
        ],
        "feasibility": "learn",
        "failures": {"max_rate": 0.5},
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 20},
    },
    "fidelity": {
        "sample": FILM,
        "instruments": [{**AFM[0], "options": {"dwell": [0.25, 1.0, 4.0]}}],
        "policy": {"name": "fidelity", "n_initial": 3, "fit_iterations": 20},
    },
    "conavigate": {
        **THEORY,
        "policy": {"name": "conavigate", "n_initial": 2, "params": {"n_design": 3}},
    },
}
N_STEPS = 5

GRID_ABILITIES = {"fits_on_executor", "steerable", "single_target", "retraceable"}
EXPECTED: dict[str, set[str]] = {
    "gp-ei": GRID_ABILITIES | {"policy"},
    "gp-ucb": GRID_ABILITIES | {"policy"},
    "structured-ei": GRID_ABILITIES | {"policy"},
    "random": GRID_ABILITIES,
    "raster": GRID_ABILITIES,
    "dkl-thompson": GRID_ABILITIES | {"policy", "embedding"},
    "chooser-gp": {"fits_on_executor", "hands_over_fits", "tasks"},
    "multitask": {"fits_on_executor", "hands_over_fits", "tasks"},
    "latent-multitask": {"fits_on_executor", "hands_over_fits", "tasks", "uses_executor"},
    "conavigate": {"hands_over_fits", "uses_executor", "remembers_params", "digital_twin"},
    # fits every objective itself (needs_fit is always False) and hands the records over
    "qlognehvi": GRID_ABILITIES | {"policy", "hands_over_fits"},
    "novelty": GRID_ABILITIES | {"policy", "hands_over_fits"},
    # fits every hypothesis itself, on the loop's executor, and weighs them
    "hypotheses": GRID_ABILITIES | {"policy", "hands_over_fits", "uses_executor", "hypotheses"},
    "constrained-ei": GRID_ABILITIES | {"policy", "constrained"},
    # knows each observation's dwell from the decisions' params (resume, replay)
    "fidelity": GRID_ABILITIES | {"policy", "remembers_params"},
}
"""The abilities each kind declares: losing one (a renamed method) would silently change
what the loop does with it (no fits on the executor, no twin, no exclusions)."""


def _spec(kind: str, tmp_path: Path) -> CampaignSpec:
    data = {
        "name": f"contract-{kind}",
        "seed": 3,
        **KINDS[kind],
        "budget": {"max_measurements": 20},
        "time_scale": 0.0,
        "run_dir": str(tmp_path),
    }
    return parse_spec(data)


class _Campaign:
    """One agent kind, its sample and instruments, and measurements the agent asked for."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.spec = _spec(kind, tmp_path)
        self.sample: Sample = sample_from_spec(self.spec.sample, self.spec.seed)
        self.executor = LocalExecutor(instruments_from_spec(self.spec, self.sample))
        self.measurements: list[Measurement] = []
        self.decisions: list[Proposal] = []
        agent = self.agent()
        for step in range(N_STEPS):
            name = self.spec.instruments[step % len(self.spec.instruments)].name
            proposal = agent.propose(self.ask(agent, step, name))
            assert proposal is not None
            self.decisions.append(proposal)
            measured = self._measure(proposal)
            self.measurements.append(measured)
            self._remember(agent, [proposal])
            agent.ingest_measurements([measured])

    def agent(self) -> Agent:
        return agent_from_spec(self.spec, self.sample)

    def offered(self, agent: Agent, instrument: str) -> tuple[str, ...]:
        inst = next(i for i in self.spec.instruments if i.name == instrument)
        return tuple(m for m in inst.modalities if m in agent.modalities)

    def ask(
        self, agent: Agent, step: int, instrument: str, pending: tuple[Proposal, ...] = ()
    ) -> Ask:
        def price(name: str, modality: str, location: Location, params: object = None) -> float:
            cost = next(i.cost for i in self.spec.instruments if i.name == name)
            return float(cost[modality]) if isinstance(cost, dict) else float(cost)

        return Ask(step, instrument, self.offered(agent, instrument), pending, price)

    def _measure(self, proposal: Proposal) -> Measurement:
        request = MeasurementRequest.from_proposal(proposal, self.spec.seed)
        return self.executor.result(self.executor.submit(request))

    def _remember(self, agent: Agent, decisions: list[Proposal]) -> None:
        remembers = abilities_of(agent).remembers_params
        for d in decisions if remembers is not None else ():
            remembers.remember_params(d.step, d.params)

    def told(self, measurements: list[Measurement]) -> Agent:
        """A fresh agent told ``measurements`` (with the decisions' params first)."""
        agent = self.agent()
        self._remember(agent, self.decisions)
        agent.ingest_measurements(measurements)
        return agent


@pytest.fixture(scope="module", params=sorted(KINDS))
def campaign(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _Campaign:
    return _Campaign(request.param, tmp_path_factory.mktemp(request.param))


def _key(p: Proposal | None) -> tuple | None:
    return None if p is None else (p.step, p.instrument, p.modality, p.location, p.policy)


def test_is_an_agent_with_the_spec_modalities(campaign: _Campaign) -> None:
    agent = campaign.agent()
    assert isinstance(agent, Agent)
    assert campaign.spec.scalarizer.modality in agent.modalities
    assert agent.n_observations == 0


def test_declares_the_expected_abilities(campaign: _Campaign) -> None:
    ab = abilities_of(campaign.agent())
    declared = {name for name, value in vars(ab).items() if value is not None}
    assert declared == EXPECTED[campaign.kind]


def test_ingest_is_idempotent_per_step_and_order_independent(campaign: _Campaign) -> None:
    ms = campaign.measurements
    once = campaign.told(ms)
    twice = campaign.told(list(reversed(ms)))
    twice.ingest_measurements(ms[:2])  # steps told again: no-op
    assert once.n_observations == twice.n_observations > 0
    name = campaign.spec.instruments[0].name
    asks = [campaign.ask(a, N_STEPS, name) for a in (once, twice)]
    assert _key(once.propose(asks[0])) == _key(twice.propose(asks[1]))
    np.testing.assert_allclose(once.report().mean, twice.report().mean, rtol=1e-6, atol=1e-9)


def test_propose_answers_the_ask_never_pending_or_excluded(campaign: _Campaign) -> None:
    agent = campaign.told(campaign.measurements)
    steerable = abilities_of(agent).steerable
    excluded: set[Location] = set()
    if steerable is not None:  # exclude a few pixels as steering would
        h, w = steerable.grid_shape
        blocked = np.zeros(h * w, dtype=bool)
        blocked[[0, 1, w, w + 1]] = True
        steerable.blocked = blocked
        excluded = {Location.from_flat(i, w) for i in np.flatnonzero(blocked)}
    pending: list[Proposal] = []
    taken = {(m.modality, m.location) for m in campaign.measurements}
    for k in range(3):
        name = campaign.spec.instruments[k % len(campaign.spec.instruments)].name
        ask = campaign.ask(agent, N_STEPS + k, name, tuple(pending))
        proposal = agent.propose(ask)
        assert proposal is not None
        assert proposal.step == ask.step and proposal.instrument == name
        assert proposal.modality in ask.offered
        assert np.isfinite(proposal.expected_cost)
        assert proposal.location not in excluded
        assert (proposal.modality, proposal.location) not in {
            (p.modality, p.location) for p in pending
        }
        if campaign.spec.policy.name != "conavigate":  # a simulation may revisit a pixel
            assert (proposal.modality, proposal.location) not in taken
        pending.append(proposal)


def test_report_has_the_grid_shapes(campaign: _Campaign) -> None:
    agent = campaign.told(campaign.measurements)
    report = agent.report()
    assert isinstance(report, AgentReport)
    assert report.mean.shape == report.std.shape == campaign.sample.shape
    target = campaign.spec.scalarizer.modality
    n_target = sum(m.modality == target for m in campaign.measurements)
    if campaign.spec.policy.name != "conavigate":
        assert report.n_observations == n_target
    if n_target:
        assert np.isfinite(report.best_value) and report.best_location is not None


def test_declared_abilities_are_usable(campaign: _Campaign) -> None:
    agent = campaign.told(campaign.measurements)
    ab = abilities_of(agent)
    h, w = campaign.sample.shape
    if ab.uses_executor is not None:
        ab.uses_executor.use_executor(campaign.executor)
    if ab.fits_on_executor is not None:
        fitter = ab.fits_on_executor
        X, y = fitter.training_data()
        assert X.shape[0] == y.shape[0] > 0 and np.isfinite(y).all()
        if fitter.needs_fit(N_STEPS):
            state = campaign.executor.fit(
                fitter.model_kind, X, y, fitter.fit_seed(), 10, fitter.fit_options()
            )
            record = fitter.load_fit(state, 0, N_STEPS)
            assert isinstance(record, FitRecord) and record.n_train == len(y)
            assert not fitter.needs_fit(N_STEPS)
    if ab.embedding is not None:
        agent.report()  # fits when due
        emb = ab.embedding.embedding()
        assert emb is None or (emb.shape[0] == h * w and np.isfinite(emb).all())
    if ab.policy is not None:
        agent.report()
        assert ab.policy.scores().shape == (h * w,)
        assert isinstance(ab.policy.policy_name, str) and isinstance(ab.policy.policy_params, dict)
    if ab.tasks is not None:
        for modality in ab.tasks.reducers:
            mean, std = ab.tasks.predict(modality)
            assert mean.shape == std.shape == (h, w)
        cov = ab.tasks.task_covariance()
        assert cov is None or cov.shape[0] == cov.shape[1]
    if ab.hands_over_fits is not None:
        agent.report()
        fits = ab.hands_over_fits.take_fits()
        assert all(isinstance(f, FitRecord) for f in fits)
        assert ab.hands_over_fits.take_fits() == []  # handed over once
    if ab.constrained is not None:
        ab.constrained.mark_infeasible(99, Location(0, 0))
        assert ab.constrained.decision_feasibility(99) == {}  # not its decision
    if ab.steerable is not None:
        assert ab.steerable.blocked.shape == (h * w,) and ab.steerable.grid_shape == (h, w)
    if ab.retraceable is not None:
        final = ab.retraceable.final_surrogate(N_STEPS)
        if final is not None:  # conditioned on its own data, it predicts every candidate
            state, steps = final
            assert len(steps) == state.n_train
            ab.retraceable.condition_on(state)
            mean, std = ab.retraceable.predict_candidates()
            assert mean.shape == std.shape == (h * w,) and np.isfinite(mean).all()
    if ab.single_target is not None:
        assert ab.single_target.scalar_target.modality == campaign.spec.scalarizer.modality
    if ab.digital_twin is not None:
        twin = ab.digital_twin.digital_twin()
        assert twin is None or twin.shape == (h, w)
    if ab.hypotheses is not None:
        metrics = ab.hypotheses.hypothesis_metrics()
        probs = [v for k, v in metrics.items() if k.endswith(".prob")]
        assert len(probs) >= 2 and abs(sum(probs) - 1.0) < 1e-9
        verdict = ab.hypotheses.verdict()
        assert verdict is not None and verdict["probability"] == max(probs)
