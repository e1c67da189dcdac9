"""Multi-task (ICM) GP over heterotopic data: one scalar per modality, task covariance learned.

Model: ``f(x, t)`` with ``Cov(f(x, s), f(x', t)) = B[s, t] k(x, x')``, ``k`` an ARD RBF kernel
on the inputs (coordinates in ``[0, 1]^d``) and ``B = W W^T + diag(v)`` a learned task
covariance of rank ``rank`` (a free-sign :class:`gpytorch.kernels.IndexKernel`; botorch's
default ``PositiveIndexKernel`` would forbid the negative correlations physics often gives,
e.g. loop area falling where a Raman mode shifts up). Each task has its own Gaussian noise.
It is botorch's :class:`~botorch.models.MultiTaskGP` with that task kernel swapped in.

Targets are standardised **per task** before fitting (mean ``y_mean[t]``, std ``y_std[t]``),
so ``B`` is in standard units of each task and comparable across modalities; the state keeps
both so predictions come back in each task's own units. Tasks without data keep
``y_mean = 0``, ``y_std = 1``.

Data convention (so fits go through :func:`coscope.models.fitting.fit_model`): ``X`` is
``n x (d + 1)``, the last column the task index ``0..n_tasks-1`` as a float.

With ``boundaries = K > 0`` the RBF acts on warped inputs ``[x, s_1(x) .. s_K(x)]``, each
``s_k`` a learned sigmoid boundary shared by all tasks (:mod:`coscope.models.boundary_warp`),
started from a decision-stump search on the standardised data of all tasks.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MultiTaskGP
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.kernels import IndexKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from coscope.errors import ModelError
from coscope.models.boundary_warp import (
    MAX_BOUNDARIES,
    S_LENGTHSCALE_INIT,
    BoundaryKernel,
    BoundaryWarp,
    stump_starts,
)
from coscope.models.icm import IcmKernel
from coscope.models.training import FitRecordMixin, check_training_data

DTYPE = torch.float64
N_STARTS = 3
"""Boundary fits: decision-stump starts tried (best marginal likelihood kept)."""


@dataclass(frozen=True, eq=False)
class MultiTaskState(FitRecordMixin):
    """A fitted multi-task GP as plain data.

    Attributes:
        X: Inputs with the task column last, ``n x (d + 1)`` float64.
        y: Targets in each task's own units, ``(n,)``.
        n_tasks: Number of tasks ``T``.
        rank: Rank of the task covariance factor.
        y_mean: Per-task mean used for standardisation, ``(T,)``.
        y_std: Per-task std used for standardisation, ``(T,)``.
        hyperparameters: Model ``state_dict`` as numpy arrays.
        loss: Final negative marginal log likelihood per point (standard units).
        seconds: Wall time of the fit.
        seed: Seed of the fit.
        boundaries: Number ``K`` of learned boundary features (0: plain RBF kernel).
    """

    X: np.ndarray
    y: np.ndarray
    n_tasks: int
    rank: int
    y_mean: np.ndarray
    y_std: np.ndarray
    hyperparameters: Mapping[str, np.ndarray] = field(repr=False)
    loss: float
    seconds: float
    seed: int = 0
    boundaries: int = 0

    @property
    def n_train(self) -> int:
        """Number of training points over all tasks."""
        return int(self.X.shape[0])

    def task_covariance(self) -> np.ndarray:
        """Learned ``B`` (``T x T``, standard units of each task)."""
        return task_covariance(load_multitask(self))

    def task_correlation(self) -> np.ndarray:
        """``B[s, t] / sqrt(B[s, s] B[t, t])``, ``T x T``."""
        b = self.task_covariance()
        d = np.sqrt(np.clip(np.diag(b), 1e-300, None))
        return b / np.outer(d, d)

    def named_hyperparameters(self) -> dict[str, float]:
        """``lengthscale_<i>``, ``noise_<t>`` (standard units), ``task_cov_<s>_<t>``,
        ``task_corr_<s>_<t>`` (s <= t); with boundaries, per boundary ``k``:
        ``boundary_<k>_dir_<i>`` (unit direction), ``boundary_<k>_offset``,
        ``boundary_<k>_width`` (tau) and ``boundary_<k>_lengthscale`` (of its ``s`` input)."""
        model = load_multitask(self)
        kernel = icm_kernel(model)
        d = self.X.shape[1] - 1
        out = {f"lengthscale_{i}": float(v) for i, v in enumerate(kernel.lengthscale[:d])}
        for k in range(self.boundaries):
            for i, v in enumerate(kernel.direction[k]):
                out[f"boundary_{k}_dir_{i}"] = float(v)
            out[f"boundary_{k}_offset"] = float(kernel.offset[k])
            out[f"boundary_{k}_width"] = float(kernel.tau[k])
            out[f"boundary_{k}_lengthscale"] = float(kernel.lengthscale[d + k])
        for t, v in enumerate(task_noise(model)):
            out[f"noise_{t}"] = float(v)
        cov, corr = task_covariance(model), self.task_correlation()
        for s in range(self.n_tasks):
            for t in range(s, self.n_tasks):
                out[f"task_cov_{s}_{t}"] = float(cov[s, t])
                out[f"task_corr_{s}_{t}"] = float(corr[s, t])
        return out


class FreeSignIndexKernel(IndexKernel):
    """gpytorch's IndexKernel (``B = W W^T + diag(v)``, any sign) with the setter botorch's
    ``MultiTaskGP.eval`` uses to give tasks without data the mean factor of the others."""

    def _set_covar_factor(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self.covar_factor.copy_(value)


def _standardise(tasks: np.ndarray, y: np.ndarray, n_tasks: int):
    mean, std = np.zeros(n_tasks), np.ones(n_tasks)
    for t in range(n_tasks):
        sel = tasks == t
        if sel.any():
            mean[t] = float(y[sel].mean())
            s = float(y[sel].std())
            std[t] = s if s > 1e-12 * max(1.0, abs(mean[t])) else 1.0
    return (y - mean[tasks]) / std[tasks], mean, std


def _build(
    X: np.ndarray,
    y_std: np.ndarray,
    n_tasks: int,
    rank: int,
    boundaries: int = 0,
    start: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> MultiTaskGP:
    train_X = torch.as_tensor(X, dtype=DTYPE)
    train_Y = torch.as_tensor(y_std, dtype=DTYPE).unsqueeze(-1)
    d = X.shape[1] - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MultiTaskGP(
            train_X,
            train_Y,
            task_feature=d,
            all_tasks=list(range(n_tasks)),
            rank=rank,
            outcome_transform=None,
        )
    data_kernel = model.covar_module.kernels[0]
    if boundaries:
        data_kernel = _boundary_kernel(X.shape[1] - 1, int(boundaries), start)
    task_kernel = FreeSignIndexKernel(num_tasks=n_tasks, rank=rank, active_dims=[d]).to(DTYPE)
    # the factor's first column starts at the tasks' jumps across the stump boundary, so their
    # signs start right (a Raman mode jumping up where the loop collapses: negative)
    if start is not None and np.any(start[2]):
        with torch.no_grad():
            jump = torch.as_tensor(start[2], dtype=DTYPE)
            task_kernel.covar_factor[:, 0] = jump / jump.abs().max()
    model.covar_module = data_kernel * task_kernel
    return model


def _boundary_kernel(d: int, k: int, start: tuple | None) -> BoundaryKernel:
    """RBF over ``d + k`` warped inputs (botorch's dimension-scaled lengthscale prior), the
    warp started at ``start`` = (directions ``k x d``, offsets ``(k,)``, jumps) if given."""
    base = get_covar_module_with_dim_scaled_prior(ard_num_dims=d + k).to(DTYPE)
    warp = BoundaryWarp(d, k, DTYPE)
    if start is not None:
        warp.set_boundaries(start[0], start[1])
    with torch.no_grad():
        ls = base.lengthscale.detach().clone()
        ls[..., d:] = S_LENGTHSCALE_INIT
        base.lengthscale = ls
    return BoundaryKernel(base, warp, active_dims=list(range(d))).to(DTYPE)


def _check(X: np.ndarray, y: np.ndarray, n_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = check_training_data(X, y, "multi-task GP", "X")
    if X.shape[1] < 2:
        raise ModelError("multi-task GP inputs need at least one feature plus the task column.")
    tasks = X[:, -1]
    if not (np.all(tasks == np.round(tasks)) and tasks.min() >= 0 and tasks.max() < n_tasks):
        raise ModelError(
            f"the last column of X must hold task indices 0..{n_tasks - 1}; got values "
            f"{sorted(set(tasks.tolist()))[:5]}."
        )
    return X, y, tasks.astype(np.int64)


def fit_multitask(
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    iterations: int = 100,
    n_tasks: int = 2,
    rank: int | None = None,
    boundaries: int = 0,
) -> MultiTaskState:
    """Fit the ICM GP from scratch (L-BFGS on the exact marginal likelihood, seeded).

    Args:
        X: ``n x (d + 1)``: inputs in ``[0, 1]^d`` then the task index.
        y: ``(n,)`` targets in each task's units.
        seed: Seed of the only randomness (botorch's retries from the priors).
        iterations: L-BFGS iteration cap.
        n_tasks: Number of tasks ``T`` (tasks without data are allowed).
        rank: Rank of the task covariance factor (default ``T``).
        boundaries: Learned boundary features ``K`` (0..4; 0: the plain RBF kernel).

    Raises:
        ModelError: Bad shapes, non-finite data, task indices out of range, or a bad
            ``boundaries``.
    """
    n_tasks = int(n_tasks)
    rank = int(rank or n_tasks)
    if not isinstance(boundaries, int | np.integer) or not 0 <= boundaries <= MAX_BOUNDARIES:
        raise ModelError(
            f"boundaries must be an integer 0..{MAX_BOUNDARIES} (0: no learned boundary), "
            f"got {boundaries!r}."
        )
    boundaries = int(boundaries)
    X, y, tasks = _check(X, y, n_tasks)
    ys, mean, std = _standardise(tasks, y, n_tasks)
    t0 = time.perf_counter()
    starts: list = [None]
    if boundaries:
        starts = stump_starts(X[:, :-1], ys, tasks, n_tasks, boundaries, N_STARTS, int(seed))
    best = None
    for start in starts:  # keep the start with the best marginal likelihood
        model, loss = _fit_once(X, ys, n_tasks, rank, boundaries, start, int(seed), iterations)
        if best is None or loss < best[1]:
            best = (model, loss)
    model, loss = best
    state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return MultiTaskState(
        X,
        y,
        n_tasks,
        rank,
        mean,
        std,
        state,
        loss,
        time.perf_counter() - t0,
        int(seed),
        boundaries,
    )


def _fit_once(
    X, ys, n_tasks, rank, boundaries, start, seed, iterations
) -> tuple[MultiTaskGP, float]:
    """One seeded L-BFGS fit from ``start``; the model and its loss (-MLL per point)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(X, ys, n_tasks, rank, boundaries, start)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": int(iterations)}})
            except Exception:  # noqa: BLE001 — prior-mode hyperparameters remain usable
                model = _build(X, ys, n_tasks, rank, boundaries, start)
                mll = ExactMarginalLogLikelihood(model.likelihood, model)
        model.train()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = model.train_inputs
            loss = -float(mll(model(*inputs), model.train_targets, *inputs))
    return model, loss


def load_multitask(
    state: MultiTaskState, X: np.ndarray | None = None, y: np.ndarray | None = None
) -> MultiTaskGP:
    """Rebuild the fitted model (eval mode) without refitting.

    With ``X``, ``y`` (same layout as the state's, e.g. the state's data plus points that
    arrived since the fit) the model is conditioned on them instead, with the fitted
    hyperparameters and the fit's per-task standardisation: the exact GP posterior given all
    current data, only the hyperparameters are as of the fit.
    """
    X = state.X if X is None else np.asarray(X, dtype=np.float64)
    y = state.y if y is None else np.asarray(y, dtype=np.float64)
    tasks = X[:, -1].astype(np.int64)
    ys = (y - state.y_mean[tasks]) / state.y_std[tasks]
    model = _build(X, ys, state.n_tasks, state.rank, state.boundaries)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.hyperparameters.items()})
    model.eval()
    return model


