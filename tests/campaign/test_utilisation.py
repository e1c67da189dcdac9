"""Instrument utilisation from the trace, in `coscope status` and in the final metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.report.utilisation import utilisation
from coscope.types import Location, Measurement, Proposal


def _m(step: int, instrument: str, t0: float, t1: float) -> Measurement:
    return Measurement(step, instrument, "x", Location(0, step), np.zeros(2), 1.0, t0, t1)


def test_busy_fraction_is_the_union_of_intervals_over_the_campaign_wall_time() -> None:
    decisions = [Proposal(0, "a", "x", Location(0, 0), "p", t_decided=100.0)]
    measurements = [
        _m(0, "a", 100.0, 104.0),
        _m(1, "a", 104.0, 108.0),
        _m(2, "b", 101.0, 103.0),
        _m(3, "b", 102.0, 106.0),  # overlaps the previous one: counted once
        _m(4, "a", 109.0, 110.0),
    ]
    busy = utilisation(measurements, decisions, ["a", "b", "c"])
    assert busy["a"] == pytest.approx(9 / 10)
    assert busy["b"] == pytest.approx(5 / 10)
    assert busy["c"] == 0.0
    assert utilisation([], decisions, ["a"]) == {}


def test_status_reports_utilisation_and_keeps_its_keys(tmp_path: Path) -> None:
    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.config import parse_spec
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )
    from coscope.report.status import campaign_status, format_status
    from coscope.report.utilisation import co_orchestration_metrics

    spec = parse_spec(
        {
            "name": "util",
            "sample": {"kind": "combinatorial_library", "params": {"members": 16}},
            "instruments": [
                {"name": "pfm", "modalities": ["pfm_loop"], "cost": 1, "latency_s": 0.01},
                {"name": "raman", "modalities": ["raman"], "cost": 5, "latency_s": 0.02},
            ],
            "scalarizer": {"name": "peak_position", "modality": "raman"},
            "auxiliary": [{"name": "loop_area", "modality": "pfm_loop"}],
            "policy": {
                "name": "gain_per_cost",
                "model": "multitask",
                "n_initial": 3,
                "fit_iterations": 20,
            },
            "budget": {"max_measurements": 8},
            "time_scale": 1.0,
            "run_dir": str(tmp_path / "run"),
        }
    )
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    metrics, arrays = co_orchestration_metrics(ctx)
    ctx.store.close()
    status = campaign_status(spec.resolved_store())
    assert set(status["utilisation"]) == {"pfm", "raman"}
    assert all(0.0 < v <= 1.0 for v in status["utilisation"].values())
    assert {"status_version", "measurements", "best", "last_decision"} <= set(status)
    assert "busy" in format_status(status)
    assert metrics["utilisation.pfm"] == pytest.approx(status["utilisation"]["pfm"])
    n = status["measurements"]["by_modality"]
    assert metrics["modality.raman.n"] == n["raman"]
    assert metrics["modality.raman.cost"] == 5 * n["raman"]
    assert np.isfinite(metrics["modality.raman.rmse"]) and "task_cov.0_1" in metrics
    assert arrays["task_covariance.npy"].shape == (2, 2)


def test_mlflow_gets_choices_task_covariance_and_utilisation(tmp_path: Path) -> None:
    """A tracked run (real MLflow, sqlite in the run folder) of the example campaign."""
    from mlflow.tracking import MlflowClient

    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.config import load_spec
    from coscope.flows.finish import finish_campaign
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )

    example = Path(__file__).resolve().parents[2] / "examples" / "co_orchestration.yaml"
    spec = load_spec(
        example,
        {
            "run_dir": str(tmp_path / "run"),
            "time_scale": 0.0,
            "budget": {"max_measurements": 12},
        },
    )
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    run_id = summary["mlflow_run_id"]
    metrics = client.get_run(run_id).data.metrics
    assert {"utilisation.scope", "utilisation.raman2", "modality.raman.rmse"} <= set(metrics)
    assert "fit.hp.task_corr_0_1" in metrics and "task_cov.0_1" in metrics
    gains = client.get_metric_history(run_id, "decision.gain")
    chosen = [d for d in ctx.store.decisions() if d.policy == "gain_per_cost"]
    assert sorted(m.step for m in gains) == [d.step for d in chosen] and chosen
    for d in chosen:
        cost = client.get_metric_history(run_id, f"decision.{d.modality}.expected_cost")
        assert d.expected_cost in {m.value for m in cost if m.step == d.step}
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "task_covariance.npy" in artifacts
