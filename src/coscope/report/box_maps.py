"""The report of a campaign over a continuous box: a map for two dimensions, slices for more.

``maps.png`` of a box campaign:

* ``d = 2``: the posterior mean and std over a ``resolution x resolution`` grid of the box,
  the measured points on top (coloured by order, the best one starred);
* ``d = 1`` or ``d > 2``: one *slice* per dimension through the best point so far — the
  posterior mean ± 2 std along that dimension with the others held at the best point —
  and the measured points projected onto it (a map of more than two dimensions would
  need a choice of projection; a slice is exact and says where it cuts).

Plain matplotlib, Agg backend; the model enters as a ``predict(points n x d) -> (mean,
std)`` function, so the report needs no agent internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from coscope.agents.protocols import PredictsPoints  # noqa: E402
from coscope.spaces import Box  # noqa: E402
from coscope.types import Observation  # noqa: E402

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``points (n x d, box units) -> (mean (n,), std (n,))``."""


def _label(box: Box, i: int) -> str:
    units = box.dimension_units[i]
    return f"{box.names[i]} [{units}]" if units else box.names[i]


def box_grid(box: Box, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a 2-D box: the axes ``(r,)``, ``(r,)`` and the ``r^2 x 2`` points of their grid."""
    a = np.linspace(box.lo[0], box.hi[0], resolution)
    b = np.linspace(box.lo[1], box.hi[1], resolution)
    grid = np.stack(np.meshgrid(a, b, indexing="xy"), axis=-1).reshape(-1, 2)
    return a, b, grid


def write_box_maps(
    folder: Path,
    box: Box,
    *,
    predict: Predict,
    points: np.ndarray,
    values: np.ndarray,
    title: str,
    resolution: int = 60,
) -> Path:
    """Write ``maps.png`` (see the module docstring).

    Args:
        folder: Output folder (created).
        box: The campaign's box.
        predict: The model's prediction at points of the box.
        points: Measured points, ``n x d`` in the box's units, in step order.
        values: Their observed target values, ``(n,)``.
        title: Figure title.
        resolution: Grid points per side of the 2-D map, or along a slice.

    Returns:
        The PNG's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    points = np.asarray(points, dtype=np.float64).reshape(-1, box.dim)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    best = int(np.argmax(values)) if values.size else -1
    if box.dim == 2:
        fig = _map(box, predict, points, best, resolution)
    else:
        fig = _slices(box, predict, points, values, best, resolution)
    fig.suptitle(title, fontsize=11)
    path = folder / "maps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_learner_maps(
    folder: Path, box: Box, learner: PredictsPoints, observed: Sequence[Observation], title: str
) -> Path:
    """:func:`write_box_maps` of a box agent and the observations of its target (any order;
    those of points it does not know are left out)."""
    steps, points = learner.points()
    at = {int(s): i for i, s in enumerate(steps.tolist())}
    measured = [o for o in sorted(observed, key=lambda o: o.step) if o.step in at]
    return write_box_maps(
        folder,
        box,
        predict=learner.predict_points,
        points=points[[at[o.step] for o in measured]],
        values=np.array([o.value for o in measured]),
        title=title,
    )


def _map(box: Box, predict: Predict, points: np.ndarray, best: int, resolution: int) -> Figure:
    a, b, grid = box_grid(box, resolution)
    mean, std = predict(grid)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.2), constrained_layout=True)
    extent = (box.lo[0], box.hi[0], box.lo[1], box.hi[1])
    for ax, data, name, cmap in (
        (axes[0], mean, "prediction (mean)", "viridis"),
        (axes[1], std, "uncertainty (std)", "magma"),
    ):
        im = ax.imshow(
            data.reshape(b.size, a.size), origin="lower", extent=extent, aspect="auto", cmap=cmap
        )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(_label(box, 0))
        ax.set_ylabel(_label(box, 1))
        if len(points):
            ax.scatter(
                points[:, 0],
                points[:, 1],
                c=np.arange(len(points)),
                cmap="plasma",
                s=16,
                edgecolors="white",
                linewidths=0.4,
                zorder=3,
            )
            ax.scatter(
                *points[best],
                marker="*",
                s=160,
                color="red",
                edgecolors="white",
                zorder=4,
                label="best observed",
            )
    if len(points):
        axes[0].legend(loc="upper right", fontsize=8)
    return fig


def _slices(
    box: Box,
    predict: Predict,
    points: np.ndarray,
    values: np.ndarray,
    best: int,
    resolution: int,
) -> Figure:
    centre = points[best] if best >= 0 else (box.lo + box.hi) / 2
    cols = min(box.dim, 3)
    rows = int(np.ceil(box.dim / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.0 * cols, 3.2 * rows), constrained_layout=True, squeeze=False
    )
    for i, ax in enumerate(axes.reshape(-1)):
        if i >= box.dim:
            ax.set_axis_off()
            continue
        t = np.linspace(box.lo[i], box.hi[i], resolution)
        cut = np.repeat(centre[None, :], resolution, axis=0)
        cut[:, i] = t
        mean, std = predict(cut)
        ax.plot(t, mean, color="C0", lw=1.5, label="mean")
        ax.fill_between(t, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.2, label="± 2 std")
        if len(points):
            ax.scatter(points[:, i], values, s=10, color="0.5", label="measured (projected)")
            ax.scatter(
                points[best, i], values[best], marker="*", s=120, color="red", label="best observed"
            )
        ax.set_xlabel(_label(box, i))
        ax.grid(alpha=0.3)
    axes.reshape(-1)[0].legend(fontsize=7)
    axes.reshape(-1)[0].set_ylabel("target (slice through the best point)")
    return fig


__all__ = ["box_grid", "write_box_maps", "write_learner_maps"]
