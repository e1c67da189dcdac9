"""A structured-GP campaign through the real loop: law parameters per fit, determinism,
resume, status (docs/structured-gp.md)."""

from __future__ import annotations

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
from coscope.types import Intervention, ModalityInfo
from tests.campaign.test_loop import _path, _run

SIZE = 16
PEAK = {"offset": 1.0, "amplitude": 2.0, "centre_0": 0.35, "centre_1": 0.6, "width": 0.15}


def peak_truth(size: int = SIZE) -> np.ndarray:
    """``size x size`` map of a Gaussian peak over normalised coordinates (rows, cols)."""
    g = np.linspace(0.0, 1.0, size)
    r, c = np.meshgrid(g, g, indexing="ij")
    d2 = (r - PEAK["centre_0"]) ** 2 + (c - PEAK["centre_1"]) ** 2
    return PEAK["offset"] + PEAK["amplitude"] * np.exp(-d2 / (2 * PEAK["width"] ** 2))


def peak_dataset(path: Path) -> Path:
    """A recorded sample whose one-point ``height`` signal follows the peak law."""
    truth = peak_truth()
    ds = Dataset(
        name="peak",
        source="test: gaussian_peak law",
        structure={"topo": np.zeros((SIZE, SIZE))},
        modalities={"height": ModalityInfo("height", np.zeros(1), "index", "", "nm")},
        signals={"height": truth[..., None]},
    )
    return write_dataset(ds, path)


def _spec(tmp_path: Path, data: Path, **changes) -> CampaignSpec:
    spec = {
        "name": "structured",
        "seed": 3,
        "sample": {"kind": "dataset", "params": {"path": str(data)}},
        "instruments": [{"name": "afm", "modalities": ["height"], "latency_s": 0.0, "noise": 0.02}],
        "scalarizer": {"name": "mean", "modality": "height"},
        "policy": {
            "name": "ei",
            "model": "structured",
            "mean": {"law": "gaussian_peak"},
            "n_initial": 4,
            "fit_iterations": 40,
        },
        "budget": {"max_measurements": 9},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    spec.update(changes)
    return parse_spec(spec)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return peak_dataset(tmp_path_factory.mktemp("peak") / "peak.zarr")


def test_campaign_records_law_parameters_deterministically_and_resumes(
    tmp_path: Path, data: Path
) -> None:
    outcome, ctx = _run(_spec(tmp_path / "a", data))
    assert outcome.status == "finished" and outcome.n_measurements == 9
    decisions = ctx.store.decisions()
    assert all(d.policy == "ei" for d in decisions[4:])
    fits = ctx.store.fits()
    assert [f.n_train for f in fits] == list(range(1, 10))
    for f in fits:
        hp = f.hyperparameters
        assert hp["law"] == "gaussian_peak"
        for name in PEAK:
            assert np.isfinite(hp[f"law.{name}"])
            assert f"law.{name}.std" in hp
    status = campaign_status(ctx.store.path)
    model = status["model"]
    assert model["kind"] == "structured" and model["law"] == "gaussian_peak"
    assert model["version"] == fits[-1].version
    assert model["law_parameters"]["width"]["value"] == pytest.approx(
        fits[-1].hyperparameters["law.width"]
    )
    assert "gaussian_peak: offset" in format_status(status)
    # Same seed, same trace: a second campaign stopped at 6 and resumed to 9 decides and
    # fits exactly as the uninterrupted one.
    part, _ = _run(_spec(tmp_path / "b", data, budget={"max_measurements": 6}))
    assert part.n_measurements == 6
    resumed, again = _run(_spec(tmp_path / "b", data))
    assert resumed.n_measurements == 9
    assert _path(again.store) == _path(ctx.store)
    assert [f.hyperparameters for f in again.store.fits()] == [f.hyperparameters for f in fits]
    # Replay rebuilds the structured agent from the trace and decides the same; retrace
    # conditions the final structured fit on each step's data.
    replayed = replay(ctx.store.path, metrics=False)
    assert replayed.first_divergence is None and replayed.agreement == 1.0
    explained = retrace(ctx.store.path)
    assert all(np.isfinite(r["mean"]) for r in explained.rows[4:])


def test_a_user_law_is_user_code_of_the_trace(tmp_path: Path, data: Path) -> None:
    spec = _spec(
        tmp_path,
        data,
        policy={
            "name": "ei",
            "model": "structured",
            "mean": {
                "law": "mylaws.physics:plane",
                "priors": {"level": {"dist": "normal", "loc": 0.0, "scale": 1.0}},
            },
        },
    )
    store, _ = create_or_open_store(spec, sample_from_spec(spec.sample, spec.seed))
    assert user_code_in(store) == ["mylaws.physics:plane"]
    law = {"law": "otherlaws.walls:kink", "priors": {"a": {"dist": "normal", "loc": 0, "scale": 1}}}
    store.append_intervention(Intervention("policy", {"mean": law}, step=0, who="t", why=""))
    assert user_code_in(store) == ["mylaws.physics:plane", "otherlaws.walls:kink"]
    store.close()


@pytest.mark.parametrize(
    ("mean", "words"),
    [
        ({"law": "parabola"}, "unknown mean law 'parabola'"),
        (
            {
                "law": "gaussian_peak",
                "priors": {"height": {"dist": "normal", "loc": 0, "scale": 1}},
            },
            "has no parameter(s) ['height']",
        ),
        (
            {"law": "domain_wall", "priors": {"width": {"dist": "gamma", "concentration": 2}}},
            "takes exactly concentration and rate",
        ),
        (
            {"law": "linear", "priors": {"offset": {"dist": "normal", "loc": 0, "scale": -1}}},
            "needs positive scale",
        ),
    ],
)
def test_bad_mean_specs_are_one_sentence(tmp_path: Path, data: Path, mean, words) -> None:
    policy = {"name": "ei", "model": "structured", "mean": mean}
    with pytest.raises(ConfigError) as info:
        _spec(tmp_path, data, policy=policy)
    message = str(info.value)
    assert words in message and "Traceback" not in message


def test_mlflow_gets_the_law_parameters_per_fit(tmp_path: Path, data: Path) -> None:
    """A tracked run (real MLflow, sqlite in the run folder): law MAP and std per fit."""
    from mlflow.tracking import MlflowClient  # heavy: only for this test

    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.flows.finish import finish_campaign
    from coscope.infra.compose import instruments_from_spec, open_context

    spec = _spec(tmp_path, data, budget={"max_measurements": 6})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    run_id = finish_campaign(ctx, outcome)["mlflow_run_id"]
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    width = client.get_metric_history(run_id, "fit.hp.law.width")
    assert [m.step for m in width] == [f.step for f in ctx.store.fits()]
    assert "fit.hp.law.width.std" in client.get_run(run_id).data.metrics
