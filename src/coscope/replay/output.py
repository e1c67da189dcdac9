"""Files written by ``coscope replay`` and ``coscope retrace`` (CSV, JSON, PNG; no display)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _figure(width: float = 7.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height))


def plot_curves(results: Sequence[Any], path: Path, metric: str = "nrmse") -> None:
    """Learning curves (``metric`` vs observations) of replays, divergence steps marked."""
    plt, fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for result in results:
        n = [r["n_obs"] for r in result.rows]
        y = [r.get(metric, np.nan) for r in result.rows]
        (line,) = ax.plot(n, y, label=result.label)
        div = result.first_divergence
        if div is not None:
            k = next(i for i, r in enumerate(result.rows) if r["step"] == div)
            ax.axvline(n[k], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("observations along the recorded path")
    ax.set_ylabel(f"{metric} of the model vs ground truth")
    ax.set_title("counterfactual learning curves (dotted: first divergence)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_replay(result: Any, out: Path) -> None:
    """``replay.csv`` (per step), ``replay.json`` (summary) and ``curves.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _csv(out / "replay.csv", result.rows)
    summary = {
        "label": result.label,
        "first_divergence": result.first_divergence,
        "agreement": result.agreement,
        "final": result.final,
    }
    (out / "replay.json").write_text(json.dumps(summary, indent=2, default=float))
    plot_curves([result], out / "curves.png")


def _panel(ax: Any, result: Any, values: np.ndarray, row: dict, path: list) -> None:
    """One map of ``steps.png``: the grid as an image, or a table (``N x 1`` layout) as its
    candidates scattered in :attr:`result.embedding`, coloured by ``values``."""
    if result.grid_shape[1] > 1:
        ax.imshow(values, origin="upper", cmap="viridis")
        ax.plot([c for _, c in path], [r for r, _ in path], "w.", ms=2)
        for r, c in row["runners_up"]:
            ax.plot(c, r, "o", mfc="none", mec="orange", ms=5)
        ax.plot(row["col"], row["row"], "r*", ms=9)
        return
    emb = result.embedding
    ax.scatter(emb[:, 0], emb[:, 1], c=values.reshape(-1), cmap="viridis", s=6)
    seen = emb[[r for r, _ in path]]
    ax.plot(seen[:, 0], seen[:, 1], "k.", ms=2)
    for r, _ in row["runners_up"]:
        ax.plot(emb[r, 0], emb[r, 1], "o", mfc="none", mec="orange", ms=5)
    ax.plot(emb[row["row"], 0], emb[row["row"], 1], "r*", ms=9)


def write_box_retrace(result: Any, out: Path) -> None:
    """A box's retrace: ``retrace.csv``, ``retrace.npz`` (points), ``steps.png`` (mean ± 2 std
    and rank of each recorded point under the final model) and ``trajectory.png`` (the
    points in the box's first two dimensions, normalised)."""
    _csv(out / "retrace.csv", result.rows)
    np.savez_compressed(out / "retrace.npz", points=result.points, embedding=result.embedding)
    steps = [r["step"] for r in result.rows]
    plt, fig = _figure(9.0, 5.6)
    ax = fig.add_subplot(2, 1, 1)
    mean = np.array([r["mean"] for r in result.rows])
    std = np.array([r["std"] for r in result.rows])
    ax.errorbar(steps, mean, yerr=2 * std, fmt=".", ms=4, lw=0.8, color="C0")
    ax.set_ylabel("final model at the point (± 2 std)")
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(2, 1, 2)
    ax.plot(steps, [r["rank"] or np.nan for r in result.rows], ".-", lw=0.8, color="C3")
    ax.set_ylabel("rank among Sobol points")
    ax.set_xlabel("decision step")
    ax.grid(alpha=0.3)
    fig.suptitle("final model along the recorded points (rank 1: the acquisition's best)")
    fig.tight_layout()
    fig.savefig(out / "steps.png", dpi=90)
    plt.close(fig)
    plt, fig = _figure(6.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    emb = result.embedding
    ax.plot(emb[:, 0], emb[:, 1], "-", c="0.4", lw=0.6)
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=np.arange(len(emb)), cmap="plasma", s=14)
    fig.colorbar(sc, ax=ax, label="step")
    names = list(result.dimensions) + [""]
    ax.set_xlabel(f"{names[0]} (normalised)")
    ax.set_ylabel(f"{names[1]} (normalised)" if len(result.dimensions) > 1 else "")
    ax.set_xlim(0, 1)
    ax.set_title(f"trajectory in the {result.space}")
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=110)
    plt.close(fig)


def write_retrace(result: Any, out: Path, panels: int = 6) -> None:
    """``retrace.csv``, ``retrace.npz`` (maps), ``steps.png`` (panels), ``trajectory.png``."""
    out.mkdir(parents=True, exist_ok=True)
    if result.points is not None:
        write_box_retrace(result, out)
        return
    _csv(out / "retrace.csv", result.rows)
    np.savez_compressed(
        out / "retrace.npz",
        acquisition=result.acquisition,
        mean=result.mean,
        std=result.std,
        embedding=result.embedding,
    )
    n = len(result.rows)
    steps = np.unique(np.linspace(0, n - 1, min(panels, n)).astype(int))
    if len(steps):
        plt, fig = _figure(3.0 * len(steps), 8.4)
        for j, k in enumerate(steps):
            row = result.rows[k]
            for i, (name, maps) in enumerate(
                (("acquisition", result.acquisition), ("mean", result.mean), ("std", result.std))
            ):
                ax = fig.add_subplot(3, len(steps), i * len(steps) + j + 1)
                _panel(ax, result, maps[k], row, result.path[: k + 1])
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"step {row['step']} (rank {row['rank']})", fontsize=9)
                if j == 0:
                    ax.set_ylabel(name)
        fig.suptitle("final model along the path: red star chosen, orange runners-up")
        fig.tight_layout()
        fig.savefig(out / "steps.png", dpi=90)
        plt.close(fig)
    plt, fig = _figure(6.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    emb = result.embedding
    ax.scatter(emb[:, 0], emb[:, 1], s=3, c="0.8", label="every candidate")
    traj = emb[[r * result.grid_shape[1] + c for r, c in result.path]]
    ax.plot(traj[:, 0], traj[:, 1], "-", c="0.4", lw=0.6)
    sc = ax.scatter(traj[:, 0], traj[:, 1], c=np.arange(len(traj)), cmap="plasma", s=14)
    fig.colorbar(sc, ax=ax, label="step")
    ax.set_xlabel(f"{result.space} 1")
    ax.set_ylabel(f"{result.space} 2")
    ax.set_title(f"trajectory in {result.space}")
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=110)
    plt.close(fig)
