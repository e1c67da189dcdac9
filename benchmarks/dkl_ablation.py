"""Where the DKL gap of issue 18 comes from: one factor at a time, on the held-out BEPS case.

Part ``model`` (model only, no acquisition): training sets of n random candidates (seed sets
0..S-1) of the case of :mod:`dkl_reference`; for each model variant the map error (nRMSE:
RMSE over all 1,225 candidates / std of the truth; a constant predictor scores 1.0), the
mean NLPD over the candidates not trained on (nats, standardised by the truth's std), and
the final GP noise as a fraction of the standardised data variance.

Part ``loop`` (model + acquisition): campaigns of 10 random initial points (same points for
every method of a seed set) then the method's choice up to ``--budget`` points; nRMSE and
top-1 % found (of the 12 best candidates) at the checkpoints.

Usage: ``python benchmarks/dkl_ablation.py model|loop [--seeds S] [--budget N]
[--only a,b]``; prints a markdown table (copied into docs/dkl.md by hand, with the load).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from dkl_reference import beps_case, reference_campaign, reference_fit_predict  # noqa: E402

OLD = {"activation": "tanh", "lr_gp": 0.01, "noise_init": 0.6931, "inputs": "column"}
"""The pre-issue-18 coscope defaults, as DKLConfig fields."""

MODEL_VARIANTS: dict[str, dict] = {
    "coscope old defaults": dict(OLD),
    "old + relu": {**OLD, "activation": "relu"},
    "old + lr_gp 0.05": {**OLD, "lr_gp": 0.05},
    "old + noise_init 0.05": {**OLD, "noise_init": 0.05},
    "old + inputs global": {**OLD, "inputs": "global"},
    "old + 500 iterations": {**OLD, "_iterations": 500},
    "new defaults": {},
    "new, tanh": {"activation": "tanh"},
    "new, inputs column": {"inputs": "column"},
    "new, lr_gp 0.01": {"lr_gp": 0.01},
    "new, noise_init 0.69": {"noise_init": 0.6931},
    "new, hidden 256-64": {"hidden": (256, 64)},
    "new, hidden 32-32": {"hidden": (32, 32)},
    "new, window 9 (reflect, std image)": {"_window": 9},
    "new, cnn": {"extractor": "cnn"},
    "new, restarts 4 mll": {"restarts": 4, "select": "mll"},
    "new, restarts 4 loo": {"restarts": 4, "select": "loo"},
}


def _features(window: int) -> np.ndarray:
    if window == 16:
        return beps_case(16)[0]
    from coscope.models import patch_features

    _, _, structure = beps_case(16)
    F = patch_features(structure, window)  # reflect-padded, standardised image, all pixels
    idx = np.arange(2500).reshape(50, 50)[8:43, 8:43].ravel()  # the case's 1,225 pixels
    return F[idx]


def _nlpd(mean, sd, truth, mask) -> float:
    s = float(truth.std())
    m, v, t = mean[mask] / s, np.maximum(sd[mask] / s, 1e-9) ** 2, truth[mask] / s
    return float(np.mean(0.5 * np.log(2 * np.pi * v) + 0.5 * (t - m) ** 2 / v))


def coscope_fit_predict(F, train, y, seed, opts):
    from coscope.models import fit_dkl, predict_dkl
    from coscope.models.dkl_config import DKLConfig

    opts = dict(opts)
    iterations = opts.pop("_iterations", 100)
    opts.pop("_window", None)
    state = fit_dkl(F[train], y, seed=seed, iterations=iterations, config=DKLConfig(**opts))
    mean, sd = predict_dkl(state, F)
    hp = state.named_hyperparameters()
    return mean, sd, hp["noise"] / state.y_std**2


def part_model(args) -> None:
    _, truth, _ = beps_case(16)
    flat = truth.ravel()
    names = ["reference", "reference float32", *MODEL_VARIANTS]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    sizes = (60, 110)
    rows = []
    for name in names:
        t0 = time.perf_counter()
        res = {n: [] for n in sizes}
        for s in range(args.seeds):
            perm = np.random.default_rng([18, s]).permutation(flat.size)
            for n in sizes:
                train = perm[:n]
                mask = np.ones(flat.size, bool)
                mask[train] = False
                if name.startswith("reference"):
                    import torch

                    dt = torch.float32 if "32" in name else torch.float64
                    F = beps_case(16)[0]
                    mean, sd, noise = reference_fit_predict(F, train, flat[train], s, dtype=dt)
                else:
                    opts = MODEL_VARIANTS[name]
                    F = _features(opts.get("_window", 16))
                    mean, sd, noise = coscope_fit_predict(F, train, flat[train], s, opts)
                nrmse = float(np.sqrt(np.mean((mean - flat) ** 2)) / flat.std())
                res[n].append((nrmse, _nlpd(mean, sd, flat, mask), noise))
        sec = (time.perf_counter() - t0) / (args.seeds * len(sizes))
        cells = []
        for n in sizes:
            a = np.array(res[n])
            cells += [
                f"{a[:, 0].mean():.3f} ± {a[:, 0].std(ddof=1):.3f}",
                f"{np.median(a[:, 1]):.2f}",
                f"{np.median(a[:, 2]):.3f}",
            ]
        rows.append([name, *cells, f"{sec:.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    header = ["variant"]
    for n in sizes:
        header += [f"nRMSE n={n}", f"NLPD n={n}", f"noise/var n={n}"]
    header.append("s per fit")
    print(f"\nload {os.getloadavg()}\n")
    print(_report.table(header, rows))


LOOP_METHODS = (
    "reference ucb",
    "coscope old ei",
    "dkl ei",
    "dkl ucb",
    "dkl quantile ucb",
    "dkl quantile balance",
    "random",
)


def quantile_patches(window: int = 16) -> np.ndarray:
    """The case's patches cut from the quantile-scaled structure image (``PatchGrid``)."""
    from coscope.models import patch_features

    _, _, structure = beps_case(16)
    F = patch_features(structure, window, scaling="quantile")
    half = window // 2
    idx = np.arange(2500).reshape(50, 50)[half : half + 35, half : half + 35].ravel()
    return F[idx]


