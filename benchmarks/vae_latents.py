"""VAE latents vs scalarizers as multi-task targets: map errors at equal cost (issue 4).

Sample and instruments as in ``benchmarks/co_orchestration.py`` part (a): the
``combinatorial_library`` (10 x 10 members; the seed changes the deposition non-uniformity),
one microscope offering ``pfm_loop`` (cost 1) and ``raman`` (cost 10), noise 0.01, target =
Raman peak position in 120..200 cm^-1. Every strategy runs the real campaign loop with the
LocalExecutor (``time_scale`` 0) and the ``gain_per_cost`` rule, to a budget ``max_cost``
of each value in :data:`COSTS` (the larger budget resumes the smaller campaign, which is
reproducible, so all points come from one campaign):

* ``multi-task, VAE latents``: every modality reduced by its own VAE to ``d = 2`` latents
  (``policy.params.latent_dim: 2``), 4 tasks, full-rank task covariance;
* ``multi-task, scalarizers``: Raman ``peak_position`` + PFM ``remanent`` (rank 1, the
  co-orchestration benchmark's setting);
* ``single-modality, VAE latents``: Raman only, its VAE's 2 latents (``model: gp``);
* ``single-modality, scalarizer``: Raman only, ``peak_position`` (``model: gp``).

Figures per strategy and budget, over seeds: (1) relative RMSE of the **Raman spectra map**:
the decoded posterior-mean spectra (latent strategies) against the noise-free truth spectra,
``sqrt(mean (S_hat - S)^2) / sqrt(mean (S - mean_x S)^2)`` (1 = predicting the mean spectrum
everywhere); for every strategy also the same error of a naive map from the same run's Raman
measurements (each member gets the measured spectrum nearest to it), the in-run baseline;
(2) RMSE of the **peak-position map** (the agent's reported map against the true map,
cm^-1; latent strategies report ``peak_position`` of the decoded mean spectra).

Usage: ``python benchmarks/vae_latents.py [--seeds N] [--processes P]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402
from co_orchestration import library_spec  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

COSTS = (100.0, 200.0, 400.0)
STRATEGIES = {  # label -> (model, policy params)
    "multi-task, VAE latents": ("multitask", {"refit_growth": 1.3, "latent_dim": 2}),
    "multi-task, scalarizers": ("multitask", {"refit_growth": 1.3, "rank": 1}),
    "single-modality, VAE latents": ("gp", {"refit_growth": 1.3, "latent_dim": 2}),
    "single-modality, scalarizer": ("gp", {"refit_growth": 1.3, "rank": 1}),
}


def _spectra_error(pred, truth) -> float:
    """Relative RMSE of spectra maps ``(H, W, m)`` (see module docstring)."""
    import numpy as np

    flat = truth.reshape(-1, truth.shape[-1])
    scale = np.sqrt(np.mean((flat - flat.mean(0)) ** 2))
    return float(np.sqrt(np.mean((pred.reshape(flat.shape) - flat) ** 2)) / scale)


def _nearest_map(measurements, shape):
    """Each member's nearest measured Raman spectrum, ``(H, W, m)`` (ties: earliest)."""
    import numpy as np

    raman = [m for m in measurements if m.modality == "raman"]
    where = np.array([[m.location.row, m.location.col] for m in raman], dtype=np.float64)
    rows, cols = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    d2 = (rows[:, None] - where[None, :, 0]) ** 2 + (cols[:, None] - where[None, :, 1]) ** 2
    signals = np.stack([m.signal for m in raman])
    return signals[np.argmin(d2, axis=1)].reshape(*shape, -1)


