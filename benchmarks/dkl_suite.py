"""Cross-dataset DKL suite (issue 18): every shipped dataset plus synthetic laws, 5+ seed sets.

Cases (``--cases``; default: all):
    * ``beps``: the held-out case of :mod:`dkl_reference` (``BEPS_PTO_50x50``: structure =
      remanent response, target = ``loop_height``; the 1,225 pixels whose 16 x 16 patch fits
      inside the image).
    * ``pfm:<file>``: every PFM image file of ``/work/shared/datasets/dtmicroscope-afm``;
      cheap structure = ``HeightRetrace`` (topography), costly target = ``AmplitudeRetrace``
      (PFM amplitude). Both block-averaged 10 x 10 (256 x 256 -> 25 x 25 = 625 candidates;
      PZT_thick0009 256 x 128 -> 25 x 12), window 7.
    * ``synth:walls``: domain walls of a random field; property = tanh(4 x local wall density
      over 5 x 5) (the law of ``tests/models/test_dkl.py``), 25 x 25, window 7.
    * ``synth:bump``: smooth random structure field s; property = exp(-(s - 0.8)^2 / 0.1) of
      the 3 x 3 local mean (a narrow band of structure values is "interesting"), 25 x 25.

Methods, same initial points per seed set (10 random on grids of >= 1,000 candidates, 5
below): ``dkl`` (coscope's DKL agent with
its defaults and the ``balance`` policy), ``dkl-ucb`` (defaults, UCB, beta 4), ``reference``
(the plain gpytorch loop of :mod:`dkl_reference`, on the image min-max scaled), ``gp``
(exact GP on coordinates, EI), ``random`` (its map: a coordinate GP on what it measured).
Metrics at 1, 2, 5, 10 % of the grid: map error nRMSE (RMSE of the reported mean over all
candidates / std of the truth; a constant predictor scores 1.0), fraction of the top-1 %
candidates measured, median decision time per policy step. Verdicts against the targets.

Usage: ``python benchmarks/dkl_suite.py [--seeds 5] [--cases beps,synth:walls,...]
[--methods ...] [--dump out.json]``. One process, one torch thread.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from dkl_reference import beps_case, reference_campaign, unit  # noqa: E402

DATA = "/work/shared/datasets/dtmicroscope-afm"
FRACTIONS = (0.01, 0.02, 0.05, 0.10)
METHODS = ("dkl", "dkl-ucb", "reference", "gp", "random")


def n_initial(m: int) -> int:
    """Random initial points on a grid of ``m`` candidates."""
    return 10 if m >= 1000 else 5


def _blocks(img: np.ndarray, k: int) -> np.ndarray:
    H, W = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    return img[:H, :W].reshape(H // k, k, W // k, k).mean(axis=(1, 3))


def _pfm(path: str) -> dict:
    from coscope.storage.dataset_readers import read_pfm_h5

    ds = read_pfm_h5(path)
    structure = _blocks(ds.structure["HeightRetrace"], 10)
    truth = _blocks(ds.structure["AmplitudeRetrace"], 10)
    return {"structure": structure, "truth": truth, "window": 7}


def _synth(kind: str, seed: int = 0, size: int = 25) -> dict:
    from scipy.ndimage import gaussian_filter, uniform_filter

    rng = np.random.default_rng([18, seed, len(kind)])
    field = gaussian_filter(rng.normal(size=(size, size)), 2.0, mode="reflect")
    if kind == "walls":
        d = np.sign(field)
        walls = np.zeros_like(d)
        walls[:-1] += d[:-1] != d[1:]
        walls[1:] += d[:-1] != d[1:]
        walls[:, :-1] += d[:, :-1] != d[:, 1:]
        walls[:, 1:] += d[:, :-1] != d[:, 1:]
        walls = (walls > 0).astype(float)
        structure = walls + 0.05 * rng.normal(size=walls.shape)
        truth = np.tanh(4.0 * uniform_filter(walls, size=5, mode="reflect"))
    else:
        s = unit(field)
        structure = s + 0.02 * rng.normal(size=s.shape)
        truth = np.exp(-((uniform_filter(s, size=3, mode="reflect") - 0.8) ** 2) / 0.1)
    return {"structure": structure, "truth": truth, "window": 7}


def load_case(name: str) -> dict:
    """``{"F_ref", "F", "truth" (Hc x Wc), "structure"}`` of a case (features per candidate)."""
    from coscope.models import patch_features

    if name == "beps":
        F_ref, truth, structure = beps_case(16)
        full = patch_features(structure, 16)
        idx = np.arange(2500).reshape(50, 50)[8:43, 8:43].ravel()
        return {"F_ref": F_ref, "F": full[idx], "truth": truth, "grid": truth.shape}
    case = _pfm(f"{DATA}/{name[4:]}") if name.startswith("pfm:") else _synth(name[6:])
    w, structure = case["window"], case["structure"]
    return {
        "F_ref": patch_features(unit(structure), w),
        "F": patch_features(structure, w),
        "truth": case["truth"],
        "grid": case["truth"].shape,
    }


def all_cases() -> list[str]:
    files = sorted(os.path.basename(p) for p in glob.glob(f"{DATA}/*.h5"))
    return (
        ["beps"]
        + [f"pfm:{f}" for f in files if f != "BEPS_PTO_50x50.h5"]
        + [
            "synth:walls",
            "synth:bump",
        ]
    )


def _agent(method: str, case: dict, initial: np.ndarray, seed: int):
    from coscope.agents import DKLAgent, GPAgent, RandomAgent
    from coscope.types import Location

    H, W = case["grid"]
    common = {
        "seed": seed,
        "n_initial": len(initial),
        "seed_points": [Location.from_flat(int(i), W) for i in initial],
    }
    if method == "dkl":
        return DKLAgent((H, W), features=case["F"], policy="balance", **common)
    if method == "dkl-ucb":
        return DKLAgent(
            (H, W), features=case["F"], policy="ucb", policy_params={"beta": 4.0}, **common
        )
    if method == "gp":
        return GPAgent((H, W), policy="ei", **common)
    return RandomAgent((H, W), **common)


def run(method: str, case: dict, seed: int, marks: list[int]) -> dict:
    """One campaign: ``{k: (nrmse, top1)}`` at the marks and per-step decision times."""
    from coscope.types import Observation

    flat = case["truth"].ravel()
    top = set(np.argsort(-flat)[: max(1, int(np.ceil(0.01 * flat.size)))].tolist())
    n0 = n_initial(flat.size)
    initial = np.random.default_rng([18, seed]).choice(flat.size, n0, replace=False)

    def score(mean, sd, measured):
        err = float(np.sqrt(np.mean((np.ravel(mean) - flat) ** 2)) / flat.std())
        return err, len(top & {int(i) for i in measured}) / len(top)

    budget = max(marks)
    if method == "reference":
        out = reference_campaign(
            case["F_ref"], case["truth"], initial, budget, seed, set(marks), score
        )
        return {"rows": out["rows"], "decide_s": out["decide_s"]}
    agent = _agent(method, case, initial, seed)
    rows, times = {}, []
    W = case["grid"][1]
    for k in range(budget):
        t = time.perf_counter()
        (p,) = agent.suggest(1, step=k, instrument="i", modality="m")
        if k >= n0:
            times.append(time.perf_counter() - t)
        i = p.location.flat(W)
        agent.ingest([Observation(k, "m", p.location, float(flat[i]))])
        if k + 1 in marks:
            rep = agent.report()
            rows[k + 1] = score(rep.mean, rep.std, [o.location.flat(W) for o in agent.observations])
    return {"rows": rows, "decide_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cases", default="all")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dump", default="")
    parser.add_argument("--republish", default="", help="comma-separated dumps to publish")
    args = parser.parse_args()
    if args.republish:
        republish(args.republish.split(","), args.methods.split(","), args)
        return
    import torch

    torch.set_num_threads(1)
    cases = all_cases() if args.cases == "all" else args.cases.split(",")
    methods = args.methods.split(",")
    load0, t0 = os.getloadavg(), time.perf_counter()
    results: dict = {}
    for name in cases:
        case = load_case(name)
        m = case["truth"].size
        marks = sorted({max(n_initial(m), round(f * m)) for f in FRACTIONS})
        results[name] = {"m": m, "marks": marks, "runs": {}}
        for seed in range(args.seeds):
            for method in methods:
                t = time.perf_counter()
                r = run(method, case, seed, marks)
                results[name]["runs"].setdefault(method, []).append(r)
                last = r["rows"][marks[-1]]
                print(
                    f"{name} {method} seed {seed}: {time.perf_counter() - t:.0f} s, "
                    f"nRMSE {last[0]:.3f} top1 {last[1]:.2f}, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        if args.dump:  # after every case, so a stopped run keeps what it measured
            with open(args.dump, "w") as fh:
                json.dump(results, fh)
    elapsed = time.perf_counter() - t0
    publish(results, methods, args, elapsed, (load0, os.getloadavg()))


def republish(paths: list[str], methods: list[str], args) -> None:
    """Publish the union of earlier runs' dumps (JSON keys are strings: restore ints)."""
    results: dict = {}
    for path in paths:
        with open(path) as fh:
            for name, res in json.load(fh).items():
                for runs in res["runs"].values():
                    for r in runs:
                        r["rows"] = {int(k): v for k, v in r["rows"].items()}
                results[name] = res
    publish(results, methods, args, float("nan"), (os.getloadavg(), os.getloadavg()))


