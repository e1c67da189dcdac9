"""The shared-kernel multi-output GP: fit, predict, leave-one-out error, state round trip."""

from __future__ import annotations

import numpy as np

from coscope.models.multioutput_gp import SharedKernelGP


def _data(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    t = np.linspace(0, 1, 5)
    Y = np.sin(3 * X[:, :1] + t[None, :]) * (1 + X[:, 1:]) + 0.01 * rng.standard_normal((n, 5))
    return X, Y


def test_fit_predicts_held_out_points_and_knows_its_uncertainty() -> None:
    X, Y = _data(40)
    gp = SharedKernelGP.fit(X[:30], Y[:30])
    mean, var = gp.predict(X[30:])
    assert mean.shape == (10, 5) and var.shape == (10,)
    assert np.sqrt(np.mean((mean - Y[30:]) ** 2)) < 0.05 * Y.std()
    _, far = gp.predict(np.array([[5.0, 5.0]]))
    assert far[0] > 10 * var.max()  # far from the data the variance returns to the prior


def test_closed_form_leave_one_out_matches_refitting_without_the_point() -> None:
    X, Y = _data(12, seed=1)
    gp = SharedKernelGP.fit(X, Y)
    errors = []
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        sub = SharedKernelGP(X[keep], gp.y_mean, gp.y_std, gp.lengthscale, gp.signal, gp.noise)
        sub._factor((Y[keep] - gp.y_mean) / gp.y_std)
        errors.append(sub.predict(X[i : i + 1])[0][0] - Y[i])
    np.testing.assert_allclose(gp.loo_mse(), np.mean(np.square(errors), axis=0), rtol=1e-6)


def test_state_round_trip() -> None:
    X, Y = _data(20)
    gp = SharedKernelGP.fit(X, Y)
    back = SharedKernelGP.from_state(gp.state())
    Xs = np.random.default_rng(2).uniform(size=(7, 2))
    for a, b in zip(gp.predict(Xs), back.predict(Xs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
