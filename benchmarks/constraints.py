"""Constraints, learned feasibility and the stopping rule (issue 13, parts 2 and 5b).

Sample: ``synthetic_film`` (``--size`` pixels a side, film seed 0), modality ``beps_loop``,
target ``loop_area`` (max), instrument noise 0.02. Every campaign runs through the real loop
(LocalExecutor, no tracking), ``--budget`` measurements, 4 random initial pixels, exact GP
(30 L-BFGS iterations), campaign seeds ``0..seeds-1`` (initial design, noise, fits; the film
is the same). Scores use the *noise-free* signals of the film.

1. **Outcome constraint** ``coercive_field <= t``, ``t`` the grid's median coercive field
   (half the pixels feasible; the unconstrained optimum is infeasible): ``ei`` with
   ``constraints`` (and with ``min_p_feasible: 0.5`` too) vs plain ``ei``. Score: share of
   measurements that violate the constraint, and the best feasible loop area measured over
   the grid's best feasible one.
2. **Learned feasibility**: a block of pixels where every measurement is a bad measurement
   (``faults.bad_region``, the ``--region`` corner block holding the loop-area optimum),
   tolerant failure policy; ``ei`` with ``feasibility: learn`` vs plain ``ei``. Score:
   failed measurements (attempts spent in the region) and the best loop area measured.
3. **Stopping rule** ``ei_below`` (``--threshold``, patience 3, at least 10 decisions) vs the
   same campaign run to budget. Score: measurements saved, and the quality lost at the stop:
   map RMSE of the loop-area posterior mean against the noise-free map, and the best loop
   area measured over the grid's best.

Usage: ``python benchmarks/constraints.py [--seeds 10] [--size 16] [--budget 30]``
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
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def _spec(folder: Path, name: str, seed: int, args: argparse.Namespace, **changes: Any):
    from coscope.config import parse_spec

    data: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "sample": {"kind": "synthetic_film", "params": {"size": args.size}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "noise": 0.02}],
        "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 30},
        "budget": {"max_measurements": args.budget},
        "time_scale": 0.0,
        "run_dir": str(folder / f"{name}-{seed}"),
    }
    data.update(changes)
    return parse_spec(data)


def _truth(spec) -> dict[str, np.ndarray]:
    """Noise-free loop area and coercive field of every pixel, ``(H*W,)`` each."""
    from coscope.infra.compose import sample_from_spec
    from coscope.scalarizers import scalarize

    sample = sample_from_spec(spec.sample, spec.seed)
    flat = sample.truth["beps_loop"].reshape(-1, sample.truth["beps_loop"].shape[-1])
    axis = sample.info("beps_loop").axis
    return {
        name: np.array([scalarize(name, s, axis) for s in flat])
        for name in ("loop_area", "coercive_field")
    }


def _run(spec) -> dict[str, Any]:
    """Run one campaign: measured pixels (flat, in order), failures, outcome, last RMSE."""
    from coscope.infra.local import run_local

    t0 = time.perf_counter()
    outcome, store = run_local(spec)
    seconds = time.perf_counter() - t0
    width = store.sample_shape[1]
    measured = [m.location.flat(width) for m in store.measurements()]
    failed = sum(i.kind == "failed_measurement" for i in store.interventions())
    rmse = next((r["rmse"] for r in reversed(outcome.history) if "rmse" in r), float("nan"))
    return {
        "measured": measured,
        "failed": failed,
        "n": outcome.n_measurements,
        "reason": outcome.reason,
        "rmse": rmse,
        "seconds": seconds,
    }


def _ms(values: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--region", type=int, default=6, help="side of the failing block")
    parser.add_argument("--threshold", type=float, default=0.05, help="ei_below, loop-area units")
    args = parser.parse_args()

    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu0 = time.process_time()
    seconds: dict[str, float] = {}
    rows: dict[str, list[dict[str, Any]]] = {}

    def record(key: str, result: dict[str, Any]) -> None:
        seconds[key] = seconds.get(key, 0.0) + result["seconds"]
        rows.setdefault(key, []).append(result)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = _truth(_spec(folder, "probe", 0, args))
        area, field = truth["loop_area"], truth["coercive_field"]
        bound = float(np.median(field))
        feasible = field <= bound
        best_feasible = float(area[feasible].max())
        H = W = args.size
        rr, cc = np.divmod(np.arange(H * W), W)
        opt_r, opt_c = divmod(int(area.argmax()), W)
        r0 = min(max(opt_r - args.region // 2, 0), H - args.region)
        c0 = min(max(opt_c - args.region // 2, 0), W - args.region)
        region = [r0, c0, r0 + args.region, c0 + args.region]
        outside = ~((rr >= region[0]) & (rr < region[2]) & (cc >= region[1]) & (cc < region[3]))
        best_outside = float(area[outside].max())
        constraint = {"name": "coercive_field", "modality": "beps_loop", "op": "<="}
        faulty = [
            {"name": "afm", "latency_s": 0.0, "noise": 0.02, "faults": {"bad_region": region}}
        ]
        tolerant = {"max_rate": 0.9, "min_failures": 10_000}
        stopping = {
            "rule": "ei_below",
            "threshold": args.threshold,
            "patience": 3,
            "min_measurements": 10,
        }
        for seed in range(args.seeds):
            plain = _run(_spec(folder, "ei", seed, args))
            record("ei", plain)
            bounded = [{**constraint, "value": bound}]
            record("constrained", _run(_spec(folder, "cons", seed, args, constraints=bounded)))
            chance = _spec(folder, "chance", seed, args, constraints=bounded, min_p_feasible=0.5)
            record("chance", _run(chance))
            for name, extra in (("ei_faulty", {}), ("learn", {"feasibility": "learn"})):
                spec = _spec(
                    folder, name, seed, args, instruments=faulty, failures=tolerant, **extra
                )
                record(name, _run(spec))
            record("stopped", _run(_spec(folder, "stop", seed, args, stopping=stopping)))
            last = {
                k: (v[-1]["n"], v[-1]["failed"], round(v[-1]["rmse"], 3)) for k, v in rows.items()
            }
            print(seed, last, flush=True)
    cpu = time.process_time() - cpu0

    def violation(r: dict[str, Any], skip: int = 0) -> float:
        """Share of the measurements (after the first ``skip``) that violate the constraint."""
        return float(np.mean(~feasible[r["measured"][skip:]]))

    def best_ok(r: dict[str, Any]) -> float:
        ok = [i for i in r["measured"] if feasible[i]]
        return float(area[ok].max()) / best_feasible if ok else 0.0

    def best(r: dict[str, Any], reference: float) -> float:
        return float(area[r["measured"]].max()) / reference

    n_seeds = args.seeds
    constraint_rows = [
        [
            f"`{label}`",
            str(n_seeds),
            _ms([violation(r) for r in rows[key]]),
            _ms([violation(r, 4) for r in rows[key]]),
            _ms([best_ok(r) for r in rows[key]]),
            ", ".join(f"{violation(r):.2f}" for r in rows[key]),
            f"{seconds[key]:.0f} s",
        ]
        for key, label in (
            ("constrained", "ei + constraint"),
            ("chance", "ei + constraint, min_p_feasible 0.5"),
            ("ei", "ei"),
        )
    ]
    feasibility_rows = [
        [
            f"`{label}`",
            str(n_seeds),
            _ms([float(r["failed"]) for r in rows[key]], 1),
            _ms([r["failed"] / (r["failed"] + r["n"]) for r in rows[key]]),
            _ms([best(r, best_outside) for r in rows[key]]),
            ", ".join(str(r["failed"]) for r in rows[key]),
            f"{seconds[key]:.0f} s",
        ]
        for key, label in (("learn", "ei + feasibility: learn"), ("ei_faulty", "ei"))
    ]
    grid_best = float(area.max())
    stop, full = rows["stopped"], rows["ei"]
    saved = [args.budget - r["n"] for r in stop]
    stopping_rows = [
        [
            "`ei` + `stopping: ei_below`",
            str(n_seeds),
            _ms([float(r["n"]) for r in stop], 1),
            _ms([float(s) for s in saved], 1),
            _ms([r["rmse"] for r in stop]),
            _ms([best(r, grid_best) for r in stop]),
            ", ".join(str(r["n"]) for r in stop),
        ],
        [
            "`ei` to budget",
            str(n_seeds),
            _ms([float(r["n"]) for r in full], 1),
            "0",
            _ms([r["rmse"] for r in full]),
            _ms([best(r, grid_best) for r in full]),
            "",
        ],
    ]
    rmse_lost = [s["rmse"] - f["rmse"] for s, f in zip(stop, full, strict=True)]
    best_lost = [best(f, grid_best) - best(s, grid_best) for s, f in zip(stop, full, strict=True)]
    n_pixels = args.size**2
    _report.publish(
        "constraints",
        "Constraints, learned feasibility and the stopping rule (`benchmarks/constraints.py`)",
        f"`synthetic_film` {args.size} x {args.size} ({n_pixels} pixels), target `loop_area` "
        "of `beps_loop`, noise 0.02; every campaign through the real loop (LocalExecutor, no "
        f"tracking), {args.budget} measurements, 4 random initial pixels, exact GP; campaign "
        f"seeds 0..{n_seeds - 1}, the same film; scores on the noise-free signals; mean ± "
        "standard deviation over the seeds. Plain `ei` is the baseline of each part, in the "
        "same run.",
        "",
        f"**Outcome constraint** `coercive_field <= {bound:.3f}` (the grid's median: "
        f"{int(feasible.sum())} of {n_pixels} pixels feasible; the loop-area optimum "
        f"{grid_best:.2f} is infeasible, the best feasible {best_feasible:.2f}).",
        "",
        _report.table(
            [
                "policy",
                "seeds",
                "measurements violating",
                "after the 4 initial",
                "best feasible found / grid's",
                "violating, per seed",
                "wall, all seeds",
            ],
            constraint_rows,
        ),
        "",
        f"**Learned feasibility**: every measurement in the {args.region} x {args.region} block "
        f"rows {region[0]}..{region[2] - 1}, cols {region[1]}..{region[3] - 1} (around the "
        "loop-area optimum) is a bad measurement (`faults.bad_region`); tolerant failure "
        "policy (`max_rate: 0.9`), so each failure is retired and the campaign goes on. The "
        f"budget counts measurements, not failures. Best found relative to the best outside "
        f"the block ({best_outside:.2f}).",
        "",
        _report.table(
            [
                "policy",
                "seeds",
                "failed attempts",
                "share of attempts failed",
                "best found / best outside",
                "failed, per seed",
                "wall, all seeds",
            ],
            feasibility_rows,
        ),
        "",
        f"**Stopping rule** `ei_below` {args.threshold:g} (loop-area units; the grid's loop "
        f"areas span {area.min():.1f}..{grid_best:.1f}), patience 3, `min_measurements` 10, "
        "against the same campaign (same seed) run to budget; the stopped campaign's "
        "decisions are the first ones of the full run. Quality at the stop: RMSE of the "
        "posterior-mean loop-area map against the noise-free map, best measured loop area "
        "over the grid's best.",
        "",
        _report.table(
            [
                "campaign",
                "seeds",
                "measurements",
                "saved",
                "map RMSE at the end",
                "best found / grid's",
                "measurements, per seed",
            ],
            stopping_rows,
        ),
        "",
        f"Quality lost at the stop, per seed (stopped minus full): RMSE "
        f"{_ms(rmse_lost)}, best found {_ms(best_lost)} (share of the grid's best).",
        "",
        f"CPU time of the whole run {cpu:.0f} s (one thread); load average (`uptime`) at the "
        f"start {load_start}, at the end in the machine line above: the machine is shared, "
        "so read the wall times as orders of magnitude (the scores do not depend on timing). "
        "A small synthetic film, not BEPS_PTO_50x50.",
    )


if __name__ == "__main__":
    main()
