from __future__ import annotations

import dataclasses
import pickle
import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, uniform_filter

from coscope.errors import ConfigError, ModelError
from coscope.models import (
    DKLState,
    embed,
    fit_dkl,
    fit_gp,
    fit_model,
    model_kinds,
    patch_features,
    predict,
    predict_dkl,
)
from coscope.types import FitRecord, Location

N = 40
WINDOW = 7


def wall_sample(size: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A domain image (walls where a smooth random field changes sign, plus noise) and a
    property that is a nonlinear function of the local wall density (5 x 5 window)."""
    rng = np.random.default_rng(seed)
    domains = np.sign(gaussian_filter(rng.normal(size=(size, size)), 2.0, mode="reflect"))
    walls = np.zeros_like(domains)
    step_r = domains[:-1] != domains[1:]
    step_c = domains[:, :-1] != domains[:, 1:]
    walls[:-1] += step_r
    walls[1:] += step_r
    walls[:, :-1] += step_c
    walls[:, 1:] += step_c
    walls = (walls > 0).astype(float)
    structure = walls + 0.05 * rng.normal(size=walls.shape)
    prop = np.tanh(4.0 * uniform_filter(walls, size=5, mode="reflect"))
    return structure, prop


# ------------------------------------------------------------------ patches
def test_patch_shape_order_and_centre():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(6, 9))
    F = patch_features(img, 3)
    assert F.shape == (54, 9) and F.dtype == np.float64
    z = (img - img.mean()) / img.std()
    loc = Location(4, 7)
    np.testing.assert_allclose(F[loc.flat(9), 4], z[4, 7])  # centre
    np.testing.assert_allclose(F[loc.flat(9)].reshape(3, 3), z[3:6, 6:9])  # whole patch
    np.testing.assert_allclose(F[:, 4], z.ravel())  # every centre, row-major


def test_patch_edges_reflect_and_channels():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(2, 5, 5))
    F = patch_features(img, 3)
    assert F.shape == (25, 18)
    z = (img - img.mean(axis=(1, 2), keepdims=True)) / img.std(axis=(1, 2), keepdims=True)
    corner = F[0].reshape(2, 3, 3)
    np.testing.assert_allclose(corner[1, 1, 1], z[1, 0, 0])
    np.testing.assert_allclose(corner[0, 0, 0], z[0, 1, 1])  # reflect: (-1, -1) -> (1, 1)
    np.testing.assert_allclose(corner[0, 0, 2], z[0, 1, 1])  # (-1, 1) -> (1, 1)
    np.testing.assert_allclose(corner[0, 2, 1], z[0, 1, 0])


def test_patch_constant_channel_is_zero_and_window_one_is_identity():
    assert np.all(patch_features(np.ones((4, 4)), 3) == 0)
    img = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(patch_features(img, 1)[:, 0], (img.ravel() - 5.5) / img.std())


@pytest.mark.parametrize(
    ("shape", "window"), [((5, 5), 0), ((5, 5), 11), ((5,), 3), ((1, 2, 3, 4), 1)]
)
def test_patch_bad_input(shape, window):
    with pytest.raises(ConfigError):
        patch_features(np.zeros(shape), window)


def test_patches_are_vectorised():
    img = np.random.default_rng(0).normal(size=(316, 316))  # ~100k pixels
    t0 = time.perf_counter()
    F = patch_features(img, 11)
    assert F.shape == (316 * 316, 121)
    assert time.perf_counter() - t0 < 5.0  # ~0.2 s here; generous for loaded CI


# ------------------------------------------------------------------ DKL
@pytest.fixture(scope="module")
def case():
    structure, prop = wall_sample()
    F = patch_features(structure, WINDOW)
    y = prop.ravel()
    r, c = np.divmod(np.arange(N * N), N)
    X = np.stack([(r + 0.5) / N, (c + 0.5) / N], axis=1)
    idx = np.random.default_rng(3).permutation(N * N)
    return F, X, y, idx[:80], idx[80:]


@pytest.fixture(scope="module")
def state(case):
    F, _, y, train, _ = case
    return fit_dkl(F[train], y[train], seed=11)


def test_dkl_learns_structure_map_a_coordinate_gp_cannot(state, case):
    F, X, y, train, test = case
    mean, std = predict_dkl(state, F[test])
    rmse_dkl = float(np.sqrt(np.mean((mean - y[test]) ** 2)))
    gp_mean, _ = predict(fit_gp(X[train], y[train], seed=11), X[test])
    rmse_gp = float(np.sqrt(np.mean((gp_mean - y[test]) ** 2)))
    # measured: DKL ~0.07, coordinate GP ~0.24, property std ~0.34
    assert rmse_dkl < 0.6 * rmse_gp
    assert rmse_dkl < 0.4 * float(np.std(y))
    assert np.all(np.isfinite(std)) and np.all(std >= 0)


def test_same_data_seed_is_bit_identical_and_pickles(state, case):
    F, _, y, train, test = case
    again = fit_dkl(F[train], y[train], seed=11)
    for k, v in state.parameters.items():
        assert np.array_equal(v, again.parameters[k]), k
    m1, s1 = predict_dkl(state, F[test])
    m2, s2 = predict_dkl(again, F[test])
    assert np.array_equal(m1, m2) and np.array_equal(s1, s2)
    blob = pickle.dumps(state)
    assert len(blob) < 200_000
    back = pickle.loads(blob)
    assert isinstance(back, DKLState)
    m3, s3 = predict_dkl(back, F[test])
    assert np.array_equal(m1, m3) and np.array_equal(s1, s3)


def test_other_seed_differs_and_global_rng_untouched(case):
    import torch

    F, _, y, train, _ = case
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = fit_dkl(F[train[:20]], y[train[:20]], seed=1, iterations=5)
    assert torch.equal(torch.rand(1), before)
    b = fit_dkl(F[train[:20]], y[train[:20]], seed=2, iterations=5)
    key = "feature_extractor.0.weight"
    assert not np.array_equal(a.parameters[key], b.parameters[key])


def test_batches_do_not_change_predictions(state, case):
    F, *_ = case
    m1, s1 = predict_dkl(state, F, batch_size=4096)
    m2, s2 = predict_dkl(state, F, batch_size=97)
    np.testing.assert_allclose(m1, m2, atol=1e-10)
    np.testing.assert_allclose(s1, s2, atol=1e-10)


def test_embed_shape_and_record(state, case):
    F, *_ = case
    Z = embed(state, F)
    assert Z.shape == (N * N, 2) and np.isfinite(Z).all()
    rec = state.record(3, 80)
    assert isinstance(rec, FitRecord) and rec.version == 3 and rec.n_train == 80
    assert {"lengthscale_0", "lengthscale_1", "noise", "outputscale"} <= set(rec.hyperparameters)
    with pytest.raises(ModelError):
        embed(state, F[:, :5])


def test_warm_start_is_opt_in_and_checked(state, case):
    F, _, y, train, _ = case
    assert not state.warm and state.iterations == 100  # cold unless init is given
    # the anchor's own data and 20 steps: with the tight default fit (noise ~1e-3 of the
    # variance) Adam's first few steps from a restart cost more than the guard's slack
    warm = fit_dkl(F[train], y[train], seed=11, init=state, warm_iterations=20)
    assert warm.warm and warm.iterations == 20
    key = "feature_extractor.0.weight"
    assert np.abs(warm.parameters[key] - state.parameters[key]).max() < 0.25
    again = fit_dkl(F[train], y[train], seed=11, init=state, warm_iterations=20)
    assert all(np.array_equal(v, again.parameters[k]) for k, v in warm.parameters.items())
    with pytest.raises(ModelError):
        fit_dkl(F[train, :10], y[train], seed=0, init=state)


def test_warm_start_guard_redoes_a_worse_fit_cold(state, case):
    F, _, y, train, _ = case
    cold = fit_dkl(F[train[:50]], y[train[:50]], seed=4, iterations=20)
    # an anchor claiming a far better likelihood than any fit reaches: the warm fit is worse
    proud = dataclasses.replace(state, loss=state.loss - 10.0)
    redo = fit_dkl(F[train[:50]], y[train[:50]], seed=4, iterations=20, init=proud)
    assert not redo.warm and redo.iterations == 20
    assert all(np.array_equal(v, cold.parameters[k]) for k, v in redo.parameters.items())


def test_warm_start_guard_catches_a_collapsed_fit(state, case):
    F, _, y, train, _ = case
    params = dict(state.parameters)
    params["covar_module.raw_outputscale"] = np.array(-30.0)  # signal variance ~ 1e-13
    flat = dataclasses.replace(state, parameters=params, loss=1e9)  # loss guard cannot trip
    redo = fit_dkl(F[train[:50]], y[train[:50]], seed=4, init=flat, warm_iterations=1)
    assert not redo.warm
    lax = dataclasses.replace(state, loss=1e9)
    kept = fit_dkl(F[train[:50]], y[train[:50]], seed=4, init=lax, warm_iterations=1)
    assert kept.warm


def test_tiny_and_constant_data(case):
    F, _, _, train, _ = case
    one = fit_dkl(F[train[:1]], np.array([2.0]), seed=0, iterations=10)
    mean, std = predict_dkl(one, F[:5])
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    flat = fit_dkl(F[train[:6]], np.full(6, 3.0), seed=0, iterations=10)
    mean, _ = predict_dkl(flat, F[:5])
    np.testing.assert_allclose(mean, 3.0, atol=1e-6)


def test_bad_data_raises():
    with pytest.raises(ModelError):
        fit_dkl(np.zeros((3, 4)), np.zeros(2), seed=0)
    with pytest.raises(ModelError):
        fit_dkl(np.full((3, 4), np.nan), np.zeros(3), seed=0)


def test_fit_model_dispatches_by_kind(case):
    F, X, y, train, _ = case
    assert {"gp", "dkl"} <= set(model_kinds())
    s = fit_model("dkl", F[train[:10]], y[train[:10]], 5, 5, latent_dim=3)
    assert isinstance(s, DKLState) and s.latent_dim == 3
    g = fit_model("gp", X[train[:10]], y[train[:10]], 5, 20)
    assert g.n_train == 10
    with pytest.raises(ConfigError):
        fit_model("nope", X, y, 0, 1)
    with pytest.raises(ConfigError):
        fit_model("gp", X, y, 0, 1, latent_dim=2)
