"""The twin's per-pixel maps: kept where predictive, dropped where not; calibration vs a grid."""

from __future__ import annotations

import numpy as np

from coscope.agents.calibration import ThetaSpace, calibrate, effective_points, log_likelihood
from coscope.instruments.physics import triangle_sweep
from coscope.instruments.theory import LGD_THETA, lgd_loops
from coscope.twin.fields import TwinFields, compose, decompose, shape_error

VOLTAGE = triangle_sweep(48, 8.0)
SIDE = 20


def _grid(seed: int, n: int):
    """``n`` random measured pixels of a ``SIDE x SIDE`` grid, the rest as test pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
    coords = np.c_[rows, cols] / (SIDE - 1)
    s = np.where(np.sin(5 * coords[:, 0]) + np.cos(4 * coords[:, 1]) > 0, 0.8, -0.8)
    theory = lgd_loops(VOLTAGE, s, {**LGD_THETA, "coercive_field": 2.5, "imprint_gain": 0.3})
    measured = np.sort(rng.choice(SIDE * SIDE, n, replace=False))
    test = np.setdiff1d(np.arange(SIDE * SIDE), measured)
    return rng, coords, theory, measured, test


SPACE = ThetaSpace.from_bounds({"coercive_field": [1.0, 5.0], "imprint_gain": [-1.0, 1.0]})


def _exact_emulator(s: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The LGD model itself as the 'emulator' (zero variance)."""
    theta = SPACE.from_unit(units)
    th = {**LGD_THETA, "coercive_field": theta[:, 0], "imprint_gain": theta[:, 1]}
    return lgd_loops(VOLTAGE, s, th), np.zeros((len(s), len(VOLTAGE)))


def test_decompose_and_compose_are_inverse() -> None:
    rng, _, theory, _, _ = _grid(0, 10)
    y = 3.0 * theory[:10] + 0.2 + 0.1 * rng.standard_normal((10, len(VOLTAGE)))
    parts = decompose(y, theory[:10])
    np.testing.assert_allclose(compose(parts, theory[:10]), y, atol=1e-12)
    assert np.all(np.abs(parts["corr"]) <= 1.0 + 1e-12)


def test_pure_noise_discrepancy_is_dropped_so_the_twin_is_the_theory() -> None:
    rng, coords, theory, measured, test = _grid(1, 40)
    # one gain and offset for the whole sample; the 'discrepancy' is white noise per pixel
    y = 2.0 * theory + 0.5 + 0.3 * rng.standard_normal(theory.shape)
    fields = TwinFields.fit(coords[measured], measured, y[measured], theory[measured])
    assert fields.fields["shape"].weight == 0.0
    parts, _ = fields.predict(test, coords[test])
    twin_minus_const = compose(parts, theory[test]) - compose(
        fields.constants(len(test)), theory[test]
    )
    # nothing beyond the constants is added: the twin is the calibrated theory there
    assert np.abs(twin_minus_const).max() < 0.05 * np.abs(2.0 * theory).max()
    # measured pixels keep their loops exactly
    back, var = fields.predict(measured[:5], coords[measured[:5]])
    np.testing.assert_allclose(compose(back, theory[measured[:5]]), y[measured[:5]], atol=1e-10)
    assert np.all(var["log_gain"] == 0.0)


def test_a_smooth_shape_discrepancy_is_kept_and_improves_the_shape() -> None:
    rng, coords, theory, measured, test = _grid(3, 60)
    bump = np.exp(-0.5 * ((np.arange(len(VOLTAGE)) - 12) / 3.0) ** 2)  # a feature the theory lacks
    amount = 0.8 * np.sin(3.0 * coords[:, 0] + 1.0) * np.cos(2.5 * coords[:, 1])
    y = theory + amount[:, None] * bump + 0.02 * rng.standard_normal(theory.shape)
    fields = TwinFields.fit(coords[measured], measured, y[measured], theory[measured])
    assert fields.fields["shape"].weight >= 0.5 and fields.fields["shape"].skill > 0.1
    parts, _ = fields.predict(test, coords[test])
    twin = compose(parts, theory[test])
    assert np.median(shape_error(twin, y[test])) < 0.6 * np.median(
        shape_error(theory[test], y[test])
    )


