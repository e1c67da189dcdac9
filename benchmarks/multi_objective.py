"""Multi-objective (issue 13, part 1): hypervolume of the measured set vs the full-grid front.

Sample: ``synthetic_film`` (``--size`` pixels a side, seed 0 for the film), modality
``beps_loop``, objectives ``loop_area`` (max) and ``coercive_field`` (min), instrument noise
0.02. Campaigns through the real loop (LocalExecutor, no tracking): ``qlognehvi`` (4 random
initial pixels, then qLogNEHVI with 64 quasi-MC samples, 30 L-BFGS iterations per GP) and
``random``, ``--budget`` measurements, campaign seeds ``0..seeds-1`` (initial design, noise,
fits; the film is the same).

Score: hypervolume of the *noise-free* objective values at the measured pixels divided by the
hypervolume of the whole grid's Pareto front, both with the full grid's reference point
(minimum minus 10 % of the range, maximisation convention): 1.0 means the measured set
dominates everything the grid does.

Usage: ``python benchmarks/multi_objective.py [--seeds 10] [--size 16] [--budget 26]`` (about
100 CPU-seconds)
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

OBJECTIVES = [
    {"name": "loop_area", "modality": "beps_loop", "goal": "max"},
    {"name": "coercive_field", "modality": "beps_loop", "goal": "min"},
]
SIGNS = np.array([1.0, -1.0])
POLICIES = ("qlognehvi", "random")


def _spec(folder: Path, policy: str, seed: int, size: int, budget: int):
    from coscope.config import parse_spec

    params = {"params": {"mc_samples": 64}} if policy == "qlognehvi" else {}
    return parse_spec(
        {
            "name": f"mo-{policy}-{seed}",
            "seed": seed,
            "sample": {"kind": "synthetic_film", "params": {"size": size}},
            "instruments": [{"name": "afm", "latency_s": 0.0, "noise": 0.02}],
            "objectives": OBJECTIVES,
            "policy": {"name": policy, "n_initial": 4, "fit_iterations": 30, **params},
            "budget": {"max_measurements": budget},
            "time_scale": 0.0,
            "run_dir": str(folder / f"{policy}-{seed}"),
        }
    )


def _truth(spec) -> np.ndarray:
    """Noise-free objective values of every pixel, ``(H*W) x 2``, maximisation convention."""
    from coscope.infra.compose import sample_from_spec
    from coscope.scalarizers import scalarize

    sample = sample_from_spec(spec.sample, spec.seed)
    signals = sample.truth["beps_loop"]
    axis = sample.info("beps_loop").axis
    flat = signals.reshape(-1, signals.shape[-1])
    Y = [[scalarize(o["name"], s, axis) for o in OBJECTIVES] for s in flat]
    return np.array(Y) * SIGNS


def _run(spec) -> list[int]:
    """Run one campaign; the flat pixel indices it measured, in order."""
    from coscope.infra.local import run_local

    _, store = run_local(spec)
    width = store.sample_shape[1]
    return [m.location.flat(width) for m in store.measurements()]


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--budget", type=int, default=26)
    args = parser.parse_args()

    from coscope.pareto import default_ref_point, hypervolume, pareto_mask

    checkpoints = sorted({max(5, args.budget // 2), args.budget})
    results: dict[str, list[list[float]]] = {p: [] for p in POLICIES}
    seconds: dict[str, float] = dict.fromkeys(POLICIES, 0.0)
    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = _truth(_spec(folder, "random", 0, args.size, args.budget))
        ref = default_ref_point(truth)
        full = hypervolume(truth, ref)
        n_front = int(pareto_mask(truth).sum())
        for seed in range(args.seeds):
            for policy in POLICIES:
                t0 = time.perf_counter()
                measured = _run(_spec(folder, policy, seed, args.size, args.budget))
                seconds[policy] += time.perf_counter() - t0
                fractions = [hypervolume(truth[measured[:k]], ref) / full for k in checkpoints]
                results[policy].append(fractions)
                print(policy, seed, [f"{f:.3f}" for f in fractions], flush=True)
    cpu = time.process_time() - cpu0
    n_pixels = args.size**2
    rows = []
    for policy in POLICIES:
        runs = results[policy]
        cells = [_mean_sd([r[i] for r in runs]) for i in range(len(checkpoints))]
        last = ", ".join(f"{r[-1]:.2f}" for r in runs)
        rows.append([f"`{policy}`", str(len(runs)), *cells, last, f"{seconds[policy]:.0f} s"])
    header = [
        "policy",
        "seeds",
        *(f"HV fraction @ {k} ({100 * k / n_pixels:.1f} %)" for k in checkpoints),
        "per seed at the end",
        "wall, all seeds",
    ]
    _report.publish(
        "multi_objective",
        "Multi-objective: qLogNEHVI vs random, synthetic film (`benchmarks/multi_objective.py`)",
        f"`synthetic_film` {args.size} x {args.size} ({n_pixels} pixels), objectives "
        "`loop_area` (max) and `coercive_field` (min) of `beps_loop`, noise 0.02; the full "
        f"grid's Pareto front has {n_front} pixels. Campaigns through the real loop "
        "(LocalExecutor, no tracking): `qlognehvi` (4 random initial pixels, then qLogNEHVI, "
        "64 quasi-MC samples, one exact GP per objective) and `random`, "
        f"{args.budget} measurements, campaign seeds 0..{args.seeds - 1}. Score: hypervolume "
        "of the noise-free objective values at the measured pixels over that of the full "
        "grid, both with the full grid's reference point (minimum minus 10 % of the range); "
        "mean ± standard deviation over the seeds.",
        "",
        _report.table(header, rows),
        "",
        f"CPU time of the whole run {cpu:.0f} s (one thread); load average (`uptime`) at the "
        f"start {load_start}, at the end in the machine line above: the machine is shared, "
        "so read the wall times as orders of magnitude (the fractions do not depend on "
        "timing). This is a small synthetic "
        "film, not the issue's BEPS_PTO_50x50 figure (2 / 5 / 10 % of the grid, >= 10 "
        "seeds, DKL and scalarized EI), which is still to do.",
    )


if __name__ == "__main__":
    main()
