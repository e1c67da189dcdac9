"""The twin's report (PNGs) and its hand-over to MLflow at the end of a campaign."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from coscope.agents.protocols import HasDigitalTwin
from coscope.campaign.tracker import Tracker
from coscope.twin.artefact import DigitalTwin, save_pyfunc


def write_twin_report(
    twin: DigitalTwin, folder: Path, measured: dict[int, np.ndarray] | None = None
) -> list[Path]:
    """Write ``theta_trajectory.png``, ``twin_maps.png`` and ``loops.png`` into ``folder``.

    Args:
        twin: The digital twin.
        folder: Output folder (created).
        measured: Measured loops by flat pixel index (``loops.png`` compares up to six).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = [r for r in twin.history if f"theta.{twin.theta_names[0]}" in r]
    k = len(twin.theta_names)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 2.8), squeeze=False)
    for ax, name in zip(axes[0], twin.theta_names, strict=True):
        n = [r["n_experiments"] + r["n_simulations"] for r in rows]
        m = np.array([r[f"theta.{name}"] for r in rows])
        sd = np.array([r[f"theta_std.{name}"] for r in rows])
        ax.plot(n, m, color="C0")
        ax.fill_between(n, m - 2 * sd, m + 2 * sd, color="C0", alpha=0.3)
        ax.set_xlabel("results (experiments + simulations)")
        ax.set_title(f"{name} (mean ± 2 sd)", fontsize=9)
    fig.tight_layout()
    paths.append(folder / "theta_trajectory.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    h, w = twin.shape
    fig, axes = plt.subplots(1, 2 + k, figsize=(3.2 * (2 + k), 3.0))
    axes[0].imshow(twin.s, cmap="gray")
    axes[0].set_title("structure s (normalised)", fontsize=9)
    im = axes[1].imshow(twin.discrepancy_map(), cmap="magma")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[1].set_title("where theory fails: shape discrepancy / theory std", fontsize=9)
    rr, cc = np.divmod(twin.measured, w)
    for i, name in enumerate(twin.theta_names):
        ax = axes[2 + i]
        ax.imshow(twin.s, cmap="gray", alpha=0.35)
        sc = ax.scatter(cc, rr, c=twin.local_theta[:, i], s=18, cmap="viridis")
        fig.colorbar(sc, ax=ax, shrink=0.8)
        ax.set_title(f"fitted {name} per measured pixel", fontsize=9)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    paths.append(folder / "twin_maps.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if measured:
        flats = sorted(measured)[:6]
        pred = twin.predict(np.array(flats))
        fig, axes = plt.subplots(1, len(flats), figsize=(2.8 * len(flats), 2.6), squeeze=False)
        for i, (ax, flat) in enumerate(zip(axes[0], flats, strict=True)):
            ax.plot(twin.voltage, measured[flat], "k.", ms=3, label="experiment")
            ax.plot(twin.voltage, pred["theory"][i], "C1-", label="theory(theta*)")
            ax.plot(twin.voltage, pred["twin"][i], "C0-", label="twin")
            ax.set_title(f"pixel ({flat // w}, {flat % w})", fontsize=9)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        paths.append(folder / "loops.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def finish_twin(
    agent: HasDigitalTwin | None, tracker: Tracker, run_dir: Path, name: str, step: int
) -> dict | None:
    """Save, report, log and register the agent's twin (``None`` without a twin agent, or if
    it has no twin yet).

    Writes ``<run_dir>/twin/artefact`` (the twin) and ``<run_dir>/twin/report`` (PNGs); logs
    theta* and its standard deviation as ``twin.theta.*`` metrics, the report as artifacts,
    and registers the pyfunc model as ``<name>-twin`` in MLflow's model registry.
    """
    if agent is None:
        return None
    twin = agent.digital_twin()
    if twin is None:
        return None
    folder = run_dir / "twin"
    twin.save(folder / "artefact")
    measured = {loc.flat(twin.shape[1]): y for loc, y in agent.experiments.values()}
    write_twin_report(twin, folder / "report", measured)
    tracker.log_artifacts(folder / "report", "twin_report")
    metrics = {
        f"twin.theta.{n}": float(v) for n, v in zip(twin.theta_names, twin.theta_mean, strict=True)
    }
    metrics.update(
        {
            f"twin.theta_std.{n}": float(v)
            for n, v in zip(twin.theta_names, twin.theta_std, strict=True)
        }
    )
    tracker.log_metrics(step, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_pyfunc(twin, Path(tmp) / "model")
        version = tracker.register_model(model_dir, "twin_model", f"{name}-twin")
    return {
        "theta": dict(zip(twin.theta_names, map(float, twin.theta_mean), strict=True)),
        "theta_std": dict(zip(twin.theta_names, map(float, twin.theta_std), strict=True)),
        "folder": str(folder),
        "registered_model": f"{name}-twin" if version is not None else None,
        "registered_version": version,
    }
