"""A learned boundary feature for GP kernels: a one-layer sigmoid warp with a skip connection.

Inputs ``x`` (``n x d``, coordinates in ``[0, 1]`` plus any features) are mapped to

    phi(x) = [x, s_1(x), ..., s_K(x)],   s_k(x) = sigmoid((u_k . x - c_k) / tau_k)

with ``u_k`` a unit direction (``u_k = v_k / |v_k|``, ``v_k`` free), ``c_k`` an offset (the
boundary is the hyperplane ``u_k . x = c_k``, in input units) and ``tau_k >= TAU_FLOOR`` its
width (input units). An ARD RBF kernel on ``phi`` (``d + K`` lengthscales) is a tiny deep
kernel: the ``s`` dimensions get their own lengthscales, so two points on opposite sides of a
boundary decorrelate when the data say so (``exp(-1 / (2 l_s^2))`` at full contrast), and with
a long ``s`` lengthscale it is the plain RBF again. All of ``v, c, tau`` are fitted jointly
with the GP by the exact marginal likelihood.

The fit is non-convex, so :func:`stump_starts` gives robust, deterministic starts: a
decision-stump search (largest between-side variance of the standardised targets, summed over
tasks) over directions and offsets, greedy over ``K`` on the residuals of the previous splits;
the fit (:func:`coscope.models.multitask.fit_multitask`) starts L-BFGS from the best few first
splits and keeps the best marginal likelihood.
"""

from __future__ import annotations

import numpy as np
import torch
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel
from gpytorch.module import Module

from coscope import catalog

TAU_FLOOR = 0.01
"""Smallest boundary width (input units; the grid spacing of a 10 x 10 library is 0.11)."""
TAU_INIT = 0.05
"""Starting width of every boundary."""
S_LENGTHSCALE_INIT = 0.5
"""Starting lengthscale of each ``s`` dimension (cross-boundary correlation exp(-2) ≈ 0.14)."""
MAX_BOUNDARIES = catalog.MAX_BOUNDARIES
"""Largest ``K`` accepted."""


