"""The cached-factor latent GP, streamed patches and float32 embedding of large grids."""

from __future__ import annotations

import gpytorch
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from coscope.agents.acquisition import build_acquisition, evaluate
from coscope.errors import ConfigError, ModelError
from coscope.models import embed, fit_dkl, load_latent_model, patch_features, predict
from coscope.models.latent_gp import LatentGP
from coscope.models.patches import PatchGrid

_rng = np.random.default_rng(0)
IMAGE = gaussian_filter(_rng.normal(size=(30, 30)), 1.5)
FEATURES = patch_features(IMAGE, 5)
TARGET = np.tanh(FEATURES[:, 10:15].sum(axis=1))
TRAIN = _rng.choice(900, size=60, replace=False)


@pytest.fixture(scope="module")
def fitted():
    state = fit_dkl(FEATURES[TRAIN], TARGET[TRAIN], seed=3, iterations=30)
    gp = load_latent_model(state)
    return state, gp, LatentGP.from_model(gp), embed(state, FEATURES)


def _exact(model, Z):
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
        post = model.posterior(torch.as_tensor(Z).unsqueeze(-2))
        return post.mean.reshape(-1).numpy(), post.variance.reshape(-1).clamp_min(0).numpy()


def test_moments_equal_the_botorch_exact_posterior(fitted):
    _, gp, fast, Z = fitted
    mean, std = predict(fast, Z)
    ref_mean, ref_var = _exact(gp, Z)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-10)
    np.testing.assert_allclose(std**2, ref_var, atol=1e-10)
    assert std.min() < 0.5 * std.max()  # measured pixels are less uncertain: not a flat map


@pytest.mark.parametrize("policy", ["ei", "ucb", "maxvar"])
def test_acquisition_scores_equal_botorch(fitted, policy):
    state, gp, fast, Z = fitted
    X = torch.as_tensor(Z)
    a = evaluate(build_acquisition(policy, fast, best_f=float(state.y.max())), X).numpy()
    b = evaluate(build_acquisition(policy, gp, best_f=float(state.y.max())), X).numpy()
    np.testing.assert_allclose(a, b, atol=1e-7)
    assert int(np.argmax(a)) == int(np.argmax(b))


def test_conditioning_equals_botorch(fitted):
    _, gp, fast, Z = fitted
    Zb = torch.as_tensor(Z[:4])
    Yb = torch.as_tensor(predict(fast, Z[:4])[0]).unsqueeze(-1)
    mean, std = predict(fast.condition_on_observations(Zb, Yb), Z)
    ref = gp.condition_on_observations(Zb, Yb)
    ref.eval()
    ref_mean, ref_var = _exact(ref, Z)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-10)
    np.testing.assert_allclose(std**2, ref_var, atol=1e-10)
    assert np.all(std[:4] < predict(fast, Z[:4])[1])  # believed points lose uncertainty


def test_only_q1_batches(fitted):
    _, _, fast, Z = fitted
    with pytest.raises(ModelError):
        fast.posterior(torch.as_tensor(Z[:4]).reshape(2, 2, 2))


def test_patch_grid_rows_are_the_patch_features_bit_for_bit():
    img = np.random.default_rng(1).normal(size=(2, 13, 17))
    grid, F = PatchGrid(img, 5), patch_features(img, 5)
    assert grid.shape == F.shape and len(grid) == 13 * 17
    idx = np.array([0, 5, 220, 17, 16])
    assert np.array_equal(grid[idx], F[idx])
    blocks = list(grid.blocks(40))
    assert all(len(rows) <= 40 for _, rows in blocks)  # two image rows (34 pixels) per block
    assert np.array_equal(np.concatenate([rows for _, rows in blocks]), F)
    assert np.array_equal(PatchGrid(img, 4)[idx], patch_features(img, 4)[idx])  # even: fine
    with pytest.raises(ConfigError):
        PatchGrid(img, 0)
    with pytest.raises(IndexError):
        grid[np.array([13 * 17])]


def test_embed_streams_a_patch_grid_and_float32_agrees(fitted):
    state, *_ = fitted
    Z64 = embed(state, FEATURES)
    assert np.array_equal(embed(state, PatchGrid(IMAGE, 5), batch_size=64), Z64)
    Z32 = embed(state, PatchGrid(IMAGE, 5), dtype=torch.float32)
    np.testing.assert_allclose(Z32, Z64, atol=1e-4 * np.abs(Z64).max())
    assert not np.array_equal(Z32, Z64)  # it did compute in float32
