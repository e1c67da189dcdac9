"""Hypothesis learning through the real loop: evidence per step in the trace and MLflow,
the verdict in status and the report, resume, bad specs (docs/hypotheses.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coscope.config import CampaignSpec, parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import create_or_open_store, sample_from_spec
from coscope.replay.counterfactual import replay
from coscope.replay.retrace import retrace
from coscope.report.status import campaign_status, format_status
from coscope.storage.datasets import Dataset, write_dataset
from coscope.trust import user_code_in
from coscope.types import ModalityInfo
from tests.campaign.test_loop import _path, _run

SIZE = 16
MODELS = [{"law": "domain_wall"}, {"law": "gaussian_peak"}, {"law": "none", "name": "plain"}]
NAMES = ("domain_wall", "gaussian_peak", "plain")


def wall_truth(size: int = SIZE) -> np.ndarray:
    """``size x size`` domain wall plus a smooth non-physical residual (rows, cols in
    normalised coordinates)."""
    g = np.linspace(0.0, 1.0, size)
    r, c = np.meshgrid(g, g, indexing="ij")
    along = (r - 0.5) * np.cos(0.6) + (c - 0.5) * np.sin(0.6)
    return -0.5 + 1.5 * np.tanh((along - 0.1) / 0.05) + 0.2 * np.sin(3 * r) * np.cos(2 * c)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = Dataset(
        name="wall",
        source="test: domain_wall law with a residual",
        structure={"topo": np.zeros((SIZE, SIZE))},
        modalities={"height": ModalityInfo("height", np.zeros(1), "index", "", "nm")},
        signals={"height": wall_truth()[..., None]},
    )
    return write_dataset(ds, tmp_path_factory.mktemp("wall") / "wall.zarr")


def _spec(tmp_path: Path, data: Path, **changes) -> CampaignSpec:
    spec = {
        "name": "hypotheses",
        "seed": 5,
        "sample": {"kind": "dataset", "params": {"path": str(data)}},
        "instruments": [{"name": "afm", "modalities": ["height"], "latency_s": 0.0, "noise": 0.02}],
        "scalarizer": {"name": "mean", "modality": "height"},
        "policy": {"name": "hypotheses", "models": MODELS, "n_initial": 4, "fit_iterations": 40},
        "budget": {"max_measurements": 8},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    spec.update(changes)
    return parse_spec(spec)


def test_campaign_weighs_the_hypotheses_each_step_and_names_the_verdict(
    tmp_path: Path, data: Path
) -> None:
    outcome, ctx = _run(_spec(tmp_path / "a", data))
    assert outcome.status == "finished" and outcome.n_measurements == 8
    decisions = ctx.store.decisions()
    assert all(d.policy == "hypotheses" for d in decisions[4:])
    assert all(np.isfinite(d.score) for d in decisions[4:])
    # one fit per hypothesis per new datum, each with its evidence and probability
    fits = ctx.store.fits()
    assert [f.n_train for f in fits] == [n for n in range(1, 9) for _ in NAMES]
    assert [f.hyperparameters["hypothesis"] for f in fits] == list(NAMES) * 8
    for n in range(8):
        refresh = fits[3 * n : 3 * n + 3]
        assert sum(f.hyperparameters["prob"] for f in refresh) == pytest.approx(1.0)
        assert sum(f.hyperparameters["leading"] for f in refresh) == 1.0
        assert all(np.isfinite(f.hyperparameters["elpd"]) for f in refresh)
    assert fits[0].hyperparameters["law"] == "domain_wall" and "law" not in fits[2].hyperparameters
    # every measurement's row carries each hypothesis' probability (MLflow metrics)
    for row in outcome.history:
        probs = [row[f"hypothesis.{name}.prob"] for name in NAMES]
        assert sum(probs) == pytest.approx(1.0)
    last = outcome.history[-1]
    assert last["hypothesis.domain_wall.prob"] > 0.9  # the true law leads after 8
    status = campaign_status(ctx.store.path)
    verdict = status["hypotheses"]
    assert verdict["leading"] == "domain_wall" and verdict["n_observations"] == 8
    assert verdict["probability"] == pytest.approx(last["hypothesis.domain_wall.prob"])
    assert status["model"]["law"] == "domain_wall"  # the leading hypothesis' fit
    assert "hypotheses domain_wall leads with p=" in format_status(status)
    assert "after 8 measurements" in format_status(status)
    json.dumps(status)
    # Same seed, same trace: stopped at 6 and resumed to 8 it decides and fits the same.
    part, _ = _run(_spec(tmp_path / "b", data, budget={"max_measurements": 6}))
    assert part.n_measurements == 6
    resumed, again = _run(_spec(tmp_path / "b", data))
    assert resumed.n_measurements == 8
    assert _path(again.store) == _path(ctx.store)
    np.testing.assert_array_equal(
        [d.score for d in again.store.decisions()], [d.score for d in decisions]
    )
    assert [f.hyperparameters for f in again.store.fits()] == [f.hyperparameters for f in fits]
    # Replay rebuilds the agent from the trace and decides the same; retrace conditions the
    # leading hypothesis' final fit on each step's data.
    replayed = replay(ctx.store.path, metrics=False)
    assert replayed.first_divergence is None and replayed.agreement == 1.0
    explained = retrace(ctx.store.path)
    assert all(np.isfinite(r["mean"]) for r in explained.rows[1:])


def test_mlflow_and_the_report_get_the_evidence(tmp_path: Path, data: Path) -> None:
    """A tracked run (real MLflow, sqlite in the run folder) and its report."""
    from mlflow.tracking import MlflowClient  # heavy: only for this test

    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.flows.finish import finish_campaign
    from coscope.infra.compose import instruments_from_spec, open_context

    spec = _spec(tmp_path, data, budget={"max_measurements": 5})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    for name in NAMES:
        history = client.get_metric_history(summary["mlflow_run_id"], f"hypothesis.{name}.prob")
        assert len(history) == 5
    report = json.loads((Path(summary["report"]) / "summary.json").read_text())
    assert report["hypotheses"]["leading"] in NAMES
    assert set(report["hypotheses"]["probabilities"]) == set(NAMES)


@pytest.mark.parametrize(
    ("models", "words"),
    [
        ([{"law": "parabola"}, {"law": "linear"}], "unknown mean law 'parabola'"),
        ([{"law": "domain_wall"}], "list two or more in policy.models, got 1"),
        ([{"law": "linear"}, {"law": "linear"}], "names ['linear'] more than once"),
        (
            [
                {"law": "none", "priors": {"a": {"dist": "normal", "loc": 0, "scale": 1}}},
                {"law": "linear"},
            ],
            "has no law to put priors on",
        ),
        (None, "policy hypotheses needs policy.models"),
    ],
)
def test_bad_hypotheses_specs_are_one_sentence(tmp_path: Path, data: Path, models, words) -> None:
    policy = {"name": "hypotheses", "models": models}
    with pytest.raises(ConfigError) as info:
        _spec(tmp_path, data, policy=policy)
    message = str(info.value)
    assert words in message and "Traceback" not in message and "\n" not in message.strip()


def test_models_need_the_hypotheses_policy(tmp_path: Path, data: Path) -> None:
    with pytest.raises(ConfigError, match="policy.models needs name: hypotheses"):
        _spec(tmp_path, data, policy={"name": "ei", "models": MODELS})


def test_a_user_law_among_the_hypotheses_is_user_code_of_the_trace(
    tmp_path: Path, data: Path
) -> None:
    law = {"law": "mylaws.physics:plane", "priors": {"a": {"dist": "normal", "loc": 0, "scale": 1}}}
    spec = _spec(tmp_path, data, policy={"name": "hypotheses", "models": [law, {"law": "none"}]})
    store, _ = create_or_open_store(spec, sample_from_spec(spec.sample, spec.seed))
    assert user_code_in(store) == ["mylaws.physics:plane"]
    store.close()
