"""Fidelity as a choice (issue 13, part 4): map error per cost, chosen vs fixed dwell.

Sample: ``synthetic_film`` (``--size`` pixels a side, film seed = campaign seed), modality
``beps_loop``, target ``loop_area``; instrument ``cost`` 1 (the price of a dwell-1.0
measurement), relative noise ``--noise`` at dwell 1.0 (std ``/ sqrt(dwell)``), overhead
``--overhead`` reference dwells per measurement, so a dwell ``d`` costs
``(overhead + d) / (overhead + 1)``. Every campaign runs in this process through the real loop
(:func:`coscope.infra.local.run_local`, no tracking) until it has spent ``--budget`` cost
units. Arms, the same seeds ``0..seeds-1`` and budget for each:

* ``fidelity``: the policy offered dwells ``0.25, 1, 4`` chooses ``(pixel, dwell)``;
* ``gp dwell 0.25`` / ``gp dwell 4``: policy ``maxvar`` (the same exact GP, the pixel of the
  largest posterior variance) on the instrument offering that one dwell;
* ``random``: random pixels at dwell 1.

All start with 4 random pixels (``n_initial``) and fit with 30 L-BFGS iterations. Score: the
map nRMSE (posterior mean against the noise-free loop-area map, over its std), after half the
budget and at the budget.

Usage: ``python benchmarks/fidelity.py [--seeds 4] [--size 10] [--budget 24] [--noise 0.05 0.6]``
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

DWELLS = (0.25, 1.0, 4.0)
ARMS: dict[str, tuple[str, list[float]]] = {
    "fidelity": ("fidelity", list(DWELLS)),
    "gp dwell 0.25": ("maxvar", [0.25]),
    "gp dwell 4": ("maxvar", [4.0]),
    "random": ("random", list(DWELLS)),
}
"""Arm -> (policy, dwells offered); a plain policy measures at the instrument's default
dwell (1.0 if offered, else its only one)."""


def _spec(folder: Path, arm: str, seed: int, noise: float, args: argparse.Namespace):
    from coscope.config import parse_spec

    policy, dwells = ARMS[arm]
    inst = {
        "name": "afm",
        "latency_s": 0.0,
        "cost": 1.0,
        "noise": noise,
        "options": {"dwell": dwells, "overhead": args.overhead},
    }
    name = f"{arm.replace(' ', '-')}-{noise:g}-{seed}"
    return parse_spec(
        {
            "name": name,
            "seed": seed,
            "sample": {"kind": "synthetic_film", "params": {"size": args.size}},
            "instruments": [inst],
            "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
            "policy": {"name": policy, "n_initial": 4, "fit_iterations": 30},
            "budget": {"max_cost": args.budget, "max_measurements": args.size**2},
            "time_scale": 0.0,
            "run_dir": str(folder / name),
        }
    )


def _nrmse_at(history: list[dict[str, float]], cost: float) -> float:
    """The last nRMSE of ``history`` with at most ``cost`` spent (NaN before any)."""
    values = [r["nrmse"] for r in history if "nrmse" in r and r["cost_spent"] <= cost + 1e-9]
    return values[-1] if values else float("nan")


def _run(spec, budget: float) -> dict[str, Any]:
    """One campaign: nRMSE at half the budget and at its end, dwells measured, wall time."""
    from coscope.infra.local import run_local

    t0 = time.perf_counter()
    outcome, store = run_local(spec)
    seconds = time.perf_counter() - t0
    decisions = {d.step: d for d in store.decisions()}
    dwells = [float(decisions[m.step].params.get("dwell", 1.0)) for m in store.measurements()]
    store.close()
    return {
        "half": _nrmse_at(outcome.history, budget / 2),
        "final": _nrmse_at(outcome.history, budget),
        "n": outcome.n_measurements,
        "spent": outcome.cost_spent,
        "dwells": dwells,
        "seconds": seconds,
    }


def _ms(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def _table(rows: dict[str, list[dict[str, Any]]], n_initial: int) -> str:
    shortest = rows["gp dwell 0.25"]
    table = []
    for arm, results in rows.items():
        chosen = [d for r in results for d in r["dwells"][n_initial:]]
        share = ", ".join(f"{d:g}: {chosen.count(d) / max(len(chosen), 1):.2f}" for d in DWELLS)
        wins = sum(r["final"] <= s["final"] for r, s in zip(results, shortest, strict=True))
        table.append(
            [
                f"`{arm}`",
                _ms([r["half"] for r in results]),
                _ms([r["final"] for r in results]),
                "–" if arm == "gp dwell 0.25" else f"{wins}/{len(results)}",
                _ms([r["n"] for r in results], 1),
                share if arm == "fidelity" else "–",
                f"{sum(r['seconds'] for r in results):.0f} s",
            ]
        )
    return _report.table(
        [
            "arm",
            "nRMSE at half the budget",
            "nRMSE at the budget",
            "seeds <= `gp dwell 0.25` at the budget",
            "measurements",
            "dwells chosen (after the initial design)",
            "wall, all seeds",
        ],
        table,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--budget", type=float, default=24.0)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.6])
    parser.add_argument("--overhead", type=float, default=1.0, help="reference dwells")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()

    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    parts = [
        f"Film {args.size}x{args.size} (film seed = campaign seed), target `loop_area`, "
        f"dwells 0.25 / 1 / 4 at price `(o + d) / (o + 1)` with overhead o = {args.overhead:g} "
        f"(0.625 / 1 / 2.5 cost units), noise std at dwell 1 relative to the loop's "
        f"peak-to-peak, `/ sqrt(d)`; budget {args.budget:g} cost units, seeds 0..{args.seeds - 1}, "
        "the same for every arm. Map nRMSE (mean ± std over the seeds); `fidelity` chooses the "
        "dwell, `gp dwell d` is policy `maxvar` at a fixed dwell, `random` random pixels at "
        "dwell 1 (`benchmarks/fidelity.py`).",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noise:
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ARMS}
            for seed in range(args.seeds):
                for arm in ARMS:
                    spec = _spec(Path(tmp), arm, seed, noise, args)
                    rows[arm].append(_run(spec, args.budget))
                summary = {k: round(v[-1]["final"], 3) for k, v in rows.items()}
                print(f"noise {noise:g} seed {seed}", summary, flush=True)
            parts += ["", f"**Noise {noise:g}** at dwell 1:", "", _table(rows, 4)]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    parts += [
        "",
        f"{wall:.0f} s wall, {cpu:.0f} s CPU (one thread); load average at the start "
        f"{load_start}, at the end {load_end} (a machine shared with other test runs). "
        "A small synthetic film and few seeds: read the arms against each other.",
    ]
    if args.no_write:
        print("\n".join(parts))
        return
    _report.publish("fidelity", "Fidelity as a choice: dwell time per measurement", *parts)


if __name__ == "__main__":
    main()