def publish(results, methods, args, elapsed, loads) -> None:
    """Tables and target verdicts into the ``dkl_suite`` section of docs/benchmarks.md."""
    parts, verdicts = [], []
    for name, res in results.items():
        marks, runs = res["marks"], res["runs"]

        def mean(method, k, j, runs=runs):
            return float(np.mean([r["rows"][k][j] for r in runs[method]]))

        header = ["method"] + [f"nRMSE {k} ({100 * k / res['m']:.0f} %)" for k in marks]
        header += [f"top-1 % {k}" for k in marks] + ["median decision s"]
        rows = []
        for method in [m for m in methods if m in runs]:
            cells = [f"{mean(method, k, 0):.3f}" for k in marks]
            cells += [f"{mean(method, k, 1):.2f}" for k in marks]
            times = [x for r in runs[method] for x in r["decide_s"]]
            cells.append(f"{np.median(times):.3f}" if times else "–")
            rows.append([method, *cells])
        parts.append(f"**{name}** ({res['m']} candidates)\n\n{_report.table(header, rows)}\n")
        if "dkl" in runs and "random" in runs and "gp" in runs:
            k5, k10 = marks[-2], marks[-1]
            ok_map = all(
                mean("dkl", k, 0) <= min(mean("random", k, 0), mean("gp", k, 0)) for k in (k5, k10)
            )
            ratio = mean("dkl", k5, 1) / max(mean("random", k5, 1), 1e-9)
            ok_find = mean("dkl", k5, 1) >= 2 * mean("random", k5, 1)
            line = (
                f"- {name}: map at 5 %/10 % ≤ min(random, gp): {'met' if ok_map else 'MISSED'}; "
                f"top-1 % at 5 % vs random: {mean('dkl', k5, 1):.2f} vs "
                f"{mean('random', k5, 1):.2f} ({'met' if ok_find else 'MISSED'}, x{ratio:.1f})"
            )
            if "reference" in runs:
                beat = all(
                    mean("dkl", k, 0) <= mean("reference", k, 0)
                    and mean("dkl", k, 1) >= mean("reference", k, 1)
                    for k in marks
                )
                line += f"; ≥ reference at every checkpoint: {'met' if beat else 'MISSED'}"
            verdicts.append(line)
    body = (
        "## DKL across datasets (`benchmarks/dkl_suite.py`)\n\n"
        f"{_report.machine_description()}\n"
        f"Load average at start {tuple(round(x, 2) for x in loads[0])}, at end "
        f"{tuple(round(x, 2) for x in loads[1])}; one process, one torch thread; "
        f"{args.seeds} seed sets (random initial points, the same for every method); "
        f"the run took {elapsed / 60:.0f} min (nan: published from dumps). Means over seed "
        "sets. Cases and methods: the script's docstring.\n\n"
        + "\n".join(parts)
        + "\n**Targets**\n\n"
        + "\n".join(verdicts)
    )
    _report.write_section("dkl_suite", body)
    print(body)


if __name__ == "__main__":
    main()
