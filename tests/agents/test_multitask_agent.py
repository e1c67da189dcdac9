"""The co-orchestrating agent in the campaign loop: modalities, costs, pending, resume, spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.agents.multitask_agent import MultiTaskAgent
from coscope.agents.protocols import Agent, Ask
from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)


def _spec(tmp_path: Path, **changes):
    data = {
        "name": "co",
        "seed": 2,
        "sample": {"kind": "combinatorial_library", "params": {"members": 36}},
        "instruments": [
            {
                "name": "scope",
                "modalities": ["pfm_loop", "raman"],
                "cost": {"pfm_loop": 1.0, "raman": 10.0},
                "latency_s": {"pfm_loop": 0.0, "raman": 0.0},
                "noise": 0.0,
            },
            {"name": "raman2", "modalities": ["raman"], "cost": 10.0, "noise": 0.0},
        ],
        "scalarizer": {
            "name": "peak_position",
            "modality": "raman",
            "params": {"lo": 120, "hi": 200},
        },
        "auxiliary": [{"name": "loop_area", "modality": "pfm_loop"}],
        "policy": {
            "name": "gain_per_cost",
            "model": "multitask",
            "n_initial": 4,
            "fit_iterations": 30,
            "params": {"refit_growth": 1.5},
        },
        "budget": {"max_measurements": 14},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return parse_spec(data)


def _run(spec):
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    return outcome, ctx


def test_gain_per_cost_uses_both_modalities_and_never_repeats(tmp_path: Path) -> None:
    outcome, ctx = _run(_spec(tmp_path))
    assert isinstance(ctx.agent, MultiTaskAgent) and isinstance(ctx.agent, Agent)
    decisions = ctx.store.decisions()
    assert outcome.status == "finished" and outcome.n_measurements == 14
    pairs = [(d.modality, d.location) for d in decisions]
    assert len(set(pairs)) == len(pairs)
    scope = [d for d in decisions if d.instrument == "scope" and d.policy == "gain_per_cost"]
    assert {d.modality for d in scope} <= {"pfm_loop", "raman"} and scope
    assert {d.modality for d in decisions if d.instrument == "raman2"} == {"raman"}
    for d in decisions:  # the spec's per-modality costs, charged and expected alike
        assert d.expected_cost == (1.0 if d.modality == "pfm_loop" else 10.0)
    assert outcome.cost_spent == sum(d.expected_cost for d in decisions)
    cov = ctx.agent.task_covariance()
    assert cov.shape == (2, 2) and cov[0, 1] < 0  # peak shift up where the loop shrinks
    assert ctx.store.counts()["fits"] >= 1
    assert np.isfinite(outcome.history[-1]["rmse"])
    ctx.store.close()


def test_resume_gives_the_same_decisions(tmp_path: Path) -> None:
    first, ctx = _run(_spec(tmp_path / "a"))
    whole = [(d.instrument, d.modality, d.location) for d in ctx.store.decisions()]
    ctx.store.close()
    _run(_spec(tmp_path / "b", budget={"max_measurements": 8}))[1].store.close()
    _, ctx = _run(_spec(tmp_path / "b"))
    resumed = [(d.instrument, d.modality, d.location) for d in ctx.store.decisions()]
    ctx.store.close()
    assert resumed == whole


@pytest.mark.parametrize(
    ("policy", "model"), [("max_uncertainty", "multitask"), ("gain_per_cost", "gp")]
)
def test_reference_rule_and_single_modality_baseline(tmp_path: Path, policy, model) -> None:
    spec = _spec(
        tmp_path, policy={"name": policy, "model": model, "n_initial": 4, "fit_iterations": 20}
    )
    outcome, ctx = _run(spec)
    modalities = {d.modality for d in ctx.store.decisions()}
    if model == "gp":
        assert ctx.agent.modalities == ("raman",) and modalities == {"raman"}
        assert [d.instrument for d in ctx.store.decisions()][:2] == ["scope", "raman2"]
    else:
        assert ctx.agent.modalities == ("raman", "pfm_loop")
    assert outcome.n_measurements == 14
    ctx.store.close()


@pytest.mark.parametrize("model", ["multitask", "gp"])
def test_boundary_kernel_resumes_to_the_same_decisions_and_logs_the_boundary(
    tmp_path: Path, model: str
) -> None:
    """``boundaries: 1`` for the multi-task agent and the single-modality baseline alike."""
    policy = {
        "name": "gain_per_cost",
        "model": model,
        "n_initial": 4,
        "fit_iterations": 20,
        "params": {"refit_growth": 1.5, "boundaries": 1},
    }
    _, ctx = _run(_spec(tmp_path / "a", policy=policy))
    whole = [(d.instrument, d.modality, d.location) for d in ctx.store.decisions()]
    assert ctx.agent.boundaries == 1 and ctx.agent.boundary_map().shape == (6, 6, 1)
    fits = ctx.store.fits()
    assert fits and all("boundary_0_offset" in f.hyperparameters for f in fits)
    ctx.store.close()
    _run(_spec(tmp_path / "b", policy=policy, budget={"max_measurements": 8}))[1].store.close()
    _, ctx = _run(_spec(tmp_path / "b", policy=policy))
    assert [(d.instrument, d.modality, d.location) for d in ctx.store.decisions()] == whole
    ctx.store.close()
    _, plain = _run(_spec(tmp_path / "c"))  # the default stays the plain kernel
    assert plain.agent.boundaries == 0 and plain.agent.boundary_map() is None
    plain.store.close()


def test_travel_cost_grows_with_distance_from_the_last_decision(tmp_path: Path) -> None:
    instruments = [
        {
            "name": "scope",
            "modalities": ["pfm_loop", "raman"],
            "cost": {"pfm_loop": 1, "raman": 10},
            "travel_cost_per_um": 0.001,
            "noise": 0.0,
            "latency_s": 0.0,
        }
    ]
    outcome, ctx = _run(_spec(tmp_path, instruments=instruments, budget={"max_measurements": 5}))
    decisions = ctx.store.decisions()
    last = decisions[-1].location
    pitch = ctx.sample.pixel_size_um
    from coscope.types import Location

    far = Location(0 if last.row > 2 else 5, last.col)
    expected = 1.0 + 0.001 * pitch * abs(far.row - last.row)
    assert ctx.expected_cost("scope", "pfm_loop", far) == pytest.approx(expected)
    assert ctx.expected_cost("scope", "raman", last) == pytest.approx(10.0)
    steps = [d.expected_cost for d in decisions[1:]]
    assert any(c > 1.0 and c != 10.0 for c in steps)  # travel was priced in decisions
    charged = {m.step: m.cost for m in ctx.store.measurements()}
    for d in decisions:  # ... and charged by the instrument from the request's stage_from
        assert charged[d.step] == pytest.approx(d.expected_cost)
    assert decisions[0].params == {}
    assert all(
        d.params["stage_from"] == [p.location.row, p.location.col]
        for p, d in zip(decisions, decisions[1:], strict=False)
    )
    assert outcome.cost_spent == pytest.approx(sum(d.expected_cost for d in decisions))
    ctx.store.close()


def test_travel_wrapper_charges_from_the_request_origin() -> None:
    from coscope.instruments import build_instrument, build_sample
    from coscope.types import Location, MeasurementRequest

    sample = build_sample("combinatorial_library", {"members": 16, "pixel_size_um": 100.0}, 0)
    inst = build_instrument("s", sample, modalities=["raman"], cost=2.0, travel_cost_per_um=0.01)
    here = MeasurementRequest(0, "s", "raman", Location(3, 3), 0)
    moved = MeasurementRequest(1, "s", "raman", Location(3, 3), 0, {"stage_from": [0, 3]})
    assert inst.measure(here).cost == 2.0
    assert inst.measure(moved).cost == pytest.approx(2.0 + 0.01 * 100.0 * 3)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"auxiliary": []}, "needs at least one auxiliary"),
        ({"auxiliary": [{"name": "loop_area", "modality": "afm"}]}, "measured by no instrument"),
        ({"auxiliary": [{"name": "mean", "modality": "raman"}]}, "distinct modalities"),
        ({"policy": {"name": "ei", "model": "multitask"}}, "needs policy"),
        ({"policy": {"name": "gain_per_cost", "model": "dkl"}}, "works with model"),
        ({"policy": {"name": "gain_per_cost", "params": {"beta": 2}}}, "does not take"),
        ({"policy": {"name": "gain_per_cost", "params": {"rank": 0}}}, "integer >= 1"),
        ({"policy": {"name": "gain_per_cost", "params": {"boundaries": 5}}}, "integer 0..4"),
        ({"policy": {"name": "gain_per_cost", "params": {"boundaries": 0.5}}}, "integer 0..4"),
    ],
)
def test_bad_chooser_specs_are_one_sentence(tmp_path: Path, change: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        _spec(tmp_path, **change)
    assert str(info.value).startswith("invalid campaign spec") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("instrument", "words"),
    [
        ({"cost": {"raman": 10.0}}, "missing"),
        ({"cost": {"pfm_loop": 1.0, "raman": 0.0}}, "must be a finite number > 0"),
        ({"latency_s": {"pfm_loop": -1.0, "raman": 1.0}}, "latency_s for 'pfm_loop'"),
        ({"travel_cost_per_um": -1}, "travel_cost_per_um"),
    ],
)
def test_bad_instrument_costs_are_one_sentence(tmp_path: Path, instrument: dict, words) -> None:
    inst = {"name": "scope", "modalities": ["pfm_loop", "raman"], **instrument}
    with pytest.raises(ConfigError, match=words):
        _spec(tmp_path, instruments=[inst])


def test_background_fits_leave_decisions_deterministic(tmp_path: Path) -> None:
    """Fits in a background thread, lagged one schedule point: same data, same decisions."""
    policy = {
        "name": "gain_per_cost",
        "model": "multitask",
        "n_initial": 4,
        "fit_iterations": 20,
        "params": {"refit_growth": 1.5, "background_fit": 1},
    }
    runs = []
    for name in ("a", "b"):
        outcome, ctx = _run(_spec(tmp_path / name, policy=policy))
        runs.append([(d.instrument, d.modality, d.location) for d in ctx.store.decisions()])
        sizes = [r.n_train for r in ctx.agent.background_fits]
        assert sizes == sorted(sizes) and sizes[0] == 4 and len(sizes) >= 2
        stored = ctx.store.fits()  # every model version the agent used is in the trace
        assert [f.n_train for f in stored] == sizes
        assert [f.version for f in stored] == list(range(len(sizes)))
        first_model = min(d.step for d in ctx.store.decisions() if d.policy == "gain_per_cost")
        assert first_model >= 6  # the model is first used once the second fit point is reached
        assert outcome.n_measurements == 14
        ctx.agent.close()
        ctx.store.close()
    assert runs[0] == runs[1]


def test_cli_refuses_a_bad_co_orchestration_spec_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from coscope.cli import EXIT_USER_ERROR, main

    example = Path(__file__).resolve().parents[2] / "examples" / "co_orchestration.yaml"
    text = example.read_text().replace("cost: {pfm_loop: 1.0, raman: 10.0}", "cost: {raman: 10.0}")
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(run_dir), "--quiet"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'instruments.0'" in err and "missing ['pfm_loop']" in err
    assert len(err.splitlines()) == 1 and not (run_dir / "trace.zarr").exists()


def test_initial_design_visits_untouched_locations_first() -> None:
    from coscope.agents.protocols import Reducer
    from coscope.types import Location, Measurement

    axis = np.arange(4.0)
    agent = MultiTaskAgent(
        (3, 3),
        {"a": Reducer("mean", {}, axis), "b": Reducer("mean", {}, axis)},
        seed=1,
        n_initial=9,
    )
    seen = set()
    for step in range(9):
        p = agent.propose(Ask(step, "i", ("a", "b"), (), lambda *_: 1.0))
        assert p.policy == "initial" and p.location not in seen
        seen.add(p.location)
        agent.ingest_measurements(
            [Measurement(step, "i", p.modality, p.location, np.full(4, step * 1.0), 1.0)]
        )
    assert seen == {Location(r, c) for r in range(3) for c in range(3)}


def test_the_example_logs_its_learned_boundary_to_mlflow(tmp_path: Path) -> None:
    """The example (``boundaries: 1``), tracked in real MLflow: every fit's boundary is logged."""
    from mlflow.tracking import MlflowClient

    from coscope.config import load_spec
    from coscope.flows.finish import finish_campaign

    example = Path(__file__).resolve().parents[2] / "examples" / "co_orchestration.yaml"
    changes = {"run_dir": str(tmp_path / "run"), "time_scale": 0.0}
    spec = load_spec(example, {**changes, "budget": {"max_measurements": 12}})
    assert spec.policy.params["boundaries"] == 1
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    fits = ctx.store.fits()
    assert fits and all("boundary_0_width" in f.hyperparameters for f in fits)
    metrics = MlflowClient(spec.resolved_tracking_uri()).get_run(summary["mlflow_run_id"]).data
    assert {"fit.hp.boundary_0_offset", "fit.hp.boundary_0_dir_0"} <= set(metrics.metrics)