def _agent(method: str, initial, seed: int):
    from coscope.agents import DKLAgent, RandomAgent
    from coscope.models.dkl_config import DKLConfig
    from coscope.types import Location

    seeds = [Location.from_flat(int(i), 35) for i in initial]
    common = {"seed": seed, "n_initial": len(seeds), "seed_points": seeds}
    if method == "random":
        return RandomAgent((35, 35), **common)
    F = quantile_patches() if "quantile" in method else beps_case(16)[0]
    _, policy = method.rsplit(" ", 1)
    cfg = DKLConfig(**OLD) if "old" in method else DKLConfig()
    params = {"beta": 4.0} if policy == "ucb" else {}
    return DKLAgent((35, 35), features=F, policy=policy, policy_params=params, config=cfg, **common)


def part_loop(args) -> None:
    from coscope.studies.metrics import StepMetrics  # noqa: F401  (same definitions)
    from coscope.types import Observation

    F, truth, _ = beps_case(16)
    flat = truth.ravel()
    top = set(np.argsort(-flat)[: max(1, round(0.01 * flat.size))].tolist())
    marks = sorted({12, 24, 61, 122, 60, 110} & set(range(args.budget + 1)))
    methods = [m for m in LOOP_METHODS if not args.only or m in args.only.split(",")]

    def score(mean, sd, measured):
        found = len(top & set(int(i) for i in measured)) / len(top)
        return (float(np.sqrt(np.mean((mean - flat) ** 2)) / flat.std()), found)

    table = {}
    for s in range(args.seeds):
        initial = np.random.default_rng([18, s]).choice(flat.size, 10, replace=False)
        for method in methods:
            t0 = time.perf_counter()
            if method == "reference ucb":
                out = reference_campaign(F, truth, initial, args.budget, s, set(marks), score)
                rows = out["rows"]
            else:
                agent, rows = _agent(method, initial, s), {}
                for k in range(args.budget):
                    (p,) = agent.suggest(1, step=k, instrument="i", modality="m")
                    i = p.location.flat(35)
                    agent.ingest([Observation(k, "m", p.location, float(flat[i]))])
                    if k + 1 in marks:
                        rep = agent.report()
                        measured = [o.location.flat(35) for o in agent.observations]
                        rows[k + 1] = score(rep.mean.ravel(), rep.std.ravel(), measured)
            table.setdefault(method, []).append(rows)
            print(f"{method} seed {s}: {time.perf_counter() - t0:.0f} s {rows}", flush=True)
    header = ["method"] + [f"nRMSE {k}" for k in marks] + [f"top-1 % {k}" for k in marks]
    out_rows = []
    for method, runs in table.items():
        err = [f"{np.mean([r[k][0] for r in runs]):.3f}" for k in marks]
        found = [f"{np.mean([r[k][1] for r in runs]):.2f}" for k in marks]
        out_rows.append([method, *err, *found])
    print(f"\nload {os.getloadavg()}\n")
    print(_report.table(header, out_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("model", "loop"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=110)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"load {os.getloadavg()}")
    (part_model if args.part == "model" else part_loop)(args)


if __name__ == "__main__":
    main()
