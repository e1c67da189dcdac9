"""Constraints, learned feasibility and the stopping rule through the real loop.

A 10 x 10 synthetic film measured by one instrument (LocalExecutor, no tracking, no sleeping).
Outcome constraint ``coercive_field <= 4.0``; a failing region (``faults.bad_region``, every
measurement there a bad measurement) under a tolerant failure policy; the stopping rule
``ei_below``. Everything is seeded: the same spec gives the same campaign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.stopping import EARLY_STOP
from coscope.config import CampaignSpec, parse_spec
from coscope.errors import ConfigError
from coscope.flows.finish import finish_campaign
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.report.status import campaign_status, format_status
from coscope.scalarizers import scalarize
from coscope.storage import TraceStore

REGION = [0, 0, 5, 5]
CONSTRAINT = {"name": "coercive_field", "modality": "beps_loop", "op": "<=", "value": 4.0}


def _spec(tmp_path: Path, name: str = "c", **changes: Any) -> CampaignSpec:
    data: dict[str, Any] = {
        "name": name,
        "seed": 2,
        "sample": {"kind": "synthetic_film", "params": {"size": 10}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 30},
        "budget": {"max_measurements": 20},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / name),
    }
    data.update(changes)
    return parse_spec(data)


def _run(spec: CampaignSpec, finish: bool = False) -> Any:
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    if finish:
        finish_campaign(ctx, outcome)
    else:
        ctx.store.close()
    return outcome


def _failing(tmp_path: Path, name: str, **changes: Any) -> CampaignSpec:
    inst = {"name": "afm", "latency_s": 0.0, "noise": 0.02, "faults": {"bad_region": REGION}}
    return _spec(
        tmp_path,
        name,
        instruments=[inst],
        failures={"max_rate": 0.9, "min_failures": 50},
        **changes,
    )


def _in_region(store_path: Path) -> int:
    status = campaign_status(store_path)
    return int(status["failures"]["failed"])


def test_feasibility_learn_spends_less_in_a_failing_region(tmp_path: Path) -> None:
    plain = _failing(tmp_path, "plain")
    learn = _failing(tmp_path, "learn", feasibility="learn")
    _run(plain)
    _run(learn)
    failed_plain = _in_region(plain.resolved_store())
    failed_learn = _in_region(learn.resolved_store())
    assert failed_plain >= 4
    assert failed_learn < failed_plain
    status = campaign_status(learn.resolved_store())
    assert status["constraints"] == {"constraints": [], "feasibility": "learn"}
    assert "learned infeasible" in format_status(status)


def test_constrained_campaign_violates_less_than_plain_ei(tmp_path: Path) -> None:
    plain = _spec(tmp_path, "plain")
    constrained = _spec(tmp_path, "cons", constraints=[CONSTRAINT])
    _run(plain)
    _run(constrained)
    sample = sample_from_spec(constrained.sample, constrained.seed)
    axis = sample.info("beps_loop").axis

    def violated(spec: CampaignSpec) -> int:
        store = TraceStore.open(spec.resolved_store(), mode="r")
        values = [scalarize("coercive_field", m.signal, axis) for m in store.measurements()]
        return int(np.sum(np.array(values) > 4.0))

    assert violated(constrained) < violated(plain)
    status = campaign_status(constrained.resolved_store())
    (row,) = status["constraints"]["constraints"]
    assert row["constraint"] == "coercive_field <= 4" and row["measured"] == 20
    assert row["violated"] == violated(constrained)
    assert "coercive_field <= 4:" in format_status(status)


def test_stopping_rule_ends_early_says_why_and_resume_does_nothing(tmp_path: Path) -> None:
    stopping = {"rule": "ei_below", "threshold": 1e3, "patience": 2, "min_measurements": 6}
    spec = _spec(tmp_path, "stop", stopping=stopping)
    outcome = _run(spec, finish=True)
    assert outcome.status == "finished"
    assert outcome.n_measurements < 20
    assert outcome.reason.startswith("stopped early: expected improvement below 1000 for 2")
    status = campaign_status(spec.resolved_store())
    assert status["stopping"]["stopped"] and len(status["stopping"]["values"]) == 2
    assert status["finished_reason"] == outcome.reason
    assert "stopped early: expected improvement" in format_status(status)
    n = status["measurements"]["total"]
    # a resume (even with a larger budget) decides nothing more
    again = _run(
        spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_measurements": 30})})
    )
    assert again.n_measurements == n and again.reason.startswith("stopped early")
    store = TraceStore.open(spec.resolved_store(), mode="r")
    assert sum(i.kind == EARLY_STOP for i in store.interventions()) == 1
    assert store.counts()["decisions"] == n


def test_without_stopping_rule_it_runs_to_budget(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "budget", budget={"max_measurements": 8})
    outcome = _run(spec)
    assert outcome.n_measurements == 8 and "budget reached" in outcome.reason
    assert campaign_status(spec.resolved_store())["stopping"] is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"constraints": [{**CONSTRAINT, "name": "nope"}]}, "unknown scalarizer"),
        ({"constraints": [{**CONSTRAINT, "op": ">"}]}, "'>=' or '<='"),
        ({"constraints": [{**CONSTRAINT, "value": float("nan")}]}, "finite number"),
        ({"constraints": [CONSTRAINT, CONSTRAINT]}, "must differ"),
        ({"constraints": [CONSTRAINT], "policy": {"name": "ucb"}}, "need policy ei"),
        ({"constraints": [{**CONSTRAINT, "modality": "raman"}]}, "target modality"),
        ({"feasibility": "learn"}, "failures.max_rate > 0"),
        ({"feasibility": "maybe"}, "'ignore' or 'learn'"),
        ({"stopping": {"rule": "ei_below", "threshold": 0}}, "greater than 0"),
        ({"stopping": {"rule": "ei_below", "threshold": -1}}, "greater than 0"),
        ({"stopping": {"rule": "ei_below", "threshold": float("inf")}}, "finite number"),
        ({"stopping": {"rule": "soon", "threshold": 1}}, "'ei_below' or 'std_below'"),
        ({"stopping": {"rule": "ei_below", "threshold": 1, "patience": 0}}, "greater than"),
        (
            {"stopping": {"rule": "ei_below", "threshold": 1}, "policy": {"name": "ucb"}},
            "needs policy ei",
        ),
        (
            {"stopping": {"rule": "std_below", "threshold": 1}, "policy": {"name": "random"}},
            "GP acquisition",
        ),
    ],
)
def test_bad_constraint_specs_get_one_sentence(change: dict, words: str) -> None:
    data = {
        "sample": {"kind": "synthetic_film"},
        "instruments": [{"modalities": ["beps_loop", "raman"]}],
        **change,
    }
    with pytest.raises(ConfigError, match="invalid campaign spec") as err:
        parse_spec(data)
    message = str(err.value)
    assert words in message and "\n" not in message and message.endswith(".")


def test_bad_region_is_checked() -> None:
    inst = {"faults": {"bad_region": [3, 3, 2, 5]}}
    with pytest.raises(ConfigError, match="bad_region"):
        parse_spec({"instruments": [inst]})


def test_min_p_feasible_needs_a_constraint() -> None:
    with pytest.raises(ConfigError, match="min_p_feasible needs constraints"):
        parse_spec({"min_p_feasible": 0.5})


def test_mlflow_holds_p_feasible_of_every_policy_decision(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient  # heavy: this test only

    spec = _spec(tmp_path, "tracked", constraints=[CONSTRAINT], budget={"max_measurements": 7})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    logged = client.get_metric_history(summary["mlflow_run_id"], "decision.p_feasible")
    steps = sorted(m.step for m in logged)
    assert steps == [4, 5, 6]  # after the 4 random initial pixels
    assert all(0.0 <= m.value <= 1.0 for m in logged)
    constraints = client.get_metric_history(summary["mlflow_run_id"], "decision.p_constraints")
    assert sorted(m.step for m in constraints) == steps
