"""The closed-form knowledge gain equals the variance drop of brute-force conditioning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coscope.agents.knowledge_gain import knowledge_gain, posterior_mean, posterior_terms
from coscope.models.fitting import fit_model
from coscope.models.multitask import icm_kernel, load_multitask


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(16, 2))
    task = np.arange(16) % 2
    y = np.where(task == 0, np.sin(3 * x[:, 0]), -np.sin(3 * x[:, 0])) + 0.01 * rng.normal(size=16)
    state = fit_model("multitask", np.column_stack([x, task]), y, 0, 40, n_tasks=2)
    model = load_multitask(state)
    return model, icm_kernel(model), state


def test_numpy_kernel_and_posterior_match_the_fitted_model(fitted) -> None:
    model, kernel, state = fitted
    rows = np.array([[0.1, 0.2, 0.0], [0.5, 0.9, 1.0], [0.7, 0.3, 1.0]])
    with torch.no_grad():
        expected = model.covar_module(torch.as_tensor(rows), torch.as_tensor(state.X)).to_dense()
        post = model.posterior(torch.as_tensor(rows))
    np.testing.assert_allclose(kernel(rows, state.X), expected.numpy(), rtol=1e-9, atol=1e-12)
    tasks = state.X[:, -1].astype(int)
    ys = (state.y - state.y_mean[tasks]) / state.y_std[tasks]
    mean, var = posterior_mean(kernel, state.X, ys, rows)
    np.testing.assert_allclose(mean, post.mean.reshape(-1).numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var, post.variance.reshape(-1).numpy(), rtol=1e-5, atol=1e-9)


def _mean_target_var(kernel, conditioning, reference) -> float:
    return float(posterior_terms(kernel, conditioning, reference, reference)[1].mean())


def test_gain_is_the_drop_of_mean_target_variance(fitted) -> None:
    _, kernel, state = fitted
    X = state.X
    grid = np.array([[r, c] for r in np.linspace(0, 1, 6) for c in np.linspace(0, 1, 6)])
    reference = np.column_stack([grid, np.zeros(len(grid))])
    candidates = np.array([[0.3, 0.7, 1.0], [0.9, 0.1, 0.0], [0.5, 0.5, 1.0]])
    cov, var = posterior_terms(kernel, X, candidates, reference)
    gain = knowledge_gain(cov, var, kernel.noise[candidates[:, -1].astype(int)])
    before = _mean_target_var(kernel, X, reference)
    for i, cand in enumerate(candidates):
        after = _mean_target_var(kernel, np.vstack([X, cand]), reference)
        assert gain[i] == pytest.approx(before - after, rel=1e-4, abs=1e-9)
    assert np.all(gain > 0)


def test_a_pending_point_as_fantasy_leaves_little_to_gain_there(fitted) -> None:
    _, kernel, state = fitted
    X, noise = state.X, kernel.noise
    cand = np.array([[0.95, 0.95, 1.0]])
    reference = np.column_stack([np.full((4, 2), 0.95), np.zeros(4)])
    free = knowledge_gain(*posterior_terms(kernel, X, cand, reference), noise[[1]])
    busy = knowledge_gain(
        *posterior_terms(kernel, np.vstack([X, cand]), cand, reference), noise[[1]]
    )
    assert busy[0] < 0.5 * free[0]
