"""Study figures: metric vs measurements per group (mean ± std) and the spread of runs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from coscope.studies.metrics import METRICS
from coscope.studies.tables import stack

TITLES = {
    "rmse": "map RMSE vs truth",
    "nlpd": "NLPD of truth (nats/pixel)",
    "best_so_far": "best observed target",
    "regret": "regret (true max − truth at best observed)",
    "top1_fraction": "fraction of true top-1 % measured",
}


def _known(results: Sequence[dict[str, Any]], group_key: str, length: int) -> list[str]:
    return [
        m
        for m in METRICS
        if any(np.isfinite(a).any() for a in stack(results, group_key, m, length).values())
    ]


def _band(ax: Any, steps: np.ndarray, arr: np.ndarray, label: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no model yet)
        mean, std = np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)
    (line,) = ax.plot(steps, mean, label=label, lw=1.4)
    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)


def _style(ax: Any, metric: str) -> None:
    if metric == "nlpd":  # an overconfident first fit scores 1e3-1e4 nats; later ones ~1-10
        ax.set_yscale("symlog", linthresh=10.0)
    ax.set_title(TITLES.get(metric, metric), fontsize=9)
    ax.set_xlabel("measurements", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def plot_curves(
    results: Sequence[dict[str, Any]], group_key: str, length: int, folder: Path, title: str
) -> list[Path]:
    """One PNG per known metric plus ``curves.png`` with all of them; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = np.arange(1, length + 1)
    metrics = _known(results, group_key, length)
    paths = []
    fig_all, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), dpi=80)
    axes = np.atleast_1d(axes)
    for ax_all, metric in zip(axes, metrics, strict=True):
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
        for group, arr in stack(results, group_key, metric, length).items():
            _band(ax, steps, arr, group)
            _band(ax_all, steps, arr, group)
        for a in (ax, ax_all):
            _style(a, metric)
        ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = folder / f"{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    axes[0].legend(fontsize=7)
    fig_all.suptitle(f"{title} — mean ± std over runs", fontsize=9)
    fig_all.tight_layout()
    fig_all.savefig(folder / "curves.png")
    plt.close(fig_all)
    return [folder / "curves.png", *paths]


def plot_spread(
    results: Sequence[dict[str, Any]], group_key: str, length: int, path: Path, title: str
) -> Path:
    """Every run thin, the mean, and the min–max band, one panel per known metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = np.arange(1, length + 1)
    pooled = [{**r, "keys": {**r["keys"], "_all": "all"}} for r in results]
    metrics = _known(pooled, "_all", length)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), dpi=80)
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        arr = stack(pooled, "_all", metric, length)["all"]
        for curve in arr:
            ax.plot(steps, curve, lw=0.6, alpha=0.5, color="0.4")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi, mean = np.nanmin(arr, 0), np.nanmax(arr, 0), np.nanmean(arr, 0)
        ax.fill_between(steps, lo, hi, color="tab:blue", alpha=0.15, label="min–max")
        ax.plot(steps, mean, color="tab:blue", lw=1.6, label="mean")
        _style(ax, metric)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{title}: {len(results)} runs, mean and min–max band", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