def task_covariance(model: MultiTaskGP) -> np.ndarray:
    """``B = W W^T + diag(v)`` of a model from :func:`load_multitask`, ``T x T``."""
    kernel = model.covar_module.kernels[1]
    with torch.no_grad():
        return kernel.covar_matrix.to_dense().numpy().copy()


def task_noise(model: MultiTaskGP) -> np.ndarray:
    """Noise variance per task (standard units), ``(T,)``."""
    with torch.no_grad():
        return model.likelihood.noise.detach().reshape(-1).numpy().copy()


def icm_kernel(model: MultiTaskGP) -> IcmKernel:
    """The fitted kernel, noise and means of ``model`` as a numpy
    :class:`~coscope.models.icm.IcmKernel` (RBF data kernel, or RBF on the
    boundary-warped inputs, as built here)."""
    data_kernel = model.covar_module.kernels[0]
    boundary = {}
    with torch.no_grad():
        if isinstance(data_kernel, BoundaryKernel):
            warp = data_kernel.warp
            boundary = {
                "direction": warp.direction.numpy().copy(),
                "offset": warp.offset.detach().numpy().copy(),
                "tau": warp.tau.detach().numpy().copy(),
            }
            data_kernel = data_kernel.base_kernel
        lengthscale = data_kernel.lengthscale.detach().reshape(-1).numpy().copy()
        means = np.array([float(m.constant) for m in model.mean_module.base_means])
    return IcmKernel(lengthscale, task_covariance(model), task_noise(model), means, **boundary)
