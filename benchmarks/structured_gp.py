"""Structured GP vs plain GP: map error at small budgets on samples that follow a law.

Truths on a 32 x 32 grid of normalised coordinates (docs/structured-gp.md for the laws):

* ``peak``: ``gaussian_peak`` (offset 1, amplitude 2, centre (0.35, 0.6), width 0.15);
* ``wall``: ``domain_wall`` (offset -0.5, height 3, position 0.1, angle 0.6 rad, width 0.05);
* ``peak+residual``: the peak plus a smooth non-physical residual ``0.3 sin(3 x_0) cos(2 x_1)``
  (the law is right but incomplete: the GP has to learn the rest).

For each truth, budget ``n`` and seed: ``n`` grid points drawn at random (seeded), noise
0.02 added, then ``fit_model("gp")`` and ``fit_model("structured", law=...)`` on the same
data (60 L-BFGS iterations, default priors), and the RMSE of the posterior mean against the
truth over the whole grid. This compares the surrogates on the same random designs; it is
not an active-learning campaign. Reported: mean ± standard deviation over the seeds, and the
ratio of the means.

Second table, through the real campaign loop (``CampaignLoop`` + ``LocalExecutor``): the
``peak`` and ``wall`` truths on a 16 x 16 grid written as a recorded dataset (one-point
``height`` signal, scalarizer ``mean``, instrument noise 0.02), 4 random initial points then
EI, with ``model: gp`` and ``model: structured`` (``policy.mean.law`` the truth's law), the
campaign's own map RMSE against the truth after 5, 8 and 12 measurements.

Usage: ``python benchmarks/structured_gp.py [--seeds 5] [--budgets 5,10,20]
[--campaign-seeds 3]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from coscope.campaign import CampaignLoop, LocalExecutor  # noqa: E402
from coscope.config import parse_spec  # noqa: E402
from coscope.infra.compose import (  # noqa: E402
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.models import fit_model, predict  # noqa: E402
from coscope.storage.datasets import Dataset, write_dataset  # noqa: E402
from coscope.types import ModalityInfo  # noqa: E402

g = np.linspace(0.0, 1.0, 32)
GRID = np.array([(r, c) for r in g for c in g])


def peak(X: np.ndarray) -> np.ndarray:
    d2 = (X[:, 0] - 0.35) ** 2 + (X[:, 1] - 0.6) ** 2
    return 1.0 + 2.0 * np.exp(-d2 / (2 * 0.15**2))


def wall(X: np.ndarray) -> np.ndarray:
    along = (X[:, 0] - 0.5) * np.cos(0.6) + (X[:, 1] - 0.5) * np.sin(0.6)
    return -0.5 + 1.5 * np.tanh((along - 0.1) / 0.05)


def peak_residual(X: np.ndarray) -> np.ndarray:
    return peak(X) + 0.3 * np.sin(3 * X[:, 0]) * np.cos(2 * X[:, 1])


TRUTHS = {
    "peak": (peak, "gaussian_peak"),
    "wall": (wall, "domain_wall"),
    "peak+residual": (peak_residual, "gaussian_peak"),
}


def rmse(kind: str, X: np.ndarray, y: np.ndarray, truth, seed: int, **options) -> float:
    state = fit_model(kind, X, y, seed=seed, iterations=60, **options)
    mean, _ = predict(state, GRID)
    return float(np.sqrt(np.mean((mean - truth(GRID)) ** 2)))


def campaign_rmse(truth, law: str, model: str, seed: int, folder: Path, checkpoints) -> list:
    """Map RMSE of one EI campaign through the real loop after each of ``checkpoints``."""
    g16 = np.linspace(0.0, 1.0, 16)
    cells = np.array([(r, c) for r in g16 for c in g16])
    path = folder / f"{law}.zarr"
    if not path.exists():
        height = ModalityInfo("height", np.zeros(1), "index", "", "a.u.")
        signals = {"height": truth(cells).reshape(16, 16, 1)}
        ds = Dataset(law, "benchmark", {"topo": np.zeros((16, 16))}, {"height": height}, signals)
        write_dataset(ds, path)
    policy = {"name": "ei", "model": model, "n_initial": 4, "fit_iterations": 60}
    if model == "structured":
        policy["mean"] = {"law": law}
    spec = parse_spec(
        {
            "name": f"{law}-{model}-{seed}",
            "seed": seed,
            "sample": {"kind": "dataset", "params": {"path": str(path)}},
            "instruments": [
                {"name": "afm", "modalities": ["height"], "latency_s": 0.0, "noise": 0.02}
            ],
            "scalarizer": {"name": "mean", "modality": "height"},
            "policy": policy,
            "budget": {"max_measurements": max(checkpoints)},
            "time_scale": 0.0,
            "run_dir": str(folder / f"{law}-{model}-{seed}"),
        }
    )
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    ctx.store.close()
    return [outcome.history[n - 1]["rmse"] for n in checkpoints]


def _cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="5,10,20")
    parser.add_argument("--campaign-seeds", type=int, default=3)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    t0, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    for name, (truth, law) in TRUTHS.items():
        for n in budgets:
            errors: dict[str, list[float]] = {"gp": [], "structured": []}
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, n])
                X = GRID[rng.choice(len(GRID), n, replace=False)]
                y = truth(X) + rng.normal(0.0, 0.02, n)
                errors["gp"].append(rmse("gp", X, y, truth, seed))
                errors["structured"].append(rmse("structured", X, y, truth, seed, law=law))
            ratio = statistics.mean(errors["gp"]) / statistics.mean(errors["structured"])
            wins = sum(s < p for s, p in zip(errors["structured"], errors["gp"], strict=True))
            rows.append(
                [
                    f"{name} (`{law}`)",
                    n,
                    _cell(errors["gp"]),
                    _cell(errors["structured"]),
                    f"{ratio:.1f}x",
                    f"{wins}/{args.seeds}",
                ]
            )
            print(rows[-1], flush=True)
    checkpoints = (5, 8, 12)
    loop_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("peak", "wall"):
            truth, law = TRUTHS[name]
            by_model = {
                model: [
                    campaign_rmse(truth, law, model, seed, Path(tmp), checkpoints)
                    for seed in range(args.campaign_seeds)
                ]
                for model in ("gp", "structured")
            }
            for i, n in enumerate(checkpoints):
                gp = [r[i] for r in by_model["gp"]]
                st = [r[i] for r in by_model["structured"]]
                ratio = statistics.mean(gp) / statistics.mean(st)
                loop_rows.append([f"{name} (`{law}`)", n, _cell(gp), _cell(st), f"{ratio:.1f}x"])
                print(loop_rows[-1], flush=True)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    header = [
        "truth (law)",
        "points",
        "plain GP RMSE",
        "structured GP RMSE",
        "plain / structured",
        "seeds structured better",
    ]
    _report.publish(
        "structured_gp",
        "Structured GP vs plain GP at small budgets (`benchmarks/structured_gp.py`)",
        f"Random designs of n points on a 32 x 32 grid, noise 0.02, {args.seeds} seeds "
        "(0..), 60 L-BFGS iterations, default priors; RMSE of the posterior mean over the "
        "whole grid, mean ± standard deviation over the seeds. Truth ranges: peak 1..3, wall "
        "-2..1. Same data for both models; not an active campaign.",
        "",
        _report.table(header, rows),
        "",
        f"EI campaigns through the real loop (16 x 16 grid, 4 random initial points, noise "
        f"0.02, {args.campaign_seeds} seeds), the campaign's map RMSE after n measurements:",
        "",
        _report.table(
            [
                "truth (law)",
                "measurements",
                "plain GP (EI)",
                "structured GP (EI)",
                "plain / structured",
            ],
            loop_rows,
        ),
        "",
        "Reading: with 5 random points the narrow peak (width 0.15 of the grid) is seldom "
        "sampled near its top, so neither model can place it and the default priors (centre "
        "Normal(0.5, 0.5)) do not help: no gain. A wall splits the grid, so 5 points already "
        "straddle it and the law cuts the error by 1.7x. From 10 points on the law pays on every "
        "truth, also with the non-physical residual on top (the GP learns the rest). In the "
        "campaigns EI on the structured GP places its points where the law is still unsure "
        "and the gain grows with the budget; the spread is large because the fit is "
        "non-convex (a wall start can lose the wall between two refits: with 2 wall starts "
        "one seed of 3 did, the 4 used now recover it).",
        "",
        f"{wall_s:.0f} s wall, {cpu_s:.0f} s CPU for the whole table (one torch thread); "
        f"load average at the start {load} (a machine shared with other sessions).",
    )


if __name__ == "__main__":
    main()
