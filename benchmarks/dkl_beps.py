"""DKL on structure patches vs a coordinate GP vs random vs raster, on real BEPS data.

Data: ``BEPS_PTO_50x50.h5`` (``Channel_000/generic/generic``, 50 x 50 loops of 64 points;
``Channel_000/generic/Voltage``). Ground truth per pixel: ``loop_area``; structure image:
``remanent`` per pixel (a different scalar of the same loops, standing in for the cheap
structural image). DKL features: 9 x 9 patches of the structure image.

Campaigns (no instrument noise, direct agent loop, one torch thread per process): 10
random initial pixels, then EI on the agent's model, up to 10 % of the grid (250
measurements). Methods: ``DKLAgent`` (EI, cold DKL refit every step, 100 Adam steps),
``GPAgent`` (EI, exact GP on coordinates), ``RandomAgent``, ``RasterAgent``. At 2 %, 5 %
and 10 % of the grid: fraction of the true top-1 % pixels measured, and the RMSE of the
agent's ``report()`` mean map against the truth, divided by the truth's std (random and
raster report a coordinate GP fitted on what they measured, as every baseline does).
Then decision latency of DKL (fit, then embed + EI + argmax over every candidate) at
n = 50 / 150 / 300 training points and m = 2,500 / 10,000 / 100,000 candidates (synthetic
patch features of a smooth random image for the larger m).

Runtime on the 2-core machine: a DKL campaign of 250 steps takes 180-230 s, a
coordinate-GP one ~60 s; the default 6 seeds took 790 s of campaigns plus ~1 min of
latency cells (845 s in all). Every extra pair of seeds adds ~4.5 min.

Usage: ``python benchmarks/dkl_beps.py [--seeds S] [--budget N] [--processes P]``
"""

from __future__ import annotations

import os
import sys

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

DATA = "/work/shared/datasets/dtmicroscope-afm/BEPS_PTO_50x50.h5"
METHODS = ("dkl", "gp", "random", "raster")
N_INITIAL = 10
WINDOW = 9
FRACTIONS = (0.02, 0.05, 0.10)


def load_case() -> tuple[np.ndarray, np.ndarray]:
    """``(truth, structure)``: loop_area and remanent maps, each ``50 x 50``."""
    import h5py

    from coscope.scalarizers import scalarize

    with h5py.File(DATA, "r") as f:
        loops = f["Channel_000/generic/generic"][()]
        voltage = f["Channel_000/generic/Voltage"][()]
    H, W, _ = loops.shape
    truth = np.array(
        [[scalarize("loop_area", loops[r, c], voltage) for c in range(W)] for r in range(H)]
    )
    structure = np.array(
        [[scalarize("remanent", loops[r, c], voltage) for c in range(W)] for r in range(H)]
    )
    return truth, structure


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(job: tuple[str, int, int, np.ndarray, np.ndarray]) -> dict:
    """One campaign; returns top-1 % fraction and nRMSE at the checkpoints."""
    method, seed, budget, truth, structure = job
    from coscope.agents import DKLAgent, GPAgent, RandomAgent, RasterAgent
    from coscope.models import patch_features
    from coscope.types import Observation

    H, W = truth.shape
    common = {"seed": seed, "n_initial": N_INITIAL}
    if method == "dkl":
        agent = DKLAgent((H, W), features=patch_features(structure, WINDOW), policy="ei", **common)
    elif method == "gp":
        agent = GPAgent((H, W), policy="ei", **common)
    elif method == "random":
        agent = RandomAgent((H, W), **common)
    else:
        agent = RasterAgent((H, W), **common)
    flat = truth.ravel()
    top = set(np.argsort(flat)[::-1][: max(1, round(0.01 * flat.size))].tolist())
    checkpoints = sorted(
        {round(f * flat.size) for f in FRACTIONS if round(f * flat.size) <= budget}
    )
    measured: list[int] = []
    out: dict = {"method": method, "seed": seed, "top1": {}, "nrmse": {}, "decide_s": []}
    t0 = time.perf_counter()
    for k in range(budget):
        t = time.perf_counter()
        (p,) = agent.suggest(1, step=k, instrument="beps", modality="beps_loop")
        out["decide_s"].append(time.perf_counter() - t)
        i = p.location.flat(W)
        measured.append(i)
        agent.ingest([Observation(k, "beps_loop", p.location, float(flat[i]))])
        if k + 1 in checkpoints:
            rep = agent.report()
            out["top1"][k + 1] = len(top & set(measured)) / len(top)
            err = rep.mean.ravel() - flat
            out["nrmse"][k + 1] = float(np.sqrt(np.mean(err**2)) / flat.std())
    out["seconds"] = time.perf_counter() - t0
    return out


