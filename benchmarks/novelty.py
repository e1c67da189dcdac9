"""Novelty search (issue 13, part 3): how much of the target space a campaign reaches.

Sample: ``synthetic_film`` (``--size`` pixels a side, the same film for every seed), modality
``beps_loop``; target space spanned by ``loop_area`` and ``coercive_field``, cut into
``--bins`` x ``--bins`` equal cells over the range of the whole film's noise-free values.
Score (BEACON's): the number of distinct cells the noise-free outcomes of the measured pixels
fall in, after 10, 20 … ``--budget`` measurements; the whole film reaches the number given
as the ceiling.

Campaigns through the real loop (LocalExecutor, no tracking), 5 random initial pixels, campaign
seeds ``0..seeds-1``: ``novelty`` (one exact GP per target, Thompson draw, mean distance to the
3 nearest seen outcomes), ``random``, ``qlognehvi`` (the same two targets as objectives,
loop area maximised, coercive field minimised: a Pareto search) and ``ei`` on ``loop_area``
alone (a single-objective search).

Usage: ``python benchmarks/novelty.py [--seeds 10] [--size 20] [--budget 30] [--bins 8]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from multi_objective import OBJECTIVES, _mean_sd, _run, _truth  # noqa: E402

POLICIES = ("novelty", "random", "qlognehvi", "ei")


def _spec(folder: Path, policy: str, seed: int, size: int, budget: int):
    from coscope.config import parse_spec

    targets: dict = {"objectives": OBJECTIVES}
    params: dict = {}
    if policy == "ei":
        targets = {"scalarizer": {"name": "loop_area", "modality": "beps_loop"}}
    elif policy == "qlognehvi":
        params = {"params": {"mc_samples": 64}}
    return parse_spec(
        {
            "name": f"novelty-{policy}-{seed}",
            "seed": seed,
            "sample": {"kind": "synthetic_film", "params": {"size": size}},
            "instruments": [{"name": "afm", "latency_s": 0.0, "noise": 0.02}],
            **targets,
            "policy": {"name": policy, "n_initial": 5, "fit_iterations": 40, **params},
            "budget": {"max_measurements": budget},
            "time_scale": 0.0,
            "run_dir": str(folder / f"{policy}-{seed}"),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--bins", type=int, default=8)
    args = parser.parse_args()

    from coscope.agents.novelty_agent import coverage

    checkpoints = list(range(10, args.budget + 1, 10))
    results: dict[str, list[list[int]]] = {p: [] for p in POLICIES}
    seconds: dict[str, float] = dict.fromkeys(POLICIES, 0.0)
    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = _truth(_spec(folder, "random", 0, args.size, args.budget))
        low, high = truth.min(axis=0), truth.max(axis=0)
        ceiling = coverage(truth, low, high, args.bins)
        for seed in range(args.seeds):
            for policy in POLICIES:
                t0 = time.perf_counter()
                measured = _run(_spec(folder, policy, seed, args.size, args.budget))
                seconds[policy] += time.perf_counter() - t0
                reached = [coverage(truth[measured[:k]], low, high, args.bins) for k in checkpoints]
                results[policy].append(reached)
                print(policy, seed, reached, flush=True)
    n_pixels = args.size**2
    rows = []
    for policy in POLICIES:
        runs = results[policy]
        cells = [_mean_sd([float(r[i]) for r in runs]) for i in range(len(checkpoints))]
        ahead = sum(r[-1] > q[-1] for r, q in zip(runs, results["random"], strict=True))
        versus = "" if policy == "random" else f"{ahead} of {len(runs)}"
        rows.append([f"`{policy}`", str(len(runs)), *cells, versus, f"{seconds[policy]:.0f} s"])
    header = [
        "policy",
        "seeds",
        *(f"cells @ {k} ({100 * k / n_pixels:.1f} %)" for k in checkpoints),
        "seeds ahead of random at the end",
        "wall, all seeds",
    ]
    _report.publish(
        "novelty",
        "Novelty search: target-space coverage, synthetic film (`benchmarks/novelty.py`)",
        f"`synthetic_film` {args.size} x {args.size} ({n_pixels} pixels), `beps_loop`, noise "
        f"0.02; target space (`loop_area`, `coercive_field`) cut into {args.bins} x "
        f"{args.bins} cells over the whole film's range, of which the film reaches "
        f"**{ceiling}**. Score: distinct cells reached by the noise-free outcomes of the "
        "measured pixels (BEACON's measure), mean ± standard deviation over campaign seeds "
        f"0..{args.seeds - 1}; 5 random initial pixels each. `novelty`: one exact GP per "
        "target, one Thompson draw per decision, mean distance to the 3 nearest seen "
        "outcomes (standardised); `qlognehvi`: the same targets as a Pareto search (area "
        "max, coercive field min); `ei`: loop area alone.",
        "",
        _report.table(header, rows),
        "",
        f"Load average (`uptime`) at the start {load_start}, at the end in the machine line "
        "above; the counts do not depend on timing, the wall times do.",
    )


if __name__ == "__main__":
    main()
