"""Multi-task GP: learns the sign of the task correlation, deterministic, heterotopic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coscope.errors import ConfigError, ModelError
from coscope.models.fitting import fit_model
from coscope.models.multitask import load_multitask


def _data(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    task = rng.integers(0, 2, n)
    f = np.sin(4 * x[:, 0]) + x[:, 1]
    y = np.where(task == 0, 10 * f + 100, -f) + 0.01 * rng.normal(size=n)
    return np.column_stack([x, task]), y


def test_learns_a_negative_task_correlation_and_per_task_units() -> None:
    X, y = _data()
    state = fit_model("multitask", X, y, 0, 60, n_tasks=2)
    corr = state.task_correlation()
    assert corr[0, 1] < -0.8
    hp = state.named_hyperparameters()
    assert hp["task_corr_0_1"] == pytest.approx(corr[0, 1])
    model = load_multitask(state)
    with torch.no_grad():
        mean = model.posterior(torch.as_tensor(X[:5])).mean.reshape(-1).numpy()
    tasks = X[:5, -1].astype(int)
    back = mean * state.y_std[tasks] + state.y_mean[tasks]
    np.testing.assert_allclose(back, y[:5], atol=0.5)  # interpolates in each task's units


def test_same_data_and_seed_give_the_same_state() -> None:
    X, y = _data(20)
    a = fit_model("multitask", X, y, 3, 30, n_tasks=2)
    b = fit_model("multitask", X, y, 3, 30, n_tasks=2)
    for key in a.hyperparameters:
        np.testing.assert_array_equal(a.hyperparameters[key], b.hyperparameters[key])


def test_a_task_without_data_is_allowed_and_a_bad_task_column_is_refused() -> None:
    X, y = _data(12)
    state = fit_model("multitask", X, y, 0, 20, n_tasks=3)  # task 2 never measured
    assert state.task_covariance().shape == (3, 3)
    assert state.y_std[2] == 1.0 and state.y_mean[2] == 0.0
    bad = X.copy()
    bad[0, -1] = 5
    with pytest.raises(ModelError, match="task indices"):
        fit_model("multitask", bad, y, 0, 20, n_tasks=2)
    with pytest.raises(ConfigError, match="does not take"):
        fit_model("multitask", X, y, 0, 20, latent_dim=2)
