"""DKL decision latency (refit + acquisition) from 2,500 to 1,000,000 candidates.

For each grid size m (H x W pixels of a synthetic structure image: a smoothed random field,
9 x 9 patches built on demand through ``PatchGrid``, never the whole ``m x 81`` matrix above
the smallest grid) and data size n (observations at distinct random pixels of a nonlinear
function of the local patch), time one decision of a ``DKLAgent`` (EI):

* **warm** — the typical campaign step with ``policy.warm_start``: a warm fit of 20 Adam
  steps from the cold anchor fitted 5 observations earlier (fitted before the clock starts,
  as a campaign did at that earlier step), then ``load_fit`` (embed every pixel, cached
  latent-GP factor) and ``suggest(1)`` (log-EI over every pixel, argmax);
* **cold** — the anchor step (one in ``cold_every``, and every step without warm starts):
  a cold fit of 100 Adam steps, then the same ``load_fit`` + ``suggest``;
* **before** (m = 2,500 only) — what this branch started from: cold fit, then EI through
  botorch's ``SingleTaskGP`` posterior (LOVE) instead of the cached factor.

Above 65,536 candidates the agent embeds pixels in float32, scores a 128 x 128 lattice of
the 2-D latent plane and rescores the 4,096 best exactly (``coscope.agents.dkl_scoring``);
at m = 100,000 the script also runs the exact scoring of every candidate and reports whether
the two pick the same pixel. Peak RSS is the process's running maximum (grids in increasing size).

Usage: ``python benchmarks/dkl_latency.py [--quick] [--reps R]``
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

import numpy as np  # noqa: E402

GRIDS = {2_500: (50, 50), 10_000: (100, 100), 100_000: (250, 400), 1_000_000: (1000, 1000)}
N_VALUES = (50, 150, 300, 500)
WINDOW = 9
ANCHOR_LAG = 5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _case(shape: tuple[int, int]):
    from scipy.ndimage import gaussian_filter

    from coscope.models.patches import PatchGrid

    rng = np.random.default_rng(shape[0] * 7919 + shape[1])
    return PatchGrid(gaussian_filter(rng.normal(size=shape), 2.0), WINDOW)


def _target(F: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c = WINDOW**2 // 2
    return np.tanh(F[:, c - 4 : c + 5].sum(axis=1)) + 0.3 * F[:, c] + 0.02 * rng.normal(size=len(F))


def _agent(grid, shape, n: int, rep: int, exact_max: int | None = None):
    from coscope.agents import DKLAgent
    from coscope.types import Location, Observation

    rng = np.random.default_rng([n, rep, shape[0]])
    idx = rng.choice(shape[0] * shape[1], size=n, replace=False)
    y = _target(grid[idx], rng)
    agent = DKLAgent(shape, features=grid, policy="ei", seed=rep, n_initial=0, warm_start=True)
    if exact_max is not None:
        agent.exact_max = exact_max
    agent.ingest(
        [
            Observation(k, "m", Location.from_flat(int(i), shape[1]), float(v))
            for k, (i, v) in enumerate(zip(idx, y, strict=True))
        ]
    )
    return agent


def _decide(agent, n: int, init=None) -> tuple[float, float, int, float]:
    """(fit seconds, load + suggest seconds, chosen flat index, CPU seconds of both)."""
    from coscope.models import fit_model

    F, y = agent.training_data()
    options = {"latent_dim": agent.latent_dim}
    if init is not None:
        options |= {"init": init, "warm_iterations": agent.warm_iterations}
    c0, t0 = time.process_time(), time.perf_counter()
    state = fit_model("dkl", F, y, agent.fit_seed(), agent.fit_iterations, **options)
    t1 = time.perf_counter()
    agent.load_fit(state, 0, n)
    (p,) = agent.suggest(1, step=n, instrument="i", modality="m")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, p.location.flat(agent.grid_shape[1]), time.process_time() - c0


def _anchor(agent, n: int):
    from coscope.models import fit_model

    F, y = agent.training_data()
    a = n - ANCHOR_LAG
    seed = np.random.SeedSequence([agent.seed, 104729, a]).generate_state(1)[0]
    return fit_model("dkl", F[:a], y[:a], int(seed), agent.fit_iterations, latent_dim=2)


def _before(grid, shape, n: int, rep: int) -> float:
    """Cold fit + botorch SingleTaskGP scoring (the path before the cached factor)."""
    agent = _agent(grid, shape, n, rep)
    F, y = agent.training_data()
    from coscope.models import fit_model

    t0 = time.perf_counter()
    state = fit_model("dkl", F, y, agent.fit_seed(), agent.fit_iterations, latent_dim=2)
    agent.load_fit(state, 0, n)
    agent._model = agent._gp  # score through botorch's posterior, as before
    agent.suggest(1, step=n, instrument="i", modality="m")
    return time.perf_counter() - t0


def measure(m: int, n: int, reps: int) -> dict:
    shape = GRIDS[m]
    grid = _case(shape)
    warm_fit, warm_acq, cold_fit, cold_acq, warm_cpu, warm_kept = [], [], [], [], [], 0
    for rep in range(reps):
        agent = _agent(grid, shape, n, rep)
        anchor = _anchor(agent, n)
        f, a, _, cpu = _decide(agent, n, init=anchor)
        warm_cpu.append(cpu)
        warm_fit.append(f)
        warm_acq.append(a)
        warm_kept += int(agent._state.warm)
        f, a, _, _ = _decide(_agent(grid, shape, n, rep), n)
        cold_fit.append(f)
        cold_acq.append(a)
    med = _report.median
    row = {
        "m": m,
        "n": n,
        "warm": med([f + a for f, a in zip(warm_fit, warm_acq, strict=True)]),
        "warm_fit": med(warm_fit),
        "warm_cpu": med(warm_cpu),
        "acq": med(warm_acq + cold_acq),
        "cold": med([f + a for f, a in zip(cold_fit, cold_acq, strict=True)]),
        "cold_fit": med(cold_fit),
        "kept": f"{warm_kept}/{reps}",
        "before": med([_before(grid, shape, n, r) for r in range(reps)]) if m == 2_500 else None,
    }
    return row


def lattice_check(n: int = 300) -> dict:
    """At m = 100,000: does the lattice path pick the exact argmax? (and the exact time)."""
    shape = GRIDS[100_000]
    grid = _case(shape)
    out = {}
    for label, exact_max in (("lattice", None), ("exact", 10**9)):
        agent = _agent(grid, shape, n, 0, exact_max=exact_max)
        fit, acq, pick, _ = _decide(agent, n)
        out[label] = (acq, pick)
    return out


def _s(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 300 only, 2 reps")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    n_values = (300,) if args.quick else N_VALUES
    reps = 2 if args.quick else args.reps
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    measure(2_500, 50, 1)  # warm-up: imports, first-call costs
    rows, rss = [], {}
    for m in GRIDS:
        for n in n_values:
            rows.append(measure(m, n, reps if m < 1_000_000 else max(1, reps - 1)))
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()})
        rss[m] = _rss_mib()
        print(f"peak RSS after m = {m:,}: {rss[m]:.0f} MiB", flush=True)
    check = lattice_check()
    print(check)
    elapsed = time.perf_counter() - t_start
    load1 = os.getloadavg()

    table = _report.table(
        [
            "m candidates",
            "n",
            "**warm step** (s)",
            "warm step, CPU (s)",
            "warm fit (s)",
            "embed + EI + argmax (s)",
            "cold step (s)",
            "cold fit (s)",
            "guard kept warm",
            "before: cold + botorch EI (s)",
        ],
        [
            [
                f"{r['m']:,}",
                r["n"],
                f"**{_s(r['warm'])}**",
                _s(r["warm_cpu"]),
                _s(r["warm_fit"]),
                _s(r["acq"]),
                _s(r["cold"]),
                _s(r["cold_fit"]),
                r["kept"],
                _s(r["before"]),
            ]
            for r in rows
        ],
    )
    (lat_s, lat_pick), (ex_s, ex_pick) = check["lattice"], check["exact"]
    rss_line = ", ".join(f"{rss[m]:,.0f} MiB after m = {m:,}" for m in GRIDS)
    notes = f"""