class BoundaryWarp(Module):
    """``x -> [x, s_1(x) .. s_K(x)]`` (module docstring); parameters ``raw_direction``
    (``K x d``), ``offset`` (``K``), ``raw_tau`` (``K``, constrained ``>= TAU_FLOOR``)."""

    def __init__(self, d: int, k: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        direction = torch.zeros(k, d, dtype=dtype)
        direction[:, 0] = 1.0
        self.register_parameter("raw_direction", torch.nn.Parameter(direction))
        self.register_parameter("offset", torch.nn.Parameter(torch.full((k,), 0.5, dtype=dtype)))
        self.register_parameter("raw_tau", torch.nn.Parameter(torch.zeros(k, dtype=dtype)))
        self.register_constraint("raw_tau", GreaterThan(TAU_FLOOR))
        self.tau = torch.full((k,), TAU_INIT, dtype=dtype)

    @property
    def direction(self) -> torch.Tensor:
        """Unit directions ``u``, ``K x d``."""
        v = self.raw_direction
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def tau(self) -> torch.Tensor:
        """Boundary widths, ``(K,)``, input units."""
        return self.raw_tau_constraint.transform(self.raw_tau)

    @tau.setter
    def tau(self, value: torch.Tensor) -> None:
        value = torch.as_tensor(value, dtype=self.raw_tau.dtype).clamp_min(TAU_FLOOR * 1.0001)
        self.initialize(raw_tau=self.raw_tau_constraint.inverse_transform(value))

    def set_boundaries(self, direction: np.ndarray, offset: np.ndarray) -> None:
        """Start from hyperplanes ``direction`` (``K x d``, any norm) and ``offset`` (``K``)."""
        with torch.no_grad():
            d = torch.as_tensor(np.asarray(direction), dtype=self.raw_direction.dtype)
            norm = d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            self.raw_direction.copy_(d / norm)
            self.offset.copy_(torch.as_tensor(np.asarray(offset) / norm.reshape(-1).numpy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``... x n x d`` -> ``... x n x (d + K)``."""
        s = torch.sigmoid((x @ self.direction.transpose(-1, -2) - self.offset) / self.tau)
        return torch.cat([x, s], dim=-1)


class BoundaryKernel(Kernel):
    """``base_kernel(phi(x), phi(x'))``: a kernel (ARD over ``d + K`` dims) on warped inputs."""

    def __init__(self, base_kernel: Kernel, warp: BoundaryWarp, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base_kernel = base_kernel
        self.warp = warp

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params):
        return self.base_kernel.forward(self.warp(x1), self.warp(x2), diag=diag, **params)


def _directions(d: int, seed: int, n_random: int = 256) -> np.ndarray:
    """Candidate unit directions, ``m x d``: 180 angles in 2-D, axes plus seeded random ones
    otherwise (each covers both signs: the stump search tries every offset)."""
    if d == 1:
        return np.ones((1, 1))
    if d == 2:
        angles = np.linspace(0.0, np.pi, 180, endpoint=False)
        return np.column_stack([np.cos(angles), np.sin(angles)])
    rng = np.random.default_rng([int(seed), 0xB0])
    random = rng.normal(size=(n_random, d))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    return np.vstack([np.eye(d), random])


def _best_split(
    proj: np.ndarray, resid: np.ndarray, tasks: np.ndarray, n_tasks: int, min_side: int
) -> tuple[float, float]:
    """``(score, threshold)`` of the best stump along one projection (``(n,)``).

    Score: ``sum_t n_L n_R / n (mean_L - mean_R)^2`` over tasks ``t`` (the drop of the summed
    squared residuals when each task gets its own mean on each side).
    """
    order = np.argsort(proj, kind="stable")
    p = proj[order]
    score = np.zeros(len(p) - 1)
    for t in range(n_tasks):
        sel = tasks[order] == t
        n_t = int(sel.sum())
        if n_t < 2:
            continue
        r = np.where(sel, resid[order], 0.0)
        n_left = np.cumsum(sel)[:-1].astype(np.float64)
        s_left = np.cumsum(r)[:-1]
        n_right, s_right = n_t - n_left, r.sum() - s_left
        ok = (n_left > 0) & (n_right > 0)
        gap = np.where(ok, s_left / np.maximum(n_left, 1) - s_right / np.maximum(n_right, 1), 0)
        score += np.where(ok, n_left * n_right / n_t * gap**2, 0.0)
    valid = (p[1:] > p[:-1] + 1e-12) & (np.arange(1, len(p)) >= min_side)
    valid &= np.arange(1, len(p)) <= len(p) - min_side
    if not valid.any():
        return -np.inf, float(np.median(p))
    score = np.where(valid, score, -np.inf)
    i = int(np.argmax(score))
    return float(score[i]), float(0.5 * (p[i] + p[i + 1]))


def _split_residuals(resid, side, tasks, n_tasks) -> np.ndarray:
    """Residuals after giving each task its own mean on each side of a split."""
    resid = resid.copy()
    for t in range(n_tasks):
        for s in (side, ~side):
            sel = s & (tasks == t)
            if sel.any():
                resid[sel] -= resid[sel].mean()
    return resid


def stump_starts(
    x: np.ndarray,
    y: np.ndarray,
    tasks: np.ndarray,
    n_tasks: int,
    k: int,
    n_starts: int = 1,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decision-stump starts for ``k`` boundaries: start ``i`` takes the ``i``-th best first
    split (directions at least 20 degrees apart), then the best split of the residuals for
    each further boundary (greedy, like boosting stumps).

    Args:
        x: Inputs, ``n x d``.
        y: Targets standardised per task, ``(n,)``.
        tasks: Task index per row, ``(n,)`` int.
        n_tasks: Number of tasks.
        k: Number of boundaries.
        n_starts: Number of starts wanted (fewer if fewer distinct directions split).
        seed: Seed of the random directions (``d > 2`` only).

    Returns:
        ``[(direction, offset, jump), ...]``: unit directions ``k x d`` and offsets ``(k,)`` —
        boundary ``j`` is ``direction[j] . x = offset[j]`` — and the jump of each task's mean
        across the first boundary, ``(n_tasks,)`` (standard units, 0 for a task without data
        on both sides; its signs start the task covariance). Deterministic in the arguments.
    """
    x = np.asarray(x, dtype=np.float64)
    dirs = _directions(x.shape[1], seed)
    proj = x @ dirs.T  # n x m
    y = np.asarray(y, dtype=np.float64)
    min_side = max(1, min(2, len(y) // 4))

    def splits(resid: np.ndarray) -> list[tuple[float, int, float]]:
        out = [
            (*_best_split(proj[:, m], resid, tasks, n_tasks, min_side), m) for m in range(len(dirs))
        ]
        return sorted(((sc, m, thr) for sc, thr, m in out), key=lambda r: (-r[0], r[1]))

    firsts: list[tuple[float, int, float]] = []
    for cand in splits(y):
        if len(firsts) == n_starts:
            break
        if all(abs(dirs[cand[1]] @ dirs[f[1]]) < np.cos(np.radians(20)) for f in firsts):
            firsts.append(cand)
    starts = []
    for first in firsts:
        chosen = [first]
        resid = y
        for _ in range(k - 1):
            resid = _split_residuals(resid, proj[:, chosen[-1][1]] > chosen[-1][2], tasks, n_tasks)
            chosen.append(splits(resid)[0])
        side = proj[:, first[1]] > first[2]
        jump = np.zeros(n_tasks)
        for t in range(n_tasks):
            hi, lo = y[side & (tasks == t)], y[~side & (tasks == t)]
            jump[t] = hi.mean() - lo.mean() if len(hi) and len(lo) else 0.0
        starts.append((dirs[[c[1] for c in chosen]], np.array([c[2] for c in chosen]), jump))
    return starts
