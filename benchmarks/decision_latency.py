"""Decision latency: refit + acquisition of a GPAgent, against data size n and grid size m.

For each (n, m): build a ``GPAgent`` (EI) on a grid of m cells, ingest n noisy observations
of a smooth synthetic function at distinct random pixels, then time

* ``agent.fit(step)``: :func:`coscope.models.fit_gp` on the n observations (default
  iterations, as the campaign loop fits every new datum);
* ``agent.suggest(1, ...)``: EI over every candidate on the loaded model (no refit);
* ``agent.report()``: posterior mean and std over the grid, which the loop computes for the
  map-RMSE metric (every measurement up to 10,000 cells, every 10th above).

Median of 3 repetitions per cell (fresh agent each time).

Usage: ``python benchmarks/decision_latency.py [--quick] [--reps R]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

N_VALUES = (25, 50, 100, 200, 300, 500)
GRIDS = {2_500: (50, 50), 10_000: (100, 100), 40_000: (200, 200), 100_000: (250, 400)}
QUICK_N = (25, 100, 300)
QUICK_M = (2_500, 40_000)


def _truth(x, y):
    import numpy as np

    return (
        np.sin(3.0 * x) * np.cos(2.0 * y)
        + 1.5 * np.exp(-((x - 0.7) ** 2 + (y - 0.3) ** 2) / 0.02)
        + 0.5 * x * y
    )


def _agent(n: int, shape: tuple[int, int], seed: int):
    import numpy as np

    from coscope.agents.agent import GPAgent
    from coscope.types import Location, Observation

    agent = GPAgent(shape, policy="ei", seed=seed, n_initial=5)
    rng = np.random.default_rng([seed, n, shape[0], shape[1]])
    idx = rng.choice(shape[0] * shape[1], size=n, replace=False)
    xy = agent.candidates[idx]
    values = _truth(xy[:, 0], xy[:, 1]) + 0.02 * rng.standard_normal(n)
    agent.ingest(
        [
            Observation(k, "beps_loop", Location.from_flat(int(i), shape[1]), float(v))
            for k, (i, v) in enumerate(zip(idx, values, strict=True))
        ]
    )
    return agent


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure_cell(n: int, m: int, reps: int) -> dict[str, float]:
    fit_t, acq_t, rep_t = [], [], []
    for r in range(reps):
        agent = _agent(n, GRIDS[m], seed=r)
        t0 = time.perf_counter()
        agent.fit(step=n)
        t1 = time.perf_counter()
        proposals = agent.suggest(1, step=n, instrument="afm", modality="beps_loop")
        t2 = time.perf_counter()
        agent.report()
        t3 = time.perf_counter()
        assert len(proposals) == 1 and proposals[0].policy == "ei"
        fit_t.append(t1 - t0)
        acq_t.append(t2 - t1)
        rep_t.append(t3 - t2)
    fit, acq = _report.median(fit_t), _report.median(acq_t)
    total = _report.median([f + a for f, a in zip(fit_t, acq_t, strict=True)])
    return {"fit": fit, "acq": acq, "total": total, "report": _report.median(rep_t)}


def _s(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 x 2 cells instead of 6 x 4")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    args = parser.parse_args()
    n_values = QUICK_N if args.quick else N_VALUES
    m_values = QUICK_M if args.quick else tuple(GRIDS)

    import torch

    torch.set_num_threads(1)
    # Warm up imports and botorch's first-call costs so the first cell is not penalised.
    measure_cell(10, 2_500, 1)

    results: dict[tuple[int, int], dict[str, float]] = {}
    rss: dict[int, float] = {}
    t_start = time.perf_counter()
    for m in m_values:  # grids in increasing size, so the running peak RSS is per grid size
        for n in n_values:
            res = measure_cell(n, m, args.reps)
            results[(n, m)] = res
            print(
                f"n={n:4d} m={m:7,d}  fit {_s(res['fit'])} s  acq {_s(res['acq'])} s  "
                f"total {_s(res['total'])} s  report {_s(res['report'])} s",
                flush=True,
            )
        rss[m] = _peak_rss_mib()
    elapsed = time.perf_counter() - t_start

    header = ["n \\ m"] + [f"{m:,}" for m in m_values]

    def cell(res: dict[str, float]) -> str:
        return f"{_s(res['total'])} ({_s(res['fit'])} + {_s(res['acq'])})"

    total_rows = [[str(n)] + [cell(results[(n, m)]) for m in m_values] for n in n_values]
    report_rows = [[str(n)] + [_s(results[(n, m)]["report"]) for m in m_values] for n in n_values]
    fit_by_n = {n: _report.median([results[(n, m)]["fit"] for m in m_values]) for n in n_values}
    total_table = _report.table(header, total_rows)
    report_table = _report.table(header, report_rows)
    fits = ", ".join(f"{_s(fit_by_n[n])} s at n = {n}" for n in n_values)
    rss_line = ", ".join(f"{rss[m]:,.0f} MiB after m = {m:,}" for m in m_values)
    notes = f"""
Cells: decision latency in seconds, **total (fit + acquisition)**, each the median of
{args.reps} repetitions. Fit = `GPAgent.fit` (`fit_gp`, botorch `SingleTaskGP`, L-BFGS,
default 100 iterations cap); acquisition = `GPAgent.suggest(1, ...)` (log-EI over every
cell in batches of 4,096, no refit); the function is a smooth 2-D bump + waves with 2 %
noise, observed at n distinct random cells.

- Fit alone does not depend on m (median over m): {fits}.
- Peak RSS of the process (running maximum, so each value covers all smaller grids too):
  {rss_line}.
- Whole table in {elapsed:.0f} s.

Full-grid `agent.report()` (posterior mean + std over all m cells, seconds), which the
loop calls for the map-RMSE metric after every measurement on grids up to 10,000 cells
(every 10th measurement above):

{report_table}
"""
    _report.publish(
        "decision_latency", "Decision latency (refit + acquisition)", total_table, notes
    )


if __name__ == "__main__":
    main()