def run_one(job: tuple[str, int, str]) -> dict:
    """One strategy and seed, evaluated at every budget of :data:`COSTS`."""
    label, seed, scratch = job
    import torch

    torch.set_num_threads(1)
    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.config import parse_spec
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )

    model, params = STRATEGIES[label]
    run_dir = str(Path(scratch) / f"{label.replace(' ', '').replace(',', '-')}-{seed}")
    out = {"label": label, "seed": seed, "points": []}
    t0 = time.perf_counter()
    for max_cost in COSTS:
        data = library_spec("gain_per_cost", model, seed, run_dir)
        data["policy"]["params"] = dict(params)
        data["budget"] = {"max_cost": max_cost, "max_measurements": 400}
        spec = parse_spec(data)
        sample = sample_from_spec(spec.sample, spec.seed)
        create_or_open_store(spec, sample)[0].close()
        ctx, _ = open_context(spec.resolved_store(), track=False)
        outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
        truth = sample.truth["raman"]
        measurements = ctx.store.measurements()
        agent = ctx.agent
        spectra = getattr(agent, "predict_spectra", None)
        out["points"].append(
            {
                "cost": outcome.cost_spent,
                "rmse": outcome.history[-1]["rmse"],
                "spectra": _spectra_error(spectra("raman"), truth) if spectra else None,
                "nearest": _spectra_error(_nearest_map(measurements, sample.shape), truth),
                "n_raman": sum(m.modality == "raman" for m in measurements),
                "n_loop": sum(m.modality == "pfm_loop" for m in measurements),
            }
        )
        ctx.store.close()
    out["seconds"] = time.perf_counter() - t0
    return out


def _cell(values: list) -> str:
    import numpy as np

    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    return f"{np.median(vals):.3g} [{min(vals):.3g}, {max(vals):.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vae-latents-") as scratch:
        jobs = [(label, seed, scratch) for seed in range(args.seeds) for label in STRATEGIES]
        with mp.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(run_one, jobs, chunksize=1)
    wall = time.perf_counter() - start
    rows = []
    for label in STRATEGIES:
        mine = [r for r in results if r["label"] == label]
        for k, budget in enumerate(COSTS):
            pts = [r["points"][k] for r in mine]
            rows.append(
                [
                    label,
                    f"{budget:.0f}",
                    _cell([p["spectra"] for p in pts]),
                    _cell([p["nearest"] for p in pts]),
                    _cell([p["rmse"] for p in pts]),
                    _cell([p["n_raman"] for p in pts]) + " / " + _cell([p["n_loop"] for p in pts]),
                ]
            )
    table = _report.table(
        [
            "strategy",
            "budget",
            "Raman spectra map, rel. RMSE",
            "nearest-measured baseline, rel. RMSE",
            "peak-position map RMSE (cm^-1)",
            "Raman / PFM measured",
        ],
        rows,
    )
    load_after = os.getloadavg()
    pairs = _paired(results, args.seeds)
    print(table)
    note = (
        f"\n{pairs}\n\nMedian [min, max] over {args.seeds} seeds (0..{args.seeds - 1}); "
        f"{len(results)} campaigns in {wall:.0f} s wall on {args.processes} processes "
        f"(load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; a shared "
        "machine, so wall times are indicative only). Script: `benchmarks/vae_latents.py "
        f"--seeds {args.seeds}`."
    )
    print(note)
    _report.publish(
        "vae_latents", "VAE latents vs scalarizers as multi-task targets", __doc__, table, note
    )


PAIRS = (  # (figure key, strategy, compared with)
    ("spectra", "multi-task, VAE latents", "single-modality, VAE latents"),
    ("rmse", "multi-task, VAE latents", "multi-task, scalarizers"),
    ("rmse", "multi-task, VAE latents", "single-modality, scalarizer"),
)


def _paired(results: list[dict], seeds: int) -> str:
    """Per budget, on how many seeds (same sample) one strategy's error is below another's."""
    by = {(r["label"], r["seed"]): r for r in results}
    lines = []
    for key, a, b in PAIRS:
        cells = []
        for k, budget in enumerate(COSTS):
            wins = sum(
                by[(a, s)]["points"][k][key] < by[(b, s)]["points"][k][key] for s in range(seeds)
            )
            cells.append(f"{wins}/{seeds} at cost {budget:.0f}")
        what = "spectra-map error" if key == "spectra" else "peak-position RMSE"
        lines.append(f"* {what}: *{a}* below *{b}* on " + ", ".join(cells) + ".")
    return "Paired by seed:\n\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
