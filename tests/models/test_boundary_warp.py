"""The learned boundary warp: finds a known step, numpy kernel == gpytorch, state round trips."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from coscope.agents.knowledge_gain import posterior_mean
from coscope.errors import ConfigError, ModelError
from coscope.models.boundary_warp import stump_starts
from coscope.models.fitting import fit_model
from coscope.models.multitask import icm_kernel, load_multitask

TRUE_DIR = np.array([0.3, 0.7]) / np.hypot(0.3, 0.7)
TRUE_OFFSET = 0.55


def _step_data(n: int = 48, seed: int = 0):
    """Two tasks on a grid-like design in [0, 1]^2, both jumping across one straight
    boundary ``TRUE_DIR . x = TRUE_OFFSET`` (task 0 up by 20, task 1 down), smooth otherwise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    task = np.arange(n) % 2
    side = x @ TRUE_DIR > TRUE_OFFSET
    y = np.where(task == 0, 150 + 3 * x[:, 0] + 20 * side, 1.0 - 0.2 * x[:, 1] - 0.9 * side)
    return np.column_stack([x, task]), y + 0.01 * rng.normal(size=n)


@pytest.fixture(scope="module")
def fitted():
    X, y = _step_data()
    return fit_model("multitask", X, y, 0, 60, n_tasks=2, rank=1, boundaries=1), X, y


def _grid(n: int = 41) -> np.ndarray:
    g = np.linspace(0, 1, n)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def test_stump_search_finds_the_step_direction_and_offset() -> None:
    X, y = _step_data()
    tasks = X[:, -1].astype(int)
    ys = np.where(tasks == 0, (y - y[tasks == 0].mean()) / y[tasks == 0].std(), 0.0)
    ys = np.where(tasks == 1, (y - y[tasks == 1].mean()) / y[tasks == 1].std(), ys)
    starts = stump_starts(X[:, :2], ys, tasks, 2, k=1, n_starts=3)
    direction, offset, jump = starts[0]
    assert jump[0] * jump[1] < 0 and np.all(np.abs(jump) > 1.0)  # opposite, large jumps
    cos = abs(float(direction[0] @ TRUE_DIR))
    assert cos > np.cos(np.radians(12))
    grid = _grid()
    sign = np.sign(direction[0] @ TRUE_DIR)
    agree = np.mean(
        (grid @ direction[0] > offset[0]) == (sign * (grid @ TRUE_DIR - TRUE_OFFSET) > 0)
    )
    assert agree > 0.93
    assert len(starts) == 3  # further starts: other directions, at least 20 degrees apart
    d = np.array([s[0][0] for s in starts])
    assert np.all(np.abs(d @ d.T)[~np.eye(3, dtype=bool)] < np.cos(np.radians(20)))


def test_fitted_boundary_matches_the_truth_and_beats_the_plain_kernel(fitted) -> None:
    state, X, y = fitted
    kernel = icm_kernel(load_multitask(state))
    grid = _grid()
    s = kernel.warp(grid)[:, 2]
    truth = grid @ TRUE_DIR > TRUE_OFFSET
    agree = np.mean((s > 0.5) == truth)
    assert max(agree, 1 - agree) > 0.95
    assert abs(float(kernel.direction[0] @ TRUE_DIR)) > np.cos(np.radians(10))
    plain = fit_model("multitask", X, y, 0, 60, n_tasks=2, rank=1)
    assert state.loss < plain.loss - 0.3  # the boundary explains the data far better
    hp = state.named_hyperparameters()  # logged with every fit (trace, MLflow)
    assert hp["boundary_0_dir_0"] == pytest.approx(kernel.direction[0, 0])
    assert hp["boundary_0_offset"] == pytest.approx(kernel.offset[0])
    assert hp["boundary_0_width"] >= 0.01 and hp["boundary_0_lengthscale"] > 0
    assert {"lengthscale_0", "lengthscale_1", "task_corr_0_1"} <= set(hp)
    assert hp["task_corr_0_1"] < -0.3  # one jumps up where the other drops
    # cross-boundary correlation is low where the data say so
    a, b = np.array([[0.2, 0.2, 0.0]]), np.array([[0.8, 0.8, 0.0]])
    near = np.array([[0.25, 0.25, 0.0]])
    assert kernel(a, b)[0, 0] < 0.5 * kernel(a, near)[0, 0]


