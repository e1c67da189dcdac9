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

Usage: ``python benchmarks/structured_gp.py [--seeds 5] [--budgets 5,10,20]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from coscope.models import fit_model, predict  # noqa: E402

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


def _cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="5,10,20")
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
        "Reading: with 5 random points the narrow peak (width 0.15 of the grid) is seldom "
        "sampled near its top, so neither model can place it and the default priors (centre "
        "Normal(0.5, 0.5)) do not help: no gain. A wall splits the grid, so 5 points already "
        "straddle it and the law halves the error. From 10 points on the law pays on every "
        "truth, also with the non-physical residual on top (the GP learns the rest). An "
        "active campaign (EI on the structured GP) is not benchmarked here.",
        "",
        f"{wall_s:.0f} s wall, {cpu_s:.0f} s CPU for the whole table (one torch thread); "
        f"load average at the start {load} (a machine shared with other sessions).",
    )


if __name__ == "__main__":
    main()