def test_gain_map_is_recovered_where_it_is_smooth() -> None:
    rng, coords, theory, measured, test = _grid(2, 60)
    log_gain = 1.5 * np.sin(3.0 * coords[:, 0]) * np.cos(2.0 * coords[:, 1])
    y = np.exp(log_gain)[:, None] * theory + 0.01 * rng.standard_normal(theory.shape)
    fields = TwinFields.fit(coords[measured], measured, y[measured], theory[measured])
    field = fields.fields["log_gain"]
    assert field.weight > 0.5 and field.skill > 0.8
    parts, var = fields.predict(test, coords[test])
    err = parts["log_gain"] - log_gain[test]
    flat_err = np.median(log_gain[measured]) - log_gain[test]
    assert np.sqrt(np.mean(err**2)) < 0.2 * np.sqrt(np.mean(flat_err**2))
    # the stated uncertainty covers the error (z-scores of order one)
    assert 0.3 < np.sqrt(np.mean(err**2 / var["log_gain"])) < 3.0


def test_importance_sampled_posterior_matches_a_brute_force_grid() -> None:
    space, emulate = SPACE, _exact_emulator

    rng = np.random.default_rng(5)
    s = rng.uniform(-1, 1, size=4)
    clean = lgd_loops(VOLTAGE, s, {**LGD_THETA, "coercive_field": 3.0, "imprint_gain": 0.2})
    y = rng.uniform(0.5, 2.0, (4, 1)) * clean + 0.3 * rng.standard_normal(clean.shape)
    post = calibrate(y, s, space, emulate, seed=0, n_eff=4.0)
    g = (np.arange(120) + 0.5) / 120
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    logp = log_likelihood(y, s, grid, emulate, 4.0).sum(0)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = space.from_unit(w @ grid)
    sd = np.sqrt(w @ (space.from_unit(grid) - mean) ** 2)
    assert post.ess > 50
    np.testing.assert_allclose(post.mean, mean, atol=0.15 * sd.max())
    np.testing.assert_allclose(post.std, sd, rtol=0.2)
    assert sd.min() > 0.02  # the grid resolves the posterior (it is not a spike)


def test_a_sharp_posterior_is_sampled_not_collapsed_onto_one_point() -> None:
    """Small noise and an exact theory: the posterior is ~100x narrower than the prior box; the
    adaptive importance sampler must still match a fine local grid (it used to end with an
    effective sample size of 1-5)."""
    space, emulate = SPACE, _exact_emulator

    rng = np.random.default_rng(8)
    s = rng.uniform(-1, 1, size=8)
    star = np.array([2.7, 0.35])
    clean = lgd_loops(VOLTAGE, s, {**LGD_THETA, "coercive_field": 2.7, "imprint_gain": 0.35})
    y = clean + 0.02 * rng.standard_normal(clean.shape)
    post = calibrate(y, s, space, emulate, seed=1, n_eff=48.0)
    half = np.array([0.06, 0.06])  # local window, in physical units
    g = (np.arange(101) / 100.0) * 2.0 - 1.0
    grid = star + np.stack(np.meshgrid(g * half[0], g * half[1], indexing="ij"), -1).reshape(-1, 2)
    logp = log_likelihood(y, s, space.to_unit(grid), emulate, 48.0).sum(0)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = w @ grid
    sd = np.sqrt(w @ (grid - mean) ** 2)
    assert np.all(sd < half / 4) and np.all(sd < 0.01 * (space.hi - space.lo))  # sharp, inside
    assert post.ess > 50
    np.testing.assert_allclose(post.mean, mean, atol=0.3 * sd.max())
    np.testing.assert_allclose(post.std, sd, rtol=0.3)


def test_effective_points_count_white_noise_fully_and_a_smooth_error_little() -> None:
    rng = np.random.default_rng(4)
    s = rng.uniform(-1, 1, size=24)
    unit = SPACE.to_unit(np.array([2.7, 0.35]))
    clean = _exact_emulator(s, np.repeat(unit[None], 24, 0))[0]
    white = clean + 0.02 * rng.standard_normal(clean.shape)
    n_white = effective_points(white, s, _exact_emulator, unit, 8.0)
    t = np.linspace(0.0, 1.0, len(VOLTAGE))
    wiggle = np.sin(2 * np.pi * (2 * t[None, :] + rng.uniform(0, 1, (24, 1))))
    smooth = clean + 0.05 * wiggle + 0.002 * rng.standard_normal(clean.shape)
    n_smooth = effective_points(smooth, s, _exact_emulator, unit, 8.0)
    assert n_white > 0.7 * len(VOLTAGE)
    assert n_smooth < 8.0
    assert effective_points(white[:3], s[:3], _exact_emulator, unit, 8.0) == 8.0  # too few
