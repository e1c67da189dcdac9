"""The campaign report: PNG maps of truth, prediction, uncertainty and the visited path.

Plain matplotlib with the Agg backend (no display needed); every function takes arrays and
writes files, so the report can be rebuilt from a trace at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from coscope.spaces import CandidateTable, PixelGrid, Space  # noqa: E402
from coscope.types import Location  # noqa: E402


def _image(
    ax,
    data: np.ndarray,
    title: str,
    *,
    extent: tuple[float, float, float, float],
    label: str = "",
    cmap: str = "viridis",
    limits: tuple[float, float] | None = None,
) -> None:
    """``data`` ``(H, W)`` over ``extent`` (µm, row 0 at the top) with its colour bar."""
    vmin, vmax = limits if limits is not None else (None, None)
    im = ax.imshow(
        data,
        origin="upper",
        cmap=cmap,
        interpolation="nearest",
        extent=extent,
        vmin=vmin,
        vmax=vmax,
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (µm)", fontsize=8)
    ax.set_ylabel("y (µm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)


def _shared_limits(*maps: np.ndarray | None) -> tuple[float, float] | None:
    """One colour scale for maps of the same quantity (truth and prediction)."""
    values = [m[np.isfinite(m)] for m in maps if m is not None and np.isfinite(m).any()]
    if not values:
        return None
    lo, hi = float(min(v.min() for v in values)), float(max(v.max() for v in values))
    return (lo, hi) if hi > lo else None


def _save(fig, title: str, path: Path) -> Path:
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_maps(
    folder: Path,
    *,
    structure: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    truth: np.ndarray | None,
    visited: Sequence[Location],
    title: str,
    outside: np.ndarray | None = None,
    pixel_size_um: float = 1.0,
    value_label: str = "target",
) -> Path:
    """Write ``maps.png``: structure with the path, truth (if known), prediction, uncertainty.

    Axes in µm (pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` times the
    pitch); truth and prediction share one colour scale, each panel has its colour bar.

    Args:
        folder: Output folder (created).
        structure: Structure image ``(H, W)``.
        mean: Predicted target ``(H, W)`` or ``None`` before any model.
        std: Predictive standard deviation ``(H, W)`` or ``None``.
        truth: Ground-truth target ``(H, W)`` or ``None`` when unknown.
        visited: Measured locations in the order measured.
        title: Figure title.
        outside: ``(H, W)`` bool, pixels that are not candidates (off a mask): shaded on
            the structure image. None: every pixel is a candidate.
        pixel_size_um: Pixel pitch, µm.
        value_label: What the maps show (the scalarizer), for the colour bars.

    Returns:
        The PNG's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    panels = 2 + (truth is not None) + (std is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2), constrained_layout=True)
    axes = list(np.atleast_1d(axes))
    h, w = structure.shape[:2]
    pitch = float(pixel_size_um)
    extent = (0.0, w * pitch, h * pitch, 0.0)
    ax = axes.pop(0)
    _image(ax, structure, "structure + visited (order)", extent=extent, cmap="gray")
    if outside is not None and outside.any():
        shade = np.ma.masked_where(~outside, np.ones(outside.shape))
        ax.imshow(
            shade,
            cmap="Blues",
            vmin=0,
            vmax=1.5,
            alpha=0.45,
            interpolation="nearest",
            extent=extent,
        )
    if visited:
        rows = (np.array([loc.row for loc in visited]) + 0.5) * pitch
        cols = (np.array([loc.col for loc in visited]) + 0.5) * pitch
        ax.plot(cols, rows, "-", color="white", lw=0.6, alpha=0.6)
        points = ax.scatter(cols, rows, c=np.arange(len(visited)), cmap="plasma", s=14, zorder=3)
        fig.colorbar(points, ax=ax, fraction=0.046, pad=0.04, label="measurement #")
    limits = _shared_limits(truth, mean)
    if truth is not None:
        _image(axes.pop(0), truth, "ground truth", extent=extent, label=value_label, limits=limits)
    if mean is not None:
        _image(
            axes.pop(0), mean, "prediction (mean)", extent=extent, label=value_label, limits=limits
        )
    else:
        axes.pop(0).set_axis_off()
    if std is not None:
        _image(
            axes.pop(0),
            std,
            "uncertainty (std)",
            extent=extent,
            label=f"std of {value_label}",
            cmap="magma",
        )
    return _save(fig, title, folder / "maps.png")


def write_candidate_plot(
    folder: Path,
    *,
    size: int,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    truth: np.ndarray | None,
    visited: Sequence[Location],
    title: str,
) -> Path:
    """Write ``maps.png`` for a table of ``N`` candidates (``N x 1`` layout, no image).

    Left: the prediction of every candidate against its ground truth (or against its index
    when the truth is unknown), measured candidates coloured by order. Right: the
    predictive std against the prediction. ``size`` is ``N``; arrays are ``N x 1`` (or
    ``(N,)``), visited locations ``Location(i, 0)``.

    Returns:
        The PNG's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.2), constrained_layout=True)
    order = np.array([loc.row for loc in visited], dtype=np.int64)
    known = None if truth is None else np.asarray(truth, dtype=np.float64).reshape(-1)
    y = None if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
    x = known if known is not None else np.arange(size, dtype=np.float64)
    if y is None:
        y = known if known is not None else np.full(size, np.nan)
    ax = axes[0]
    ax.scatter(x, y, s=8, color="0.7", label="candidates")
    if order.size:
        points = ax.scatter(x[order], y[order], c=np.arange(order.size), cmap="plasma", s=16)
        fig.colorbar(points, ax=ax, fraction=0.046, pad=0.04, label="measurement #")
    ax.set_xlabel("ground truth" if truth is not None else "candidate index")
    ax.set_ylabel("prediction (mean)" if mean is not None else "ground truth")
    ax.grid(alpha=0.3)
    if std is not None and mean is not None:
        axes[1].scatter(y, np.asarray(std).reshape(-1), s=8, color="0.4")
        axes[1].set_xlabel("prediction (mean)")
        axes[1].set_ylabel("uncertainty (std)")
        axes[1].grid(alpha=0.3)
    else:
        axes[1].set_axis_off()
    return _save(fig, title, folder / "maps.png")


def write_space_maps(
    folder: Path,
    space: Space | None,
    *,
    structure: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    truth: np.ndarray | None,
    visited: Sequence[Location],
    title: str,
    value_label: str = "target",
) -> Path:
    """``maps.png`` for the campaign's space: :func:`write_candidate_plot` for a table,
    :func:`write_maps` (cells off a mask shaded, axes in µm) for a grid; ``space=None``:
    every pixel at a pitch of 1 µm."""
    if isinstance(space, CandidateTable):  # no image: prediction against truth
        return write_candidate_plot(
            folder, size=space.size, mean=mean, std=std, truth=truth, visited=visited, title=title
        )
    outside = None if space is None else ~space.allowed.reshape(structure.shape)
    return write_maps(
        folder,
        structure=structure,
        mean=mean,
        std=std,
        truth=truth,
        visited=visited,
        title=title,
        outside=outside,
        pixel_size_um=space.pixel_size_um if isinstance(space, PixelGrid) else 1.0,
        value_label=value_label,
    )


def write_learning_curve(
    folder: Path,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str,
    name: str,
) -> Path:
    """Write ``<name>.png``: one line per curve, ``label -> (x, y)``."""
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, lw=1.5)
    ax.set_xlabel("measurements")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
