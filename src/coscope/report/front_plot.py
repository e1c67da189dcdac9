"""The Pareto front of a multi-objective campaign as a picture: ``front.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def write_front(
    folder: Path,
    measured: np.ndarray,
    pareto: Mapping[str, Any],
    history: Sequence[Mapping[str, float]],
    *,
    title: str,
) -> Path:
    """Write ``front.png``: the measured points and their front in the first two objectives
    (objective units), and the hypervolume after each measurement.

    Args:
        folder: Output folder (created).
        measured: Objective values of every measurement, ``n x m`` (``m >= 2``).
        pareto: :meth:`coscope.campaign.front.FrontBook.summary`.
        history: Per-measurement rows; those with ``hypervolume`` are drawn.
        title: Figure title.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{o['name']} ({o['goal']})" for o in pareto["objectives"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.scatter(measured[:, 0], measured[:, 1], s=14, c="0.6", label="measured")
    front = np.array([p["values"] for p in pareto["points"]]).reshape(-1, measured.shape[1])
    order = np.argsort(front[:, 0])
    left.plot(front[order, 0], front[order, 1], "o-", c="tab:red", ms=5, label="Pareto set")
    if pareto.get("ref_point"):
        ref = pareto["ref_point"]
        left.scatter([ref[0]], [ref[1]], marker="x", c="k", label="reference point")
    left.set_xlabel(names[0])
    left.set_ylabel(names[1])
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    rows = [r for r in history if "hypervolume" in r]
    right.plot([r["n_measurements"] for r in rows], [r["hypervolume"] for r in rows], lw=1.5)
    right.set_xlabel("measurements")
    right.set_ylabel("hypervolume (objective units)")
    right.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    path = folder / "front.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
