"""Multi-objective campaigns: spec, qlognehvi through the real loop, front, status, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.pareto import pareto_mask
from coscope.replay.counterfactual import replay
from coscope.report.status import campaign_status
from coscope.scalarizers import scalarize
from tests.campaign.test_loop import _run, _spec

OBJECTIVES = [
    {"name": "loop_area", "modality": "beps_loop", "goal": "max"},
    {"name": "coercive_field", "modality": "beps_loop", "goal": "min"},
]
SIGNS = np.array([1.0, -1.0])


def _mo_spec(tmp_path: Path, **changes: Any):
    data: dict[str, Any] = {
        "objectives": OBJECTIVES,
        "sample": {"kind": "synthetic_film", "params": {"size": 16}},
        "policy": {
            "name": "qlognehvi",
            "n_initial": 4,
            "fit_iterations": 30,
            "params": {"mc_samples": 32},
        },
        "budget": {"max_measurements": 10},
    }
    data.update(changes)
    return _spec(tmp_path, **data)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    outcome, ctx = _run(_mo_spec(tmp_path_factory.mktemp("mo")))
    return outcome, ctx


def test_qlognehvi_campaign_finishes_without_repeats(campaign) -> None:
    outcome, ctx = campaign
    assert outcome.status == "finished" and "measurement budget" in outcome.reason
    decisions = ctx.store.decisions()
    assert len(decisions) == 10
    assert len({(d.location.row, d.location.col) for d in decisions}) == 10
    assert [d.policy for d in decisions[:4]] == ["random"] * 4
    assert all(d.policy == "qlognehvi" and np.isfinite(d.score) for d in decisions[4:])
    assert ctx.spec.scalarizer.name == "loop_area"  # reward and maps follow the first objective


def test_hypervolume_never_falls_and_status_shows_a_non_dominated_front(campaign) -> None:
    outcome, ctx = campaign
    volumes = [row["hypervolume"] for row in outcome.history]
    assert len(volumes) == 10 and volumes[-1] > 0
    assert all(b >= a - 1e-12 for a, b in zip(volumes, volumes[1:], strict=False))
    pareto = campaign_status(ctx.store.path)["pareto"]
    assert [o["goal"] for o in pareto["objectives"]] == ["max", "min"]
    assert pareto["hypervolume"] == pytest.approx(volumes[-1])
    assert len(pareto["points"]) == outcome.history[-1]["pareto_size"]
    front = np.array([p["values"] for p in pareto["points"]]) * SIGNS
    assert pareto_mask(front).all()
    on_front = {p["step"] for p in pareto["points"]}
    assert (front > np.array(pareto["ref_point"]) * SIGNS).all()
    axis = ctx.sample.info("beps_loop").axis
    for m in ctx.store.measurements():  # every other measured point is dominated by the front
        y = np.array([scalarize(o["name"], m.signal, axis) for o in OBJECTIVES]) * SIGNS
        better = (front >= y).all(1) & (front > y).any(1)
        assert better.any() != (m.step in on_front)


def test_same_seed_same_trace(campaign, tmp_path: Path) -> None:
    _, ctx = campaign
    _, again = _run(_mo_spec(tmp_path))
    first, second = ctx.store.decisions(), again.store.decisions()
    assert [d.location for d in first] == [d.location for d in second]
    assert [d.policy for d in first] == [d.policy for d in second]
    np.testing.assert_array_equal([d.score for d in first], [d.score for d in second])


def test_a_baseline_campaign_logs_the_front_too(tmp_path: Path) -> None:
    outcome, ctx = _run(_mo_spec(tmp_path, policy={"name": "random"}))
    assert outcome.status == "finished"
    assert all(np.isfinite(row["hypervolume"]) for row in outcome.history)
    assert campaign_status(ctx.store.path)["pareto"]["points"]


def test_replay_refuses_a_multi_objective_campaign_in_one_sentence(campaign) -> None:
    _, ctx = campaign
    with pytest.raises(ConfigError, match="do not follow multi-objective") as err:
        replay(ctx.store.path)
    assert str(err.value).count(". ") == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"objectives": []}, "needs objectives"),
        ({"objectives": OBJECTIVES[:1]}, "at least two entries"),
        ({"objectives": [OBJECTIVES[0], {**OBJECTIVES[1], "goal": "up"}]}, "'max' or 'min'"),
        ({"objectives": [OBJECTIVES[0], {**OBJECTIVES[1], "name": "nope"}]}, "unknown scalarizer"),
        ({"objectives": [OBJECTIVES[0], OBJECTIVES[0]]}, "must differ"),
        (
            {"objectives": [OBJECTIVES[0], {**OBJECTIVES[1], "modality": "raman"}]},
            "one modality",
        ),
        ({"policy": {"name": "ei"}}, "multi-objective policy or a baseline"),
        ({"policy": {"name": "qlognehvi", "params": {"mc_samples": 3}}}, "16..1024"),
        ({"policy": {"name": "qlognehvi", "model": "dkl"}}, "works with model gp"),
    ],
)
def test_bad_objectives_get_one_sentence(change: dict, words: str) -> None:
    data = {
        "sample": {"kind": "synthetic_film"},
        "policy": {"name": "qlognehvi"},
        "objectives": OBJECTIVES,
        **change,
    }
    with pytest.raises(ConfigError, match="invalid campaign spec") as err:
        parse_spec(data)
    message = str(err.value)
    assert words in message and "\n" not in message and message.endswith(".")


def test_mlflow_holds_the_hypervolume_of_every_step(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient  # heavy: this test only

    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.flows.finish import finish_campaign
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )

    spec = _mo_spec(tmp_path, budget={"max_measurements": 6})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    logged = client.get_metric_history(summary["mlflow_run_id"], "hypervolume")
    logged = sorted(logged, key=lambda m: m.step)
    assert [m.step for m in logged] == [int(row["step"]) for row in outcome.history]
    assert [m.value for m in logged] == pytest.approx([r["hypervolume"] for r in outcome.history])
    assert summary["status"] == "finished"
    report = spec.resolved_run_dir() / "report"
    assert (report / "front.png").stat().st_size > 0
    written = json.loads((report / "summary.json").read_text())
    assert written["pareto"]["hypervolume"] == pytest.approx(outcome.history[-1]["hypervolume"])


def test_a_resumed_campaign_continues_as_the_uninterrupted_one(campaign, tmp_path: Path) -> None:
    _, ctx = campaign
    first, _ = _run(_mo_spec(tmp_path, budget={"max_measurements": 6}))
    assert first.status == "finished"
    outcome, resumed = _run(_mo_spec(tmp_path))  # same store, budget raised to 10
    assert [d.location for d in resumed.store.decisions()] == [
        d.location for d in ctx.store.decisions()
    ]
    volumes = [row["hypervolume"] for row in first.history + outcome.history]
    assert all(b >= a - 1e-12 for a, b in zip(volumes, volumes[1:], strict=False))
    assert (
        campaign_status(resumed.store.path)["pareto"] == campaign_status(ctx.store.path)["pareto"]
    )


def test_a_failing_objective_is_refused_before_the_run(tmp_path: Path) -> None:
    from coscope.infra.compose import check_spec_fits_sample, sample_from_spec

    broken = {"name": "tests.user_scalarizers:broken", "modality": "beps_loop", "goal": "min"}
    spec = _mo_spec(tmp_path, objectives=[OBJECTIVES[0], broken])
    with pytest.raises(ConfigError, match="tests.user_scalarizers:broken") as err:
        check_spec_fits_sample(spec, sample_from_spec(spec.sample, spec.seed))
    assert "\n" not in str(err.value)


def test_steering_keeps_the_policy_of_the_objectives_kind(tmp_path: Path) -> None:
    from coscope.campaign.adopt import facts_of
    from coscope.campaign.steering import (
        InterventionError,
        Settings,
        apply,
        effective_spec,
        validate,
    )
    from coscope.types import Intervention

    spec = _mo_spec(tmp_path)
    facts = facts_of(spec, (16, 16), {})
    settings = Settings.from_spec(spec)
    with pytest.raises(InterventionError, match="lists objectives; use one of qlognehvi"):
        validate("policy", {"name": "ei"}, settings, facts)
    payload = validate("policy", {"name": "random"}, settings, facts)  # a baseline: allowed
    steered = effective_spec(spec, apply(settings, Intervention("policy", payload)))
    assert steered.policy.name == "random" and steered.objectives == spec.objectives
    single = _spec(tmp_path)
    with pytest.raises(InterventionError, match="needs objectives"):
        validate(
            "policy",
            {"name": "qlognehvi"},
            Settings.from_spec(single),
            facts_of(single, (24, 24), {}),
        )
