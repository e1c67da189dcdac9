"""Fidelity as a choice (issue 13, part 4): cost to a target map RMSE, chosen vs fixed dwell.

Sample: ``synthetic_film`` (``--size`` pixels a side, film seed 0), modality ``beps_loop``,
target ``loop_area``; instrument ``cost`` 1 (a dwell-1.0 measurement), relative noise
``--noise`` at dwell 1.0 (std ``/ sqrt(dwell)``), stage travel ``--travel`` per µm (a fixed
part of every price), dwells ``0.25, 1, 4``. Every campaign runs through the real loop
(LocalExecutor, no tracking) until it has spent ``--budget`` (cost units), with policy
``fidelity`` (4 random initial pixels at dwell 1, exact GP, 30 L-BFGS iterations) offering
either all three dwells (the policy chooses) or one (a fixed dwell, the same criterion
otherwise). Campaign seeds ``0..seeds-1``. Score: the cost spent when the map RMSE of the
posterior mean against the noise-free loop-area map first falls to ``--target`` times the
grid's loop-area std (``nrmse``); a campaign that never reaches it counts as not reached.

Usage: ``python benchmarks/fidelity.py [--seeds 10] [--size 12] [--budget 40]``
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


def _spec(folder: Path, name: str, seed: int, dwells: list[float], args: argparse.Namespace):
    from coscope.config import parse_spec

    inst = {
        "name": "afm",
        "latency_s": 0.0,
        "cost": 1.0,
        "noise": args.noise,
        "travel_cost_per_um": args.travel,
        "options": {"dwell": dwells},
    }
    return parse_spec(
        {
            "name": name,
            "seed": seed,
            "sample": {"kind": "synthetic_film", "params": {"size": args.size}},
            "instruments": [inst],
            "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
            "policy": {"name": "fidelity", "n_initial": 4, "fit_iterations": 30},
            "budget": {"max_cost": args.budget, "max_measurements": args.size**2},
            "time_scale": 0.0,
            "run_dir": str(folder / f"{name}-{seed}"),
        }
    )


def _run(spec, target: float) -> dict[str, Any]:
    """One campaign: cost at the first nrmse <= target (None if never), dwells chosen."""
    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )

    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    t0 = time.perf_counter()
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    seconds = time.perf_counter() - t0
    dwells = [float(d.params.get("dwell", 1.0)) for d in ctx.store.decisions()]
    ctx.store.close()
    reached = next(
        (r["cost_spent"] for r in outcome.history if r.get("nrmse", float("inf")) <= target),
        None,
    )
    final = next((r["nrmse"] for r in reversed(outcome.history) if "nrmse" in r), float("nan"))
    return {"cost": reached, "final": final, "dwells": dwells, "seconds": seconds}


def _ms(values: list[float], digits: int = 1) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, default=12)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--travel", type=float, default=1.0, help="cost per µm of stage travel")
    parser.add_argument("--target", type=float, default=0.5, help="nrmse to reach")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()

    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu0 = time.process_time()
    arms = {"chosen": list(DWELLS), **{f"fixed {d:g}": [d] for d in DWELLS}}
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in arms}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in range(args.seeds):
            for key, dwells in arms.items():
                name = key.replace(" ", "-")
                rows[key].append(_run(_spec(folder, name, seed, dwells, args), args.target))
            print(seed, {k: v[-1]["cost"] for k, v in rows.items()}, flush=True)
    cpu = time.process_time() - cpu0

    table = []
    for key, results in rows.items():
        reached = [r["cost"] for r in results if r["cost"] is not None]
        chosen = [d for r in results for d in r["dwells"][4:]]  # after the initial design
        share = ", ".join(f"{d:g}: {chosen.count(d) / max(len(chosen), 1):.2f}" for d in DWELLS)
        table.append(
            [
                f"`{key}`",
                f"{len(reached)}/{len(results)}",
                _ms(reached),
                _ms([r["final"] for r in results], 2),
                share if key == "chosen" else "–",
                f"{sum(r['seconds'] for r in results):.0f} s",
            ]
        )
    parts = (
        f"Film {args.size}x{args.size}, noise {args.noise:g} at dwell 1 (std / sqrt(dwell)), "
        f"price `dwell x 1 + {args.travel:g} x travel (µm)`, budget {args.budget:g} cost units, "
        f"{args.seeds} seeds, policy `fidelity` offering all dwells (`chosen`) or one "
        f"(`fixed d`). Cost to the first map nRMSE <= {args.target:g} (mean ± std over the "
        "seeds that reached it):",
        "",
        _report.table(
            [
                "dwell",
                "reached",
                "cost to target",
                "nRMSE at the budget",
                "dwells chosen (after the initial design)",
                "wall, all seeds",
            ],
            table,
        ),
        "",
        f"CPU time {cpu:.0f} s (one thread); load average at the start {load_start}. "
        "A small synthetic film; read the costs against each other, not as absolute figures.",
    )
    if args.no_write:
        print("\n".join(parts))
        return
    _report.publish("fidelity", "Fidelity as a choice: dwell time per measurement", *parts)


if __name__ == "__main__":
    main()