def latency(ns=(50, 150, 300), ms=(2500, 10_000, 100_000), repeats=2) -> list[dict]:
    """DKL decision latency: fit time and acquisition time (embed + EI + argmax), medians."""
    from scipy.ndimage import gaussian_filter

    from coscope.agents import DKLAgent
    from coscope.models import fit_model, patch_features
    from coscope.types import Location, Observation

    rows = []
    for m in ms:
        side = int(round(m**0.5))
        rng = np.random.default_rng(m)
        img = gaussian_filter(rng.normal(size=(side, side)), 1.5)
        F = patch_features(img, WINDOW)
        target = np.tanh(F[:, :5].sum(axis=1)) + 0.1 * F[:, WINDOW**2 // 2]
        for n in ns:
            fits, acqs, thom = [], [], []
            for r in range(repeats):
                idx = np.random.default_rng([n, r]).choice(F.shape[0], size=n, replace=False)
                for policy, sink in (("ei", acqs), ("thompson", thom)):
                    if policy == "thompson" and r > 0:
                        continue
                    agent = DKLAgent((side, side), features=F, policy=policy, seed=r, n_initial=0)
                    agent.ingest(
                        [
                            Observation(k, "m", Location.from_flat(int(i), side), float(target[i]))
                            for k, i in enumerate(idx)
                        ]
                    )
                    Xf, y = agent.training_data()
                    t = time.perf_counter()
                    state = fit_model("dkl", Xf, y, agent.fit_seed(), 100, **agent.fit_options())
                    if policy == "ei":
                        fits.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    agent.load_fit(state, 0)
                    agent.suggest(1, step=n, instrument="i", modality="m")
                    sink.append(time.perf_counter() - t)
            rows.append(
                {
                    "n": n,
                    "m": side * side,
                    "fit": float(np.median(fits)),
                    "acq": float(np.median(acqs)),
                    "thompson": float(np.median(thom)),
                }
            )
            print(rows[-1], flush=True)
    return rows


def _ms(xs) -> str:
    xs = np.asarray(list(xs), dtype=float)
    return f"{xs.mean():.2f} ± {xs.std(ddof=1) if xs.size > 1 else 0.0:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="seeds (default 6, ~14 min)")
    parser.add_argument("--budget", type=int, default=250, help="measurements per campaign")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    truth, structure = load_case()
    jobs = [(m, s, args.budget, truth, structure) for m in METHODS for s in range(args.seeds)]
    runs = []
    with mp.get_context("spawn").Pool(args.processes, initializer=_init_worker) as pool:
        for r in pool.imap_unordered(run_one, jobs):
            runs.append(r)
            last = max(r["top1"])
            print(
                f"{r['method']:>6} seed {r['seed']}: {r['seconds']:.1f} s, "
                f"top-1% at {last}: {r['top1'][last]:.2f}, nrmse {r['nrmse'][last]:.3f}",
                flush=True,
            )
    t_campaigns = time.perf_counter() - t0
    lat = [] if args.no_latency else latency()
    elapsed = time.perf_counter() - t0

    checkpoints = sorted(runs[0]["top1"])
    n_grid = truth.size

    def table(key: str) -> str:
        header = ["method"] + [f"n = {k} ({100 * k / n_grid:g} %)" for k in checkpoints]
        rows = [
            [m] + [_ms(r[key][k] for r in runs if r["method"] == m) for k in checkpoints]
            for m in METHODS
        ]
        return _report.table(header, rows)

    k5 = min(checkpoints, key=lambda k: abs(k - 0.05 * n_grid))

    def mean_at(method: str, key: str, k: int) -> float:
        return float(np.mean([r[key][k] for r in runs if r["method"] == method]))

    dkl5, rnd5, gp5 = (mean_at(m, "top1", k5) for m in ("dkl", "random", "gp"))
    ratio = dkl5 / rnd5 if rnd5 > 0 else float("inf")
    verdict = (
        f"At n = {k5} (5 % of the grid) DKL found {dkl5:.2f} of the true top-1 % pixels on "
        f"average, random {rnd5:.2f}, the coordinate GP {gp5:.2f}: DKL / random = "
        f"{ratio:.1f}x — the issue's target (>= 2x) is "
        f"{'met' if ratio >= 2 else 'NOT met'}."
    )
    wins = sum(
        a["top1"][k5] > b["top1"][k5]
        for a in runs
        if a["method"] == "dkl"
        for b in runs
        if b["method"] == "random" and b["seed"] == a["seed"]
    )
    step_s = {
        m: float(np.median([x for r in runs if r["method"] == m for x in r["decide_s"]]))
        for m in ("dkl", "gp")
    }
    lat_table = _report.table(
        ["n", "m candidates", "fit (s)", "embed + EI + argmax (s)", "Thompson draw (s)"],
        [
            [
                row["n"],
                f"{row['m']:,}",
                f"{row['fit']:.2f}",
                f"{row['acq']:.2f}",
                f"{row['thompson']:.2f}",
            ]
            for row in lat
        ],
    )
    body = f"""## DKL on structure patches, real BEPS data (`benchmarks/dkl_beps.py`)

{_report.machine_description()}

Case: `BEPS_PTO_50x50.h5` (2,500 pixels). Target = `loop_area` of each pixel's loop; the
structure image the DKL sees = `remanent` of each loop (another scalar of the same data,
standing in for a cheap structural image; correlation with the target
{np.corrcoef(truth.ravel(), structure.ravel())[0, 1]:.2f}), as {WINDOW} x {WINDOW} patches.
Campaigns: {N_INITIAL} random initial pixels then EI, {args.budget} measurements, no noise,
{args.seeds} seeds (seed = agent seed; same data), {args.processes} processes x 1 thread.
DKL: MLP {WINDOW**2}→64→64→2 (tanh) → exact GP (ARD RBF), 100 Adam steps at lr 0.01, cold
refit every step. GP: exact GP on normalised coordinates (botorch, L-BFGS). nRMSE = RMSE of
the reported mean map over all 2,500 pixels / std of the truth (random and raster report a
coordinate GP fitted on their measurements). Mean ± std over seeds.

**Fraction of the true top-1 % pixels (25) measured**

{table("top1")}

**nRMSE of the mean map**

{table("nrmse")}

{verdict} DKL beat random on {wins} of {args.seeds} seeds at that point.

Median decision time per step inside the campaigns (fit when due + acquisition over 2,500
pixels): DKL {step_s["dkl"]:.2f} s, coordinate GP {step_s["gp"]:.2f} s (2 campaigns in
parallel on 2 cores).

**DKL decision latency**, one process alone, one thread (median of 2 fits per cell, the
first cell includes torch's first-call warm-up;
synthetic {WINDOW} x {WINDOW} patch features of a smooth random image for m > 2,500; the
Thompson column is one exact joint draw over ≤ 5,000 candidates — for m > 5,000 a random
subset of 5,000 plus the best-mean pixel, see `coscope.agents.thompson`):

{lat_table}

Campaigns took {t_campaigns:.0f} s, the whole script {elapsed:.0f} s.
"""
    _report.write_section("dkl_beps", body)
    print(body)


if __name__ == "__main__":
    main()
