"""Co-navigation figures: calibration and twin error on a synthetic truth, and on real BEPS loops.

Part 1 (synthetic, known theta*): a film whose loops are the LGD model at theta* times a
smooth, unknown saturation field (the discrepancy the theory cannot know) plus 2 % noise.
For budgets of N experiments + N simulations (the campaign loop keeps the microscope and the
simulator busy together), compare:

* ``online``: the co-navigation agent in the campaign loop, theta recalibrated after every result
  and simulations steered by the posterior;
* ``batch``: the same number of experiments (random pixels) and simulations on a fixed
  space-filling theta design, calibrated once at the end;
* ``theory-only`` / ``experiment-only``: the online run's calibrated theory without the
  discrepancy, and its experiment GP over coordinates.

Reported: theta error (``|theta - theta*|`` / prior-box width, mean over parameters), twin loop
RMSE over every pixel, and the online run's theta error against simulations spent.

Part 2 (real BEPS, PbTiO3 50x50): co-navigate the LGD model with the recorded loops; compare the
loop reconstruction error of the calibrated twin with per-pixel least-squares fits of the same
model to the loops the campaign measured (unmeasured pixels take the nearest measured pixel's
fitted theta, with their own structure). Errors are per-pixel normalised RMSE
(``rms(prediction - loop) / std(loop)``), median over pixels. A figure shows the per-pixel
fitted-theta maps and the twin's discrepancy map.

Usage: ``python benchmarks/co_navigation.py [--seeds 2] [--budgets 8 16 32] [--beps-budget 40]``
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
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

THETA_STAR = {"coercive_field": 2.8, "imprint_gain": 0.45, "pinning": 0.35}
BOUNDS = {"coercive_field": [1.0, 5.0], "imprint_gain": [-1.0, 1.0], "pinning": [0.0, 1.0]}
BEPS_BOUNDS = {"coercive_field": [0.5, 8.0], "imprint": [-5.0, 5.0], "imprint_gain": [-5.0, 5.0]}
BEPS_ZARR = Path(tempfile.gettempdir()) / "coscope-bench" / "beps_pto.zarr"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "img" / "co_navigation_beps.png"


def synthetic_sample(seed: int, size: int = 24):
    """LGD loops at THETA_STAR on a TDGL domain structure, times a smooth saturation field."""
    from coscope.instruments import Sample
    from coscope.instruments.physics import domain_structure, gaussian_random_field, triangle_sweep
    from coscope.instruments.theory import LGD_THETA, lgd_loops, normalized_structure
    from coscope.types import ModalityInfo

    rng = np.random.default_rng(seed)
    structure = domain_structure((size, size), rng, correlation_length=5.0)
    voltage = triangle_sweep(64, 8.0)
    s = normalized_structure(structure)
    loops = lgd_loops(voltage, s, {**LGD_THETA, **THETA_STAR})
    smooth = gaussian_random_field((size, size), size / 3.0, rng)
    saturation = 1.0 + 0.3 * smooth / np.abs(smooth).max()
    info = ModalityInfo("beps_loop", voltage, "voltage", "V")
    theory = ModalityInfo("theory_lgd", voltage, "voltage", "V", "P/P_s")
    return Sample(
        "lgd-truth",
        structure,
        modalities={"beps_loop": info, "theory_lgd": theory},
        truth={"beps_loop": loops * saturation[..., None]},
    )


def _campaign(sample, bounds, budget: int, seed: int, theta_fixed=None):
    """Run the co-navigation agent in the campaign loop; returns (agent, measurements)."""
    from coscope.campaign import CampaignContext, CampaignLoop, LocalExecutor
    from coscope.config import parse_spec
    from coscope.infra.compose import agent_from_spec
    from coscope.infra.tracking import NullTracker
    from coscope.instruments import build_instrument
    from coscope.storage import TraceStore

    run_dir = tempfile.mkdtemp(prefix="conav-bench-")
    spec = parse_spec(
        {
            "name": "bench",
            "seed": seed,
            "instruments": [
                {"name": "afm", "modalities": ["beps_loop"], "latency_s": 0, "noise": 0.02},
                {
                    "name": "lgd",
                    "kind": "theory_lgd",
                    "modalities": ["theory_lgd"],
                    "latency_s": 0,
                    "cost": 0.25,
                    "noise": 0,
                    "options": {"calibrate": bounds, "theta": theta_fixed or {}},
                },
            ],
            "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
            "policy": {"name": "conavigate", "n_initial": 4, "params": {"n_design": 8}},
            "budget": {"max_measurements": 2 * budget},
            "time_scale": 0.0,
            "run_dir": run_dir,
        }
    )
    store = TraceStore.create(
        spec.resolved_store(),
        campaign=spec.to_json_dict(),
        modalities=sample.modalities,
        sample_shape=sample.shape,
    )
    agent = agent_from_spec(spec, sample)
    noise = 0.02 if sample.name == "lgd-truth" else 0.0
    instruments = {
        "afm": build_instrument("afm", sample, modalities=["beps_loop"], noise=noise),
        "lgd": build_instrument(
            "lgd",
            sample,
            kind="theory_lgd",
            modalities=["theory_lgd"],
            cost=0.25,
            options={"theta": theta_fixed or {}},
        ),
    }
    ctx = CampaignContext(spec, sample, store, agent, NullTracker())
    CampaignLoop(ctx, LocalExecutor(instruments)).run()
    measurements = store.measurements()
    store.close()
    return agent, measurements


def _batch(sample, bounds, online, seed: int):
    """Same numbers of experiments (random pixels) and simulations (fixed design), fit once."""
    from coscope.agents.calibration import ThetaSpace
    from coscope.agents.conavigation import CoNavigationAgent
    from coscope.instruments import build_instrument
    from coscope.types import Location, MeasurementRequest

    space = ThetaSpace.from_bounds(bounds)
    n_exp, n_sim = len(online.experiments), len(online.simulations)
    agent = CoNavigationAgent(
        sample.shape, sample.structure, "beps_loop", "theory_lgd", space, seed=seed
    )
    rng = np.random.default_rng(seed + 99)
    h, w = sample.shape
    afm = build_instrument("afm", sample, modalities=["beps_loop"], noise=0.02)
    lgd = build_instrument("lgd", sample, kind="theory_lgd", modalities=["theory_lgd"])
    flats = rng.choice(h * w, size=n_exp, replace=False)
    out = [
        afm.measure(MeasurementRequest(i, "afm", "beps_loop", Location.from_flat(f, w), i))
        for i, f in enumerate(flats)
    ]
    design = space.from_unit(space.design(n_sim, seed + 7))
    for j in range(n_sim):
        step = n_exp + j
        loc = Location.from_flat(int(flats[j % n_exp]), w)
        params = {"theta": space.as_dict(design[j])}
        agent.remember_params(step, params)
        out.append(lgd.measure(MeasurementRequest(step, "lgd", "theory_lgd", loc, step, params)))
    agent.ingest_measurements(out)
    return agent


def _theta_error(theta: np.ndarray, bounds) -> float:
    width = np.array([b[1] - b[0] for b in bounds.values()])
    star = np.array([THETA_STAR[n] for n in bounds])
    return float(np.mean(np.abs(theta - star) / width))


def part_synthetic(seeds: int, budgets: list[int]) -> tuple[str, str]:
    rows, curve = [], []
    for budget in budgets:
        acc: dict[str, list[float]] = {}
        zs: list[np.ndarray] = []
        for seed in range(seeds):
            sample = synthetic_sample(seed)
            truth = sample.truth["beps_loop"].reshape(-1, 64)
            t0 = time.perf_counter()
            online, _ = _campaign(sample, BOUNDS, budget, seed)
            wall = time.perf_counter() - t0
            batch = _batch(sample, BOUNDS, online, seed)
            flat = np.arange(truth.shape[0])
            pred_on, pred_b = online.predict(flat), batch.predict(flat)
            star = np.array([THETA_STAR[n] for n in BOUNDS])
            z = (online.posterior.mean - star) / online.posterior.std
            zs.append(z)

            def rmse(p: np.ndarray, truth: np.ndarray = truth) -> float:
                return float(np.sqrt(np.mean((p - truth) ** 2)))

            values = {
                "theta online": _theta_error(online.posterior.mean, BOUNDS),
                "theta batch": _theta_error(batch.posterior.mean, BOUNDS),
                "twin online": rmse(pred_on["twin"]),
                "twin batch": rmse(pred_b["twin"]),
                "theory-only": rmse(pred_on["theory"]),
                "experiment-only": rmse(pred_on["experiment"]),
                "sd": float(np.mean(online.posterior.std / np.ptp(list(BOUNDS.values()), 1))),
                "in 1 sd": float(np.mean(np.abs(z) <= 1.0)),
                "in 2 sd": float(np.mean(np.abs(z) <= 2.0)),
                "ess": online.posterior.ess,
                "wall": wall,
            }
            for k, v in values.items():
                acc.setdefault(k, []).append(v)
            if budget == budgets[-1]:
                for row in online.history:
                    if "theta.coercive_field" in row:
                        th = np.array([row[f"theta.{n}"] for n in BOUNDS])
                        curve.append(
                            (
                                seed,
                                row["n_simulations"],
                                row["n_experiments"],
                                _theta_error(th, BOUNDS),
                            )
                        )
            print(
                f"budget {budget} seed {seed}: "
                + ", ".join(f"{k}={v:.3f}" for k, v in values.items())
            )
        m = {k: float(np.mean(v)) for k, v in acc.items()}
        rows.append(
            [
                budget,
                budget,
                f"{m['theta online']:.3f}",
                f"{m['theta batch']:.3f}",
                f"{m['sd']:.3f}",
                f"{np.mean(np.abs(zs) <= 1):.2f}",
                f"{np.mean(np.abs(zs) <= 2):.2f}",
                f"{np.sqrt(np.mean(np.square(zs))):.2f}",
                f"{m['ess']:.0f}",
                f"{m['twin online']:.3f}",
                f"{m['twin batch']:.3f}",
                f"{m['theory-only']:.3f}",
                f"{m['experiment-only']:.3f}",
                f"{m['wall']:.0f}",
            ]
        )
    table = _report.table(
        [
            "experiments",
            "simulations",
            "θ error online",
            "θ error batch",
            "θ sd online",
            "in 1 sd",
            "in 2 sd",
            "rms z",
            "ESS",
            "twin RMSE online",
            "twin RMSE batch",
            "theory-only RMSE",
            "experiment-only RMSE",
            "online wall s",
        ],
        rows,
    )
    sims = sorted({c[1] for c in curve})
    marks = [n for n in sims if n in (4, 8, 12, 16, 24, 32, 48, 64)]
    curve_rows = []
    for n in marks:
        errs = [c[3] for c in curve if c[1] == n]
        exps = [c[2] for c in curve if c[1] == n]
        curve_rows.append([n, f"{np.mean(exps):.1f}", f"{np.mean(errs):.3f}"])
    curve_table = _report.table(
        ["simulations spent", "experiments in", "θ error (online, mean over seeds)"], curve_rows
    )
    return table, curve_table


def _lsq_fit(voltage: np.ndarray, s: np.ndarray, loops: np.ndarray, fixed, n: int = 384):
    """Per-pixel least squares of the LGD model + affine over a Sobol grid of theta."""
    from coscope.agents.calibration import ThetaSpace, affine_profile
    from coscope.instruments.theory import LGD_THETA, lgd_loops

    space = ThetaSpace.from_bounds(BEPS_BOUNDS)
    cand = space.from_unit(space.design(n, 11))
    thetas, preds, misfit = [], [], []
    for i in range(len(s)):
        th = {**LGD_THETA, **fixed}
        th.update({k: cand[:, j] for j, k in enumerate(space.names)})
        model = lgd_loops(voltage, np.full(n, s[i]), th)
        rss, a, b = affine_profile(loops[i][None, None, :], model[None], np.zeros_like(model)[None])
        k = int(np.argmin(rss[0]))
        thetas.append(cand[k])
        preds.append(a[0, k] * model[k] + b[0, k])
        misfit.append(np.sqrt(rss[0, k] / len(voltage)) / max(loops[i].std(), 1e-12))
    return np.array(thetas), np.array(preds), np.array(misfit)


def _nrmse(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((pred - y) ** 2, axis=1)) / np.maximum(y.std(axis=1), 1e-12)


def part_beps(budget: int, seed: int) -> str:
    from coscope.instruments import build_sample
    from coscope.instruments.theory import LGD_THETA, lgd_loops, normalized_structure
    from coscope.twin.fields import shape_error

    if not (BEPS_ZARR / "zarr.json").exists():
        from coscope.storage.dataset_readers import import_dataset

        import_dataset("/work/shared/datasets/dtmicroscope-afm/BEPS_PTO_50x50.h5", BEPS_ZARR)
    sample = build_sample(
        "with_theory",
        {
            "base": {
                "kind": "dataset",
                "params": {"path": str(BEPS_ZARR), "structure": "remanent"},
            },
            "theory": {"theory_lgd": "beps_loop"},
        },
        seed,
    )
    voltage = sample.info("beps_loop").axis
    loops = sample.truth["beps_loop"].reshape(-1, len(voltage))
    h, w = sample.shape
    fixed = {"gamma": 1.0, "pinning": 0.0, "saturation": 1.0}
    t0 = time.perf_counter()
    agent, _ = _campaign(sample, BEPS_BOUNDS, budget, seed, theta_fixed=fixed)
    wall = time.perf_counter() - t0
    twin = agent.digital_twin()
    measured = np.array(sorted(twin.measured))
    s = normalized_structure(sample.structure).ravel()
    t1 = time.perf_counter()
    th_m, pred_m, misfit_m = _lsq_fit(voltage, s[measured], loops[measured], fixed)
    lsq_wall = time.perf_counter() - t1
    others = np.setdiff1d(np.arange(h * w), measured)
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(others, size=min(400, len(others)), replace=False))
    # per-pixel LSQ baseline at unmeasured pixels: nearest measured pixel's theta, own structure
    coords = np.c_[np.divmod(np.arange(h * w), w)]
    nearest = np.argmin(((coords[test][:, None, :] - coords[measured][None]) ** 2).sum(-1), 1)
    th_near = th_m[nearest]
    base = {**LGD_THETA, **fixed}
    base.update({k: th_near[:, j] for j, k in enumerate(BEPS_BOUNDS)})
    raw = lgd_loops(voltage, s[test], base)
    # the amplitude / offset of the nearest measured pixel's fit, too
    from coscope.agents.calibration import affine_profile

    own = {**LGD_THETA, **fixed}
    own.update({k: th_m[:, j] for j, k in enumerate(BEPS_BOUNDS)})
    raw_m = lgd_loops(voltage, s[measured], own)
    _, a_m, b_m = affine_profile(
        loops[measured][:, None], raw_m[:, None], np.zeros_like(raw_m)[:, None]
    )
    pred_lsq = a_m[nearest, 0][:, None] * raw + b_m[nearest, 0][:, None]
    tw_test = twin.predict(test)
    tw_meas = twin.predict(measured)
    strong = loops[test].std(1) >= np.median(loops.std(1))
    res = {
        "twin": _nrmse(tw_test["twin"], loops[test]),
        "theory": _nrmse(tw_test["theory"], loops[test]),
        "experiment GP": _nrmse(tw_test["experiment"], loops[test]),
        "per-pixel LSQ (nearest)": _nrmse(pred_lsq, loops[test]),
    }
    # theory at measured pixels: global theta* with per-pixel affine vs per-pixel theta
    _, a_t, b_t = affine_profile(
        loops[measured][:, None],
        tw_meas["theory"][:, None],
        np.zeros_like(tw_meas["theory"])[:, None],
    )
    glob = a_t[:, 0][:, None] * tw_meas["theory"] + b_t[:, 0][:, None]
    preds = {
        "twin": tw_test["twin"],
        "theory": tw_test["theory"],
        "experiment GP": tw_test["experiment"],
        "per-pixel LSQ (nearest)": pred_lsq,
    }
    shape = {k: shape_error(v, loops[test]) for k, v in preds.items()}
    rows = [
        [
            k,
            f"{np.median(res[k]):.3f}",
            f"{np.median(res[k][strong]):.3f}",
            f"{np.median(shape[k]):.3f}",
            f"{np.median(shape[k][strong]):.3f}",
        ]
        for k in preds
    ]
    meas_rows = [
        [
            "calibrated theory θ* (global) + per-pixel affine",
            f"{np.median(_nrmse(glob, loops[measured])):.3f}",
        ],
        ["per-pixel LSQ θ + affine (same model)", f"{np.median(misfit_m):.3f}"],
    ]
    maps = _figure(twin, sample, measured, voltage, fixed)
    skills = twin.fields.summary()
    maps_line = ", ".join(
        f"{n}: weight {skills[n + '.weight']:.2f}, LOO skill {skills[n + '.skill']:.2f}"
        for n in ("log_gain", "corr", "offset", "shape")
    )
    theta_line = ", ".join(
        f"{n} = {m:.2f} ± {sd:.2f}"
        for n, m, sd in zip(twin.theta_names, twin.theta_mean, twin.theta_std, strict=True)
    )
    return "\n".join(
        [
            f"Campaign: {len(agent.experiments)} measured loops + {len(agent.simulations)} LGD "
            f"simulations (seed {seed}), {wall:.0f} s wall; per-pixel LSQ of the measured loops "
            f"{lsq_wall:.0f} s. Calibrated θ* (posterior mean ± sd): {theta_line}.",
            "",
            f"Unmeasured pixels ({len(test)} random), median over pixels (all / strong: pixels "
            "with above-median loop strength):",
            "",
            _report.table(
                ["predictor", "NRMSE all", "NRMSE strong", "shape error all", "shape error strong"],
                rows,
            ),
            "",
            f"Twin maps over the {len(measured)} measured pixels (weight in [0, 1] by exact "
            "leave-one-out, skill = 1 − LOO error / LOO error of the constant: squared error for "
            "log gain, agreement and offset, shape error against the theory's own for the shape "
            f"map; a map is used only if its LOO gain is above 2 standard errors): {maps_line}. "
            "Twin gain = exp(mean − 1.5 var) of the predicted log gain, the minimiser of the "
            "expected NRMSE (the synthetic table's plain RMSE would prefer a larger gain).",
            "",
            "NRMSE = rms(prediction − loop) / std(loop); shape error = the same after the best "
            "per-pixel gain and offset, sqrt(1 − corr²) (the instrument's gain varies ~1000x over "
            "this map, so amplitude is the hard part; 1 = no better than a flat line).",
            "",
            "Measured pixels (the loops the campaign used), normalised RMSE, median:",
            "",
            _report.table(["fit", "median NRMSE"], meas_rows),
            "",
            maps,
            "",
            f"![fitted θ and discrepancy](img/{FIGURE.name})",
        ]
    )


def _figure(twin, sample, measured, voltage, fixed) -> str:
    """Per-pixel LSQ fitted-theta maps on every other pixel, and the twin's discrepancy map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coscope.instruments.theory import normalized_structure

    h, w = sample.shape
    loops = sample.truth["beps_loop"].reshape(h * w, -1)
    rows, cols = np.meshgrid(np.arange(0, h, 2), np.arange(0, w, 2), indexing="ij")
    sub = (rows * w + cols).ravel()
    s = normalized_structure(sample.structure).ravel()
    t0 = time.perf_counter()
    th, _, misfit = _lsq_fit(voltage, s[sub], loops[sub], fixed, n=256)
    wall = time.perf_counter() - t0
    names = list(BEPS_BOUNDS)
    ec = th[:, names.index("coercive_field")]
    e_i = th[:, names.index("imprint")] + th[:, names.index("imprint_gain")] * s[sub]
    grid = rows.shape
    strength = np.log10(np.maximum(loops.std(1), 1e-12)).reshape(h, w)
    rr, cc = np.divmod(measured, w)
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.4))
    panels = [
        (strength, "log10 loop strength (std) + measured", "gray", (0, 0, h, w)),
        (ec.reshape(grid), "per-pixel LSQ coercive field E_c (V)", "viridis", None),
        (e_i.reshape(grid), "per-pixel LSQ built-in field E_i (V)", "coolwarm", None),
        (misfit.reshape(grid), "per-pixel LSQ misfit (NRMSE)", "magma", None),
        (twin.discrepancy_map(), "twin shape discrepancy / theory std", "magma", None),
    ]
    for ax, (img, title, cmap, _) in zip(axes, panels, strict=True):
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        im = ax.imshow(img, cmap=cmap, extent=extent, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].scatter(cc, rr, s=8, c="C1")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=100)
    plt.close(fig)
    weak = misfit > 0.8
    return (
        f"Fitted-θ maps: per-pixel LSQ of the LGD model (+ gain, offset) on every other pixel "
        f"({len(sub)} loops, 256 θ candidates each, {wall:.0f} s). For one pixel only the built-in "
        "field E_i = imprint + imprint_gain·s is identifiable, so the map shows E_i. Median "
        f"E_c = {np.median(ec[~weak]):.2f} V and E_i = {np.median(e_i[~weak]):.2f} V over the "
        f"{int((~weak).sum())} pixels the model fits (NRMSE ≤ 0.8); "
        f"{int(weak.sum())} pixels ({100 * weak.mean():.0f} %) are not explained even per pixel."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--beps-budget", type=int, default=40)
    args = parser.parse_args()
    t0 = time.perf_counter()
    table, curve = part_synthetic(args.seeds, args.budgets)
    beps = part_beps(args.beps_budget, 0)
    total = time.perf_counter() - t0
    _report.publish(
        "co_navigation",
        "Co-navigation: calibrated digital twin vs batch fit, theory-only, experiment-only",
        f"`python benchmarks/co_navigation.py --seeds {args.seeds} --budgets "
        f"{' '.join(map(str, args.budgets))} --beps-budget {args.beps_budget}` ({total:.0f} s "
        "in all, on a shared 2-core machine: wall times are indicative only).",
        "",
        "### Synthetic truth with known θ*",
        "",
        f"Loops: LGD at θ* = {THETA_STAR} on a TDGL domain structure (24 x 24), times an "
        "unknown smooth saturation field (±30 %), 2 % noise. θ error = |θ − θ*| / prior-box "
        f"width, mean over the 3 parameters; RMSE over all 576 pixels' loops (units of P_s); "
        f"mean over {args.seeds} seeds (0..{args.seeds - 1}). θ coverage: z = (θ − θ*) / sd "
        "for every (seed, parameter); in 1 sd / in 2 sd = fraction with |z| ≤ 1 / ≤ 2 (0.68 / "
        "0.95 if the sd is right), rms z (1 if right); ESS of the final importance weights.",
        "",
        table,
        "",
        f"Online θ error against simulations spent (budget {args.budgets[-1]}):",
        "",
        curve,
        "",
        "### Real BEPS loops (PbTiO3, 50 x 50, DTMicroscope)",
        "",
        beps,
    )


if __name__ == "__main__":
    main()
