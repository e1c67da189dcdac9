"""DKL options of issue 18: config checks, CNN extractor, restarts, even windows, quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError, ModelError
from coscope.models import embed, fit_dkl, load_latent_model, patch_features, predict_dkl
from coscope.models.dkl_config import DKLConfig
from coscope.models.dkl_train import loo_score  # noqa: F401  (public helper)

H = W = 16
_rng = np.random.default_rng(5)
IMAGE = _rng.normal(size=(H, W))
F5 = patch_features(IMAGE, 5)
Y = np.tanh(F5[:, 12] + 0.5 * F5[:, 7])
TRAIN = np.random.default_rng(1).permutation(H * W)[:30]


@pytest.mark.parametrize(
    "bad",
    [
        {"latent_dim": 0},
        {"extractor": "rnn"},
        {"activation": "gelu"},
        {"hidden": ()},
        {"lr_gp": 0.0},
        {"noise_init": 1e-5},
        {"inputs": "pca"},
        {"restarts": 0},
        {"select": "aic"},
    ],
)
def test_config_refuses_bad_options_in_one_sentence(bad):
    with pytest.raises(ConfigError, match="^DKL options: "):
        DKLConfig(**bad)


def test_cnn_extractor_fits_predicts_and_checks_patch_shape():
    cfg = DKLConfig(extractor="cnn")
    state = fit_dkl(F5[TRAIN], Y[TRAIN], seed=0, iterations=15, config=cfg)
    mean, std = predict_dkl(state, F5)
    assert mean.shape == (H * W,) and np.isfinite(mean).all() and (std >= 0).all()
    assert state.config.extractor == "cnn"
    assert any(k.startswith("feature_extractor.1.") for k in state.parameters)  # the conv
    again = fit_dkl(F5[TRAIN], Y[TRAIN], seed=0, iterations=15, config=cfg)
    assert all(np.array_equal(v, again.parameters[k]) for k, v in state.parameters.items())
    with pytest.raises(ConfigError, match="square"):
        fit_dkl(F5[TRAIN, :24], Y[TRAIN], seed=0, iterations=2, config=cfg)


def test_restarts_keep_the_best_by_the_chosen_score_and_are_deterministic():
    one = fit_dkl(F5[TRAIN], Y[TRAIN], seed=3, iterations=15)
    mll = fit_dkl(F5[TRAIN], Y[TRAIN], seed=3, iterations=15, config=DKLConfig(restarts=3))
    assert mll.loss <= one.loss + 1e-12
    loo = fit_dkl(
        F5[TRAIN], Y[TRAIN], seed=3, iterations=15, config=DKLConfig(restarts=3, select="loo")
    )
    assert loo.loo >= one.loo - 1e-12 and np.isfinite(loo.loo)
    again = fit_dkl(
        F5[TRAIN], Y[TRAIN], seed=3, iterations=15, config=DKLConfig(restarts=3, select="loo")
    )
    assert again.seed == loo.seed and again.loss == loo.loss
    assert "loo" in loo.record(0, 30).hyperparameters


def test_warm_start_needs_the_same_config():
    state = fit_dkl(F5[TRAIN], Y[TRAIN], seed=0, iterations=5)
    with pytest.raises(ModelError, match="Drop init"):
        fit_dkl(F5[TRAIN], Y[TRAIN], seed=0, config=DKLConfig(activation="tanh"), init=state)


def test_even_window_patch_puts_the_pixel_at_w_half():
    img = np.arange(64.0).reshape(8, 8)
    F = patch_features(img, 4)
    z = (img - img.mean()) / img.std()
    assert F.shape == (64, 16)
    np.testing.assert_allclose(F[3 * 8 + 4].reshape(4, 4), z[1:5, 2:6])  # rows r-2 .. r+1


def test_quantile_scaling_ignores_monotone_distortions_and_spikes():
    spiky = IMAGE.copy()
    spiky[3, 4] = 1e6  # a spike: squashes a z-score, not a quantile
    a = patch_features(spiky, 3, scaling="quantile")
    b = patch_features(np.arcsinh(spiky) ** 3, 3, scaling="quantile")  # monotone
    np.testing.assert_allclose(a, b)
    rest = np.arange(H * W) != 3 * W + 4  # every pixel but the spike
    assert patch_features(spiky, 3)[rest, 4].std() < 0.1 < a[rest, 4].std()
    with pytest.raises(ConfigError, match="scaling"):
        patch_features(IMAGE, 3, scaling="log")


def test_targets_in_tiny_units_are_standardised_and_predicted_in_their_units():
    scale = 1e-10  # e.g. a PFM amplitude in metres
    state = fit_dkl(F5[TRAIN], scale * Y[TRAIN], seed=0, iterations=30)
    ref = fit_dkl(F5[TRAIN], Y[TRAIN], seed=0, iterations=30)
    assert state.y_std == pytest.approx(scale * ref.y_std)
    mean, std = predict_dkl(state, F5)
    mean_ref, std_ref = predict_dkl(ref, F5)
    np.testing.assert_allclose(mean, scale * mean_ref, rtol=1e-6, atol=1e-6 * scale)
    assert np.isfinite(std).all()  # (gpytorch floors a posterior variance at 1e-10 y units)
    import torch

    from coscope.models.latent_gp import LatentGP

    Z = torch.as_tensor(embed(state, F5))
    _, var = LatentGP.from_model(load_latent_model(state)).moments(Z)
    _, var_ref = LatentGP.from_model(load_latent_model(ref)).moments(Z)
    np.testing.assert_allclose(var.numpy(), scale**2 * var_ref.numpy(), rtol=1e-6)
