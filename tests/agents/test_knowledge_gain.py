"""The closed-form knowledge gain equals the variance drop of brute-force conditioning."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.agents.knowledge_gain import knowledge_gain, posterior_terms
from coscope.models.fitting import fit_model
from coscope.models.multitask import load_multitask, task_noise


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(16, 2))
    task = np.arange(16) % 2
    y = np.where(task == 0, np.sin(3 * x[:, 0]), -np.sin(3 * x[:, 0])) + 0.01 * rng.normal(size=16)
    state = fit_model("multitask", np.column_stack([x, task]), y, 0, 40, n_tasks=2)
    return load_multitask(state), state.X


def _mean_target_var(model, noise, conditioning, reference) -> float:
    _, var = posterior_terms(model.covar_module, noise, conditioning, reference, reference)
    return float(var.mean())


def test_gain_is_the_drop_of_mean_target_variance(model) -> None:
    gp, X = model
    noise = task_noise(gp)
    grid = np.array([[r, c] for r in np.linspace(0, 1, 6) for c in np.linspace(0, 1, 6)])
    reference = np.column_stack([grid, np.zeros(len(grid))])
    candidates = np.array([[0.3, 0.7, 1.0], [0.9, 0.1, 0.0], [0.5, 0.5, 1.0]])
    cov, var = posterior_terms(gp.covar_module, noise, X, candidates, reference)
    gain = knowledge_gain(cov, var, noise[candidates[:, -1].astype(int)])
    before = _mean_target_var(gp, noise, X, reference)
    for i, cand in enumerate(candidates):
        after = _mean_target_var(gp, noise, np.vstack([X, cand]), reference)
        assert gain[i] == pytest.approx(before - after, rel=1e-4, abs=1e-9)
    assert np.all(gain > 0)


def test_a_pending_point_as_fantasy_leaves_little_to_gain_there(model) -> None:
    gp, X = model
    noise = task_noise(gp)
    cand = np.array([[0.95, 0.95, 1.0]])
    reference = np.column_stack([np.full((4, 2), 0.95), np.zeros(4)])
    free = knowledge_gain(*posterior_terms(gp.covar_module, noise, X, cand, reference), noise[[1]])
    busy = knowledge_gain(
        *posterior_terms(gp.covar_module, noise, np.vstack([X, cand]), cand, reference),
        noise[[1]],
    )
    assert busy[0] < 0.5 * free[0]
