"""DKL decision time at 300 observations on the held-out BEPS case (issue 18 target: <= 0.25 s
median on the warm path).

The agent (coscope defaults, ``balance`` policy) is given 300 observations at random distinct
candidates of the case of :mod:`dkl_reference` (1,225 candidates, 16 x 16 patches), then
makes ``--steps`` decisions in a row, ingesting each chosen point. With ``refit_every = k``
the network is refitted once every ``k`` observations (cold, 100 Adam steps) and every
decision in between takes the *warm path*: the latent GP conditioned exactly on the new
observations (:meth:`coscope.agents.DKLAgent._ensure_model`), then scoring. Reported:
median and 95th percentile over the decisions, and the median of the warm-path decisions.

Usage: ``python benchmarks/dkl_decision.py [--steps 30] [--refit-every 1,10]``
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
from dkl_reference import beps_case  # noqa: E402


def measure(refit_every: int, steps: int, n: int = 300) -> dict:
    from coscope.agents import DKLAgent
    from coscope.models import patch_features
    from coscope.types import Location, Observation

    _, truth, structure = beps_case(16)
    F = patch_features(structure, 16)[np.arange(2500).reshape(50, 50)[8:43, 8:43].ravel()]
    flat = truth.ravel()
    agent = DKLAgent((35, 35), features=F, policy="balance", refit_every=refit_every, seed=0)
    first = np.random.default_rng(0).choice(flat.size, n, replace=False)
    agent.ingest(
        [
            Observation(k, "m", Location.from_flat(int(i), 35), float(flat[i]))
            for k, i in enumerate(first)
        ]
    )
    agent.suggest(1, step=n, instrument="i", modality="m")  # the first fit, not timed
    times, warm = [], []
    for k in range(n, n + steps):
        due = agent.needs_fit(k)
        t = time.perf_counter()
        (p,) = agent.suggest(1, step=k, instrument="i", modality="m")
        dt = time.perf_counter() - t
        times.append(dt)
        if not due:
            warm.append(dt)
        agent.ingest([Observation(k, "m", p.location, float(flat[p.location.flat(35)]))])
    return {
        "median": float(np.median(times)),
        "p95": float(np.percentile(times, 95)),
        "warm_median": float(np.median(warm)) if warm else float("nan"),
        "n_warm": len(warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--refit-every", default="1,10")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for k in (int(v) for v in args.refit_every.split(",")):
        load = os.getloadavg()[0]
        r = measure(k, args.steps)
        rows.append(
            [
                k,
                f"{r['median']:.3f}",
                f"{r['p95']:.3f}",
                f"{r['warm_median']:.3f} ({r['n_warm']})",
                f"{load:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    header = ["refit_every", "median s", "p95 s", "warm-path median s (decisions)", "load (1 min)"]
    print(_report.table(header, rows))


if __name__ == "__main__":
    main()