Load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in load0)}, at end
{tuple(round(x, 2) for x in load1)} — a shared 2-core machine (other engineers' jobs and this
branch's BEPS campaigns may have run at the same time): read the figures as upper bounds.

Medians of {reps} repetitions per cell ({max(1, reps - 1)} at m = 1,000,000), one process,
one torch thread, float64 except the float32 embedding above 65,536
candidates. Synthetic case: smoothed random 2-D field as the
structure image, target = tanh of the sum of the 9 patch pixels around the centre + 0.3 x
centre + 2 % noise. Warm step = warm fit (20 Adam steps from a cold anchor fitted
{ANCHOR_LAG} observations earlier; the guard's verdict in "guard kept warm") + load (embed
every pixel, cached latent-GP factor) + log-EI over every pixel + argmax; "CPU" is the
process's CPU time for it (one thread, so close to the wall time on an unloaded core). Cold
step = cold fit (100 Adam steps) + the same. In a campaign with `warm_start: true` and
`cold_every: 10`, 9 of 10 policy steps are warm steps.

- Peak RSS (running maximum of the process): {rss_line}. Patch rows are built in blocks of
  image rows (16,384 pixels), so the 1,000 x 1,000 grid never holds its 1e6 x 81 matrix
  (648 MB in float64).
- Lattice check at m = 100,000, n = 300: lattice scoring {_s(lat_s)} s picked pixel
  {lat_pick}; exact scoring of every candidate {_s(ex_s)} s picked pixel {ex_pick}
  ({"the same pixel" if lat_pick == ex_pick else "a DIFFERENT pixel"}).
- Whole script {elapsed:.0f} s.
"""
    _report.publish(
        "dkl_latency", "DKL decision latency (`benchmarks/dkl_latency.py`)", table, notes
    )


if __name__ == "__main__":
    main()
