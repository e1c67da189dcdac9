"""Hypothesis learning: does the campaign find the true law, and does its map beat a plain GP?

A synthetic sample per seed on a 20 x 20 grid of normalised coordinates: a true law — a
``domain_wall`` (offset -0.5, height 3, width 0.05, its angle drawn uniformly in [0, pi) and
its position in [-0.2, 0.2] per seed) by default, or a ``gaussian_peak`` (amplitude 2, width
0.15, centre drawn in [0.25, 0.75]^2) with ``--truth peak`` — plus a smooth non-physical
residual ``0.2 sin(3 x_0 + phi) cos(2 x_1)`` (phi per seed), written as a recorded dataset
(one-point ``height`` signal, scalarizer ``mean``), measured with instrument noise 0.02.

Campaigns through the real loop (``CampaignLoop`` + ``LocalExecutor``, 4 random initial
points, 60 L-BFGS iterations, a refit per measurement):

* ``hypotheses``: policy ``hypotheses`` over the 3 candidate laws ``domain_wall``,
  ``gaussian_peak``, ``linear`` (default priors, ``explore`` 1); the map is the
  probability-weighted mixture;
* ``plain GP``: ``maxvar`` on the exact GP (map learning, no physics);
* ``DKL``: ``maxvar`` on a deep-kernel GP over the same coordinates (the sample has no
  structure image to learn from: the DKL's MLP 2 -> 64 -> 64 -> 2 only warps the inputs).

Reported at 2 % (8) and 5 % (20) of the grid: the fraction of seeds where the true law has
the highest probability, the mean ± standard deviation of its probability, and the map RMSE
against the noise-free truth (law + residual) of each campaign.

Usage: ``python benchmarks/hypotheses.py [--seeds 10] [--truth wall|peak] [--no-dkl]``
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

from coscope.agents import DKLAgent  # noqa: E402
from coscope.campaign.context import scalar_target  # noqa: E402
from coscope.config import parse_spec  # noqa: E402
from coscope.infra.local import open_local  # noqa: E402
from coscope.spaces import layout_features  # noqa: E402
from coscope.storage.datasets import Dataset, write_dataset  # noqa: E402
from coscope.types import Location, ModalityInfo  # noqa: E402

SIZE = 20
LAWS = ("domain_wall", "gaussian_peak", "linear")
BUDGETS = (8, 20)  # 2 % and 5 % of 400 pixels
TRUE_LAW = {"wall": "domain_wall", "peak": "gaussian_peak"}


def truth_map(kind: str, seed: int) -> np.ndarray:
    """``SIZE x SIZE`` truth of seed ``seed``: the law plus the smooth residual."""
    rng = np.random.default_rng([2026, seed])
    g = np.linspace(0.0, 1.0, SIZE)
    r, c = np.meshgrid(g, g, indexing="ij")
    if kind == "wall":
        angle, position = rng.uniform(0, np.pi), rng.uniform(-0.2, 0.2)
        along = (r - 0.5) * np.cos(angle) + (c - 0.5) * np.sin(angle)
        law = -0.5 + 1.5 * np.tanh((along - position) / 0.05)
    else:
        c0, c1 = rng.uniform(0.25, 0.75, 2)
        law = 1.0 + 2.0 * np.exp(-((r - c0) ** 2 + (c - c1) ** 2) / (2 * 0.15**2))
    phi = rng.uniform(0, 2 * np.pi)
    return law + 0.2 * np.sin(3 * r + phi) * np.cos(2 * c)


def campaign(kind: str, method: str, seed: int, folder: Path) -> list[dict[str, float]]:
    """History rows of one campaign (one per measurement)."""
    path = folder / f"{kind}-{seed}.zarr"
    if not path.exists():
        height = ModalityInfo("height", np.zeros(1), "index", "", "a.u.")
        signals = {"height": truth_map(kind, seed)[..., None]}
        topo = {"topo": np.zeros((SIZE, SIZE))}
        write_dataset(Dataset(kind, "benchmark", topo, {"height": height}, signals), path)
    policy: dict = {"name": "maxvar", "n_initial": 4, "fit_iterations": 60}
    if method == "hypotheses":
        policy.update(name="hypotheses", models=[{"law": law} for law in LAWS])
    spec = parse_spec(
        {
            "name": f"{kind}-{method}-{seed}",
            "seed": seed,
            "sample": {"kind": "dataset", "params": {"path": str(path)}},
            "instruments": [
                {"name": "afm", "modalities": ["height"], "latency_s": 0.0, "noise": 0.02}
            ],
            "scalarizer": {"name": "mean", "modality": "height"},
            "policy": policy,
            "budget": {"max_measurements": max(BUDGETS)},
            "time_scale": 0.0,
            "run_dir": str(folder / f"{kind}-{method}-{seed}"),
        }
    )
    loop, sample = open_local(spec)
    ctx = loop.ctx
    if method == "dkl":  # DKL over the coordinates: the sample has no structure to learn
        assert ctx.space is not None
        ctx.use_agent(
            DKLAgent(
                ctx.space,
                features=layout_features(ctx.space),
                policy="maxvar",
                scalar_target=scalar_target(spec, sample),
                seed=seed,
                n_initial=4,
                seed_points=[Location(r, c) for r, c in spec.seed_points],
                fit_iterations=60,
            )
        )
    try:
        outcome = loop.run()
    finally:
        ctx.store.close()
    return outcome.history


def _cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--truth", choices=sorted(TRUE_LAW), default="wall")
    parser.add_argument("--no-dkl", action="store_true")
    args = parser.parse_args()
    methods = ["hypotheses", "gp"] + ([] if args.no_dkl else ["dkl"])
    true = TRUE_LAW[args.truth]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    t0, cpu0 = time.perf_counter(), time.process_time()
    rmse: dict[str, dict[int, list[float]]] = {m: {n: [] for n in BUDGETS} for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    prob: dict[int, list[float]] = {n: [] for n in BUDGETS}
    right: dict[int, int] = {n: 0 for n in BUDGETS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method in methods:
                t = time.perf_counter()
                history = campaign(args.truth, method, seed, Path(tmp))
                seconds[method].append(time.perf_counter() - t)
                for n in BUDGETS:
                    row = history[n - 1]
                    rmse[method][n].append(row["rmse"])
                    if method == "hypotheses":
                        probs = {law: row[f"hypothesis.{law}.prob"] for law in LAWS}
                        prob[n].append(probs[true])
                        right[n] += max(probs, key=lambda k: probs[k]) == true
                print(seed, method, [round(rmse[method][n][-1], 3) for n in BUDGETS], flush=True)
            print(seed, "p(true)", [round(prob[n][-1], 3) for n in BUDGETS], flush=True)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    names = {"hypotheses": "hypotheses (mixture)", "gp": "plain GP (maxvar)", "dkl": "DKL (maxvar)"}
    verdict_rows = [
        [f"{n} ({100 * n / SIZE**2:.0f} %)", f"{right[n]}/{args.seeds}", _cell(prob[n])]
        for n in BUDGETS
    ]
    error_rows = []
    for n in BUDGETS:
        base = statistics.mean(rmse["gp"][n])
        error_rows.append(
            [f"{n} ({100 * n / SIZE**2:.0f} %)"]
            + [_cell(rmse[m][n]) for m in methods]
            + [f"{base / statistics.mean(rmse['hypotheses'][n]):.1f}x"]
        )
    timing = ", ".join(f"{names[m]} {statistics.mean(seconds[m]):.0f} s" for m in methods)
    _report.publish(
        f"hypotheses_{args.truth}",
        f"Hypothesis learning, true law `{true}` (`benchmarks/hypotheses.py --truth {args.truth}`)",
        f"{args.seeds} seeds (0..), each its own synthetic {SIZE} x {SIZE} sample: the true law "
        f"`{true}` with parameters drawn per seed, plus a smooth non-physical residual "
        "(amplitude 0.2), instrument noise 0.02. Candidate laws: "
        + ", ".join(f"`{law}`" for law in LAWS)
        + " (default priors). Campaigns through the real loop, 4 random initial points, a "
        "refit per measurement. The true law leads when its probability (pseudo-BMA weight "
        "of the leave-one-out score) is the highest of the three:",
        "",
        _report.table(["measurements", "true law leads", "its probability"], verdict_rows),
        "",
        "Map RMSE against the noise-free truth over the whole grid (mean ± standard "
        "deviation over the seeds), same seeds, same budgets:",
        "",
        _report.table(
            ["measurements", *[names[m] for m in methods], "plain GP / hypotheses"], error_rows
        ),
        "",
        f"Mean campaign time to {max(BUDGETS)} measurements: {timing}. {wall_s:.0f} s wall, "
        f"{cpu_s:.0f} s CPU in all (one torch thread); load average at the start {load} (a "
        "machine shared with other sessions).",
    )


if __name__ == "__main__":
    main()
