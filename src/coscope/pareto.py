"""Pareto sets, reference points and hypervolumes of objective vectors (torch-free).

Every function takes objective values in the *maximisation* convention: ``Y`` is ``n x m``
(``n`` points, ``m`` objectives), a minimised objective already negated (multiply by its
``sign``, ``+1`` for ``goal: max``, ``-1`` for ``goal: min``). ``coscope status`` computes the
front of a trace with these, so this module imports numpy only; the hypervolume of three or
more objectives uses botorch's exact box decomposition, imported where it is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REF_MARGIN = 0.1
"""Default reference point: the observed minimum of each objective minus this share of its
observed range (maximisation convention)."""


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the non-dominated rows of ``Y`` (``n x m``, maximised).

    A row is dominated when another is at least as good in every objective and better in
    one. Duplicated non-dominated rows are all kept.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    geq = (Y[:, None, :] >= Y[None, :, :]).all(-1)  # geq[i, j]: i at least as good as j
    gt = (Y[:, None, :] > Y[None, :, :]).any(-1)
    dominated = np.any(geq & gt, axis=0)
    return np.asarray(~dominated, dtype=bool)


def default_ref_point(Y: np.ndarray, given: Sequence[float | None] | None = None) -> np.ndarray:
    """``(m,)`` reference point: ``given`` entries where set, else ``min - REF_MARGIN * range``
    of the observed ``Y`` (``n x m``, maximised; ``n >= 1``).

    As points are added the observed minimum only falls and the range only grows, so the
    default reference point only moves down and the hypervolume of a growing set never falls.
    """
    Y = np.asarray(Y, dtype=np.float64)
    low, high = Y.min(0), Y.max(0)
    ref = low - REF_MARGIN * (high - low)
    if given is not None:
        ref = np.array([r if g is None else float(g) for r, g in zip(ref, given, strict=True)])
    return ref


def hypervolume(Y: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by the rows of ``Y`` (``n x m``, maximised) and bounded below by
    ``ref`` (``(m,)``), in the product of the objectives' units; points not above ``ref`` in
    every objective add nothing."""
    Y = np.asarray(Y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    Y = Y[(Y > ref).all(1)] if Y.size else Y.reshape(0, ref.size)
    if Y.shape[0] == 0:
        return 0.0
    if Y.shape[1] == 2:
        return _hypervolume_2d(Y[pareto_mask(Y)], ref)
    import torch  # heavy, only for >= 3 objectives: status of 2-objective campaigns stays light
    from botorch.utils.multi_objective.box_decompositions.dominated import (
        DominatedPartitioning,
    )

    part = DominatedPartitioning(ref_point=torch.as_tensor(ref), Y=torch.as_tensor(Y))
    return float(part.compute_hypervolume())


def _hypervolume_2d(front: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of non-dominated ``front`` (``k x 2``, all above ``ref``)."""
    order = np.argsort(-front[:, 0], kind="stable")
    x, y = front[order, 0], front[order, 1]  # x falls, so y rises along a front
    widths = x - np.append(x[1:], ref[0])
    return float(np.sum(widths * (y - ref[1])))
