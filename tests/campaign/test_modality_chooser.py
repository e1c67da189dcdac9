"""The loop with an agent that chooses the modality: several instruments, params, resume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coscope.agents.protocols import Agent, AgentReport, Ask
from coscope.campaign import CampaignContext, CampaignLoop, LocalExecutor
from coscope.config import parse_spec
from coscope.infra.tracking import NullTracker
from coscope.instruments import Sample, build_instrument
from coscope.instruments.base import Instrument
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo, Proposal

SHAPE = (4, 5)


def _sample() -> Sample:
    rng = np.random.default_rng(0)
    axis3, axis6 = np.arange(3.0), np.linspace(0.0, 1.0, 6)
    return Sample(
        name="two-modality",
        structure=rng.normal(size=SHAPE),
        modalities={
            "image": ModalityInfo("image", axis3),
            "spectrum": ModalityInfo("spectrum", axis6),
            "theory": ModalityInfo("theory", axis6),
        },
        truth={
            "image": rng.normal(size=(*SHAPE, 3)),
            "spectrum": rng.normal(size=(*SHAPE, 6)),
            "theory": rng.normal(size=(*SHAPE, 6)),
        },
    )


class ThetaSimulator:
    """A 'theory' instrument whose signal is ``theta`` times the truth: params reach it."""

    name = "sim"
    modalities = ("theory",)

    def __init__(self, sample: Sample) -> None:
        self.sample = sample

    def info(self, modality: str) -> ModalityInfo:
        return self.sample.info(modality)

    def expected_cost(self, modality: str, location: Location) -> float:
        return 3.0

    def measure(self, request: MeasurementRequest) -> Measurement:
        theta = float(request.params["theta"])
        signal = theta * self.sample.signal(request.modality, request.location)
        return Measurement(request.step, self.name, request.modality, request.location, signal, 3.0)


@dataclass
class ScriptedChooser:
    """Round-robin over the offered modalities; first free pixel in row-major order."""

    modalities: tuple[str, ...] = ("image", "spectrum", "theory")
    seen: dict[int, Measurement] = field(default_factory=dict)
    calls: list[tuple[str, tuple[str, ...], tuple[tuple[str, Location], ...]]] = field(
        default_factory=list
    )

    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        for m in measurements:
            self.seen[m.step] = m

    @property
    def n_observations(self) -> int:
        return len(self.seen)

    def report(self) -> AgentReport:
        nan = np.full(SHAPE, np.nan)
        return AgentReport(nan, nan.copy(), -1, len(self.seen), float("nan"), None, None)

    def propose(self, ask: Ask) -> Proposal | None:
        step, instrument, offered, pending = ask.step, ask.instrument, ask.offered, ask.pending
        cost = ask.price
        busy = {(p.modality, p.location) for p in pending}
        self.calls.append((instrument, tuple(offered), tuple(sorted(busy))))
        modality = offered[step % len(offered)]
        done = {(m.modality, m.location) for m in self.seen.values()}
        for flat in range(SHAPE[0] * SHAPE[1]):
            loc = Location.from_flat(flat, SHAPE[1])
            if (modality, loc) not in done | busy:
                params = {"theta": 2.0} if modality == "theory" else {}
                return Proposal(
                    step,
                    instrument,
                    modality,
                    loc,
                    "scripted",
                    expected_cost=cost(instrument, modality, loc),
                    params=params,
                )
        return None


def _context(tmp_path: Path, budget: int, agent: ScriptedChooser) -> CampaignContext:
    spec = parse_spec(
        {
            "name": "chooser",
            "instruments": [
                {"name": "scope", "modalities": ["image", "spectrum"], "cost": 1.0},
                {"name": "raman", "modalities": ["spectrum"], "cost": 2.0},
                {"name": "sim", "modalities": ["theory"], "cost": 3.0},
            ],
            "scalarizer": {"name": "mean", "modality": "spectrum"},
            "budget": {"max_measurements": budget},
            "time_scale": 0.0,
            "run_dir": str(tmp_path),
        }
    )
    sample = _sample()
    path = spec.resolved_store()
    if (path / "zarr.json").exists():
        store = TraceStore.open(path, mode="a")
    else:
        store = TraceStore.create(
            path, campaign=spec.to_json_dict(), modalities=sample.modalities, sample_shape=SHAPE
        )
    return CampaignContext(spec, sample, store, agent, NullTracker())


def _executor(sample: Sample) -> LocalExecutor:
    def simulated(name: str, modalities: list[str]) -> Instrument:
        return build_instrument(
            name,
            sample,
            kind="simulated",
            modalities=modalities,
            latency_s=0.0,
            cost=1.0 if name == "scope" else 2.0,
            noise=0.0,
            time_scale=0.0,
        )

    return LocalExecutor(
        {
            "scope": simulated("scope", ["image", "spectrum"]),
            "raman": simulated("raman", ["spectrum"]),
            "sim": ThetaSimulator(sample),
        }
    )


def test_chooser_gets_every_instrument_and_picks_the_modality(tmp_path: Path) -> None:
    agent = ScriptedChooser()
    assert isinstance(agent, Agent)
    ctx = _context(tmp_path, 12, agent)
    outcome = CampaignLoop(ctx, _executor(ctx.sample)).run()
    assert outcome.status == "finished" and outcome.n_measurements == 12
    decisions, measurements = ctx.store.decisions(), ctx.store.measurements()
    assert {d.instrument for d in decisions} == {"scope", "raman", "sim"}
    assert {d.modality for d in decisions if d.instrument == "scope"} == {"image", "spectrum"}
    assert ({c[1] for c in agent.calls if c[0] == "scope"}) == {("image", "spectrum")}
    pairs = [(m.modality, m.location) for m in measurements]
    assert len(set(pairs)) == len(pairs)  # pending points of every instrument were respected
    assert any(busy for _, _, busy in agent.calls)  # proposals were made with others in flight
    # params reached the simulator and the trace
    for d in decisions:
        assert d.params == ({"theta": 2.0} if d.modality == "theory" else {})
    for m in measurements:
        truth = ctx.sample.signal(m.modality, m.location)
        np.testing.assert_allclose(m.signal, 2.0 * truth if m.modality == "theory" else truth)
    assert sorted(agent.seen) == [m.step for m in sorted(measurements, key=lambda m: m.step)]
    costs = {"scope": 1.0, "raman": 2.0, "sim": 3.0}
    assert outcome.cost_spent == sum(costs[m.instrument] for m in measurements)
    rewards = [r["reward"] for r in outcome.history]
    spectra = [m for m in measurements if m.modality == "spectrum"]
    assert np.isfinite(rewards).sum() == len(spectra)  # only the target modality has a reward
    ctx.store.close()


def test_resume_hands_the_chooser_every_measurement(tmp_path: Path) -> None:
    first = ScriptedChooser()
    ctx = _context(tmp_path, 7, first)
    CampaignLoop(ctx, _executor(ctx.sample)).run()
    ctx.store.close()
    again = ScriptedChooser()
    ctx = _context(tmp_path, 10, again)  # same store, larger budget
    loop = CampaignLoop(ctx, _executor(ctx.sample))
    outcome = loop.run()
    assert outcome.n_measurements == 10
    assert set(again.seen) == {m.step for m in ctx.store.measurements()}
    pairs = [(m.modality, m.location) for m in ctx.store.measurements()]
    assert len(set(pairs)) == 10
    ctx.store.close()


def test_steering_a_chooser_rejects_exclusions_and_keeps_running(tmp_path: Path) -> None:
    from coscope.campaign.inbox import Inbox

    agent = ScriptedChooser()
    ctx = _context(tmp_path, 6, agent)
    Inbox(ctx.store.path).post("exclude", {"pixels": [[0, 0]]}, why="avoid the corner")
    outcome = CampaignLoop(ctx, _executor(ctx.sample)).run()
    assert outcome.status == "finished" and outcome.n_measurements == 6
    (rejected,) = ctx.store.interventions()
    assert rejected.kind == "exclude"
    assert "does not take exclusions" in rejected.payload["rejected"]
    assert any(m.location == Location(0, 0) for m in ctx.store.measurements())  # not applied
    ctx.store.close()