def test_numpy_kernel_equals_the_gpytorch_covariance_and_posterior(fitted) -> None:
    state, X, _ = fitted
    model = load_multitask(state)
    kernel = icm_kernel(model)
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.uniform(size=(9, 2)), np.arange(9) % 2])
    with torch.no_grad():
        expected = model.covar_module(torch.as_tensor(rows), torch.as_tensor(X)).to_dense()
        post = model.posterior(torch.as_tensor(rows))
    np.testing.assert_allclose(kernel(rows, X), expected.numpy(), rtol=0, atol=1e-8)
    tasks = X[:, -1].astype(int)
    ys = (state.y - state.y_mean[tasks]) / state.y_std[tasks]
    mean, var = posterior_mean(kernel, X, ys, rows)
    np.testing.assert_allclose(mean, post.mean.reshape(-1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, post.variance.reshape(-1).numpy(), rtol=1e-4, atol=1e-7)


def test_state_round_trips_as_plain_data_and_fits_are_deterministic(fitted) -> None:
    state, X, y = fitted
    back = pickle.loads(pickle.dumps(state))  # what crossing to / from a Dask worker does
    assert back.boundaries == 1
    rows = np.column_stack([_grid(7), np.zeros(49)])
    np.testing.assert_array_equal(
        icm_kernel(load_multitask(back))(rows, X), icm_kernel(load_multitask(state))(rows, X)
    )
    again = fit_model("multitask", X, y, 0, 60, n_tasks=2, rank=1, boundaries=1)
    for key in state.hyperparameters:
        np.testing.assert_array_equal(state.hyperparameters[key], again.hyperparameters[key])
    plain = fit_model("multitask", X, y, 0, 30, n_tasks=2, rank=1)
    assert plain.boundaries == 0 and not any(
        k.startswith("boundary") for k in plain.hyperparameters
    )


@pytest.mark.parametrize("bad", [-1, 5, 1.5, "one"])
def test_a_bad_boundaries_option_is_one_sentence(bad) -> None:
    X, y = _step_data(12)
    with pytest.raises(ModelError, match="boundaries must be an integer 0..4") as info:
        fit_model("multitask", X, y, 0, 5, n_tasks=2, boundaries=bad)
    assert "\n" not in str(info.value)


def test_fit_option_is_checked_by_name() -> None:
    X, y = _step_data(12)
    with pytest.raises(ConfigError, match="does not take"):
        fit_model("multitask", X, y, 0, 5, n_tasks=2, boundary=1)


@pytest.mark.slow
def test_a_boundary_fit_on_a_dask_worker_process_gives_the_same_state(fitted) -> None:
    """The real path: ``DaskExecutor.fit`` on a LocalCluster worker process."""
    from coscope.infra.dask import dask_client
    from coscope.infra.executors import DaskExecutor

    state, X, y = fitted
    with dask_client(None, 1) as client:
        executor = DaskExecutor(client, {}, seed=0, time_scale=0.0, fit_via_prefect=False)
        remote = executor.fit("multitask", X, y, 0, 60, {"n_tasks": 2, "rank": 1, "boundaries": 1})
    assert remote.boundaries == 1
    for key in state.hyperparameters:
        np.testing.assert_allclose(remote.hyperparameters[key], state.hyperparameters[key])


def test_three_inputs_and_tiny_data_work() -> None:
    """With a feature column (d = 3: seeded random directions) the step is still found; two
    points of one task (one per side at most) still give a usable fit."""
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(40, 3))
    task = np.arange(40) % 2
    side = x[:, 2] > 0.4  # the boundary lies along the feature, as with use_structure
    y = np.where(task == 0, 5.0 * side, -3.0 * side) + 0.01 * rng.normal(size=40)
    state = fit_model("multitask", np.column_stack([x, task]), y, 1, 40, n_tasks=2, boundaries=1)
    kernel = icm_kernel(load_multitask(state))
    assert abs(kernel.direction[0, 2]) > 0.9
    tiny = fit_model(
        "multitask",
        np.array([[0.1, 0.2, 0.0], [0.8, 0.9, 0.0]]),
        np.array([1.0, 2.0]),
        0,
        10,
        n_tasks=2,
        boundaries=1,
    )
    rows = np.array([[0.5, 0.5, 1.0]])
    assert np.isfinite(icm_kernel(load_multitask(tiny))(rows, tiny.X)).all()
