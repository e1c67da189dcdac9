"""gpax viDKL EI campaign, run by ``benchmarks/dkl_gpax.py`` with the gpax venv's Python.

Not part of coscope and never imported by it: this file runs under a separate interpreter
(``/tmp/gpax-venv``, ``numpyro==0.19.0 jax==0.7.1 jaxlib==0.7.1 gpax==0.1.9``), reads the
case from an ``.npz`` (``features`` m x p, ``truth`` (m,), ``initial`` indices), runs one
campaign (refit viDKL on every step with gpax's defaults — 1,000 SVI steps, Adam 5e-3 — then
EI over every candidate, argmax over unmeasured pixels) and writes a JSON of per-step
decision times, chosen pixels and the predicted mean map at the checkpoints.

Usage: ``python dkl_gpax_worker.py CASE.npz SEED BUDGET OUT.json``
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main() -> None:
    import gpax
    import jax

    case, seed, budget, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    data = np.load(case)
    F, truth = data["features"], data["truth"]
    checkpoints = set(int(k) for k in data["checkpoints"])
    measured = [int(i) for i in data["initial"]]
    x_mean, x_std = F.mean(axis=0), F.std(axis=0) + 1e-12
    X = (F - x_mean) / x_std
    record = {"seed": seed, "decide_s": [], "fit_s": [], "measured": [], "means": {}}
    key = jax.random.PRNGKey(seed)
    while len(measured) < budget:
        y = truth[measured]
        mu, sd = y.mean(), y.std() + 1e-12
        key, k_fit, k_pred = jax.random.split(key, 3)
        t0 = time.perf_counter()
        model = gpax.viDKL(X.shape[1], 2)
        model.fit(k_fit, X[measured], (y - mu) / sd, print_summary=False, progress_bar=False)
        t1 = time.perf_counter()
        best = float(((y - mu) / sd).max())
        acq = np.array(gpax.acquisition.EI(k_pred, model, X, best_f=best, maximize=True))
        acq[measured] = -np.inf
        nxt = int(np.argmax(acq))
        t2 = time.perf_counter()
        record["fit_s"].append(t1 - t0)
        record["decide_s"].append(t2 - t0)
        measured.append(nxt)
        if len(measured) in checkpoints:
            mean, _ = model.predict(k_pred, X)
            record["means"][len(measured)] = (np.asarray(mean) * sd + mu).tolist()
        print(f"seed {seed} n {len(measured)}: {t2 - t0:.1f} s", flush=True)
    record["measured"] = measured
    with open(out, "w") as fh:
        json.dump(record, fh)


if __name__ == "__main__":
    main()
