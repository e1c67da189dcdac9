"""VAE latents as multi-task targets: the real loop, resume, VAE versions, gain, bad specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.agents.test_multitask_agent import _run
from tests.agents.test_multitask_agent import _spec as _base_spec

from coscope.agents.latent_agent import LatentMultiTaskAgent
from coscope.agents.multitask_agent import MultiTaskAgent
from coscope.errors import ConfigError

LATENT = {"refit_growth": 1.5, "latent_dim": 2, "vae_epochs": 120}


def _spec(tmp_path: Path, params: dict | None = None, **changes):
    policy = {
        "name": "gain_per_cost",
        "model": "multitask",
        "n_initial": 4,
        "fit_iterations": 30,
        "params": LATENT if params is None else params,
    }
    return _base_spec(tmp_path, policy=policy, **changes)


def _decisions(ctx) -> list[tuple[str, str, object]]:
    return [(d.instrument, d.modality, d.location) for d in ctx.store.decisions()]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    outcome, ctx = _run(_spec(tmp_path_factory.mktemp("latent")))
    yield outcome, ctx
    ctx.store.close()


def test_latent_campaign_runs_through_the_loop(whole) -> None:
    outcome, ctx = whole
    agent = ctx.agent
    assert isinstance(agent, LatentMultiTaskAgent)
    assert outcome.status == "finished" and outcome.n_measurements == 14
    pairs = [(d.modality, d.location) for d in ctx.store.decisions()]
    assert len(set(pairs)) == len(pairs)
    assert any(
        d.policy == "gain_per_cost" and d.modality == "pfm_loop" for d in ctx.store.decisions()
    )
    assert agent.task_covariance().shape == (4, 4)  # (raman, pfm_loop) x 2 latents
    X, y = agent.all_data()
    assert len(y) == 2 * outcome.n_measurements and set(X[:, -1]) == {0.0, 1.0, 2.0, 3.0}
    report = agent.report()  # the target scalarizer on the decoded spectra, its units
    assert report.mean.shape == (6, 6) and np.isfinite(report.mean).all()
    assert 100 < np.nanmean(report.mean) < 250 and (report.std >= 0).all()
    assert np.isfinite(outcome.history[-1]["rmse"])
    spectra = agent.predict_spectra("raman")
    assert spectra.shape == (6, 6, 256) and np.isfinite(spectra).all()


def test_vae_fits_are_recorded_as_model_versions(whole) -> None:
    _, ctx = whole
    fits = ctx.store.fits()
    vae_rows = [f for f in fits if f.hyperparameters.get("vae") == 1.0]
    gp_rows = [f for f in fits if "vae" not in f.hyperparameters]
    assert {f.hyperparameters["modality_index"] for f in vae_rows} == {0.0, 1.0}
    assert gp_rows and [f.version for f in fits] == list(range(len(fits)))
    raman = ctx.agent.vae("raman")
    n_raman = sum(d.modality == "raman" for d in ctx.store.decisions())
    assert raman is not None and 3 <= raman.n_train <= n_raman


def test_latent_campaign_resumes_to_the_same_decisions(whole, tmp_path: Path) -> None:
    _run(_spec(tmp_path, budget={"max_measurements": 8}))[1].store.close()
    _, ctx = _run(_spec(tmp_path))
    resumed = _decisions(ctx)
    fits = [(f.n_train, f.loss) for f in ctx.store.fits()]
    ctx.store.close()
    assert resumed == _decisions(whole[1])
    # the rebuilt agent's refits on the stored data (VAEs, GP) are not recorded a second time
    assert len(fits) == len(set(fits))
    straight = sorted((f.n_train, f.loss) for f in whole[1].store.fits())
    assert [n for n, _ in sorted(fits)] == [n for n, _ in straight]  # the same model versions
    np.testing.assert_allclose([x for _, x in sorted(fits)], [x for _, x in straight], rtol=1e-8)


def test_joint_latent_gain_reduces_to_the_scalar_gain_for_one_latent(tmp_path: Path) -> None:
    _, ctx = _run(
        _spec(tmp_path, {"latent_dim": 1, "vae_epochs": 60}, budget={"max_measurements": 10})
    )
    agent = ctx.agent
    ctx.store.close()
    assert agent._ensure_model()
    tasks, flats = np.array([0, 1, 0, 1]), np.array([0, 5, 17, 30])
    costs = np.array([10.0, 1.0, 10.0, 1.0])
    pend = np.array([1]), np.array([12])
    joint = agent._scores(tasks, flats, *pend, costs)
    scalar = MultiTaskAgent._scores(agent, tasks, flats, *pend, costs)
    np.testing.assert_allclose(joint, scalar, rtol=1e-8, atol=1e-12)
    assert (joint > 0).all()


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"latent_dim": 9}, "integer 0..8"),
        ({"latent_dim": 1.5}, "integer 0..8"),
        ({"vae_epochs": 100}, "need latent_dim >= 1"),
        ({"latent_dim": 2, "vae_growth": 0.5}, "a number >= 1"),
        ({"latent_dim": 2, "background_fit": 1}, "background_fit"),
    ],
)
def test_bad_latent_specs_are_one_sentence(tmp_path: Path, params: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        _spec(tmp_path, params)
    assert str(info.value).startswith("invalid campaign spec") and "\n" not in str(info.value)


def test_latent_dim_zero_keeps_the_scalar_agent(tmp_path: Path) -> None:
    from coscope.agents.chooser_spec import chooser_from_spec
    from coscope.infra.compose import sample_from_spec

    spec = _spec(tmp_path, {"latent_dim": 0})
    agent = chooser_from_spec(spec, sample_from_spec(spec.sample, spec.seed))
    assert type(agent) is MultiTaskAgent


def test_the_vae_example_logs_its_vae_fits_to_mlflow(tmp_path: Path) -> None:
    """The example, tracked in real MLflow: VAE fits and GP fits both land as fit metrics."""
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

    example = Path(__file__).resolve().parents[2] / "examples" / "co_orchestration_vae.yaml"
    changes = {"run_dir": str(tmp_path / "run"), "budget": {"max_measurements": 9}}
    spec = load_spec(example, changes)
    assert spec.policy.params["latent_dim"] == 2
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=True)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    summary = finish_campaign(ctx, outcome)
    ctx.store.close()
    client = MlflowClient(spec.resolved_tracking_uri())
    metrics = client.get_run(summary["mlflow_run_id"]).data.metrics
    assert {"fit.hp.vae", "fit.hp.modality_index", "fit.hp.task_cov_0_1"} <= set(metrics)
