from __future__ import annotations

import pickle

import numpy as np
import pytest

from coscope.errors import ModelError
from coscope.models import GPState, fit_gp, load_model, predict
from coscope.types import FitRecord

H = W = 30


def _grid() -> np.ndarray:
    r, c = np.mgrid[0:H, 0:W]
    return np.stack([(r.ravel() + 0.5) / H, (c.ravel() + 0.5) / W], axis=1)


def _bump(X: np.ndarray) -> np.ndarray:
    return np.exp(-((X[:, 0] - 0.65) ** 2 + (X[:, 1] - 0.3) ** 2) / (2 * 0.15**2))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X_all = _grid()
    idx = rng.permutation(H * W)
    train, test = idx[:60], idx[60:]
    X, y = X_all[train], _bump(X_all[train])
    return X, y, X_all[test], _bump(X_all[test])


@pytest.fixture(scope="module")
def state(data):
    X, y, _, _ = data
    return fit_gp(X, y, seed=7)


def test_fit_recovers_bump(state, data):
    _, _, X_test, y_test = data
    mean, std = predict(state, X_test)
    rmse = float(np.sqrt(np.mean((mean - y_test) ** 2)))
    assert rmse < 0.1 * float(np.std(y_test))
    assert np.all(std >= 0) and np.all(np.isfinite(std))


def test_same_data_and_seed_is_bit_identical(state, data):
    X, y, X_test, _ = data
    again = fit_gp(X, y, seed=7)
    for k, v in state.hyperparameters.items():
        assert np.array_equal(v, again.hyperparameters[k]), k
    m1, s1 = predict(state, X_test)
    m2, s2 = predict(again, X_test)
    assert np.array_equal(m1, m2) and np.array_equal(s1, s2)


def test_state_is_plain_data_and_survives_pickle(state, data):
    _, _, X_test, _ = data
    assert isinstance(state, GPState)
    assert all(isinstance(v, np.ndarray) for v in state.hyperparameters.values())
    blob = pickle.dumps(state)
    assert len(blob) < 20_000
    restored = pickle.loads(blob)
    m1, s1 = predict(load_model(state), X_test)
    m2, s2 = predict(load_model(restored), X_test)
    assert np.array_equal(m1, m2) and np.array_equal(s1, s2)


def test_load_model_is_eval_mode_without_refit(state):
    model = load_model(state)
    assert not model.training
    ls = model.covar_module.lengthscale.detach().numpy().ravel()
    rec = state.record(3, 60)
    assert isinstance(rec, FitRecord)
    assert rec.version == 3 and rec.step == 60 and rec.n_train == 60
    assert rec.hyperparameters["lengthscale_0"] == pytest.approx(ls[0])
    assert set(rec.hyperparameters) >= {"lengthscale_0", "lengthscale_1", "outputscale", "noise"}
    assert all(np.isfinite(v) for v in rec.hyperparameters.values())


def test_batched_prediction_equals_unbatched(state, data):
    _, _, X_test, _ = data
    m1, s1 = predict(state, X_test, batch_size=len(X_test))
    m2, s2 = predict(state, X_test, batch_size=17)
    np.testing.assert_allclose(m1, m2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "n, constant",
    [(1, False), (2, False), (8, True)],
)
def test_degenerate_data_do_not_crash(n, constant):
    rng = np.random.default_rng(1)
    X = rng.random((n, 2))
    y = np.full(n, 3.5) if constant else _bump(X)
    st = fit_gp(X, y, seed=0)
    mean, std = predict(st, _grid())
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    assert np.isfinite(st.loss)
    if constant:
        np.testing.assert_allclose(mean, 3.5, atol=1e-6)
    assert all(np.isfinite(v) for v in st.record(0, n).hyperparameters.values())


def test_bad_data_raise_model_error():
    with pytest.raises(ModelError, match="non-finite|NaN"):
        fit_gp(np.zeros((2, 2)), np.array([1.0, np.nan]), seed=0)
    with pytest.raises(ModelError, match="shape"):
        fit_gp(np.zeros((3, 2)), np.zeros(2), seed=0)


def test_suspicious_fit_keeps_the_better_of_two_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the first optimum looks like "all noise", a short-lengthscale start is tried too."""
    from coscope.models import gp

    rng = np.random.default_rng(2)
    X = np.vstack([rng.random((40, 2)), 0.5 + 0.02 * rng.standard_normal((4, 2))])
    y = 10.0 + 30.0 * np.exp(-np.sum((X - 0.5) ** 2, axis=1) / (2 * 0.02**2))
    y += 0.1 * rng.standard_normal(44)
    _, default_loss = gp._fit_from(X, y, 100, start=None)
    _, short_loss = gp._fit_from(X, y, 100, start=gp._SHORT_START)
    assert short_loss < default_loss - 0.01  # two different optima on this data
    assert fit_gp(X, y, seed=0).loss == pytest.approx(default_loss)  # not suspicious: one start
    monkeypatch.setattr(gp, "_NOISE_SUSPECT", 0.0)  # every fit suspicious
    assert fit_gp(X, y, seed=0).loss == pytest.approx(short_loss)
