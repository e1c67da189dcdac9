"""The live dashboard's maps: the campaign's model rebuilt from its trace, drawn as a PNG.

The trace stores decisions and signals, not maps, so the dashboard refits the agent the way
``coscope report`` does (:class:`~coscope.replay.counterfactual.Replayer`: the settings in
force after the last decision, every stored measurement told) and draws, for a grid space,
the posterior mean and standard deviation with the measured points (one marker per
instrument, filled) and the pending ones (hollow) on top, and the ground truth when the sample
knows it (same colour scale as the prediction). Axes in µm (the grid's pitch). Other spaces
(a continuous box, a table of candidates) get the report's own ``maps.png``.

Rendering reads the trace read-only and costs a model fit: :class:`MapRenderer` runs it on
one background thread, again only when the trace holds new measurements, and keeps the last
picture meanwhile.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from coscope.errors import CoscopeError  # noqa: E402
from coscope.replay.counterfactual import Replayer  # noqa: E402
from coscope.report.maps import _image, _shared_limits  # noqa: E402
from coscope.report.replayed import rebuilt, write_replayed_maps  # noqa: E402
from coscope.spaces import PixelGrid  # noqa: E402
from coscope.storage import TraceStore  # noqa: E402
from coscope.trust import require_trusted  # noqa: E402
from coscope.types import Proposal  # noqa: E402

MARKERS = "osD^vP*X"
"""One marker per instrument, in the spec's order."""


@dataclass(frozen=True)
class RenderedMaps:
    """One rendering of a campaign's maps.

    Attributes:
        png: The picture (PNG bytes); empty when ``error`` says why there is none.
        n_measurements: Measurements the model was told.
        model_version: The trace's latest fit version when drawn (-1: none).
        rmse: RMSE of the prediction against the ground truth (None: unknown truth).
        seconds: Wall time of the refit and drawing.
        error: Why no maps could be drawn (one sentence), else ``""``.
    """

    png: bytes
    n_measurements: int
    model_version: int
    rmse: float | None
    seconds: float
    error: str = ""


def _points(
    ax: Axes, pitch: float, decisions: list[Proposal], names: list[str], hollow: bool
) -> None:
    for k, name in enumerate(names):
        mine = [d for d in decisions if d.instrument == name]
        if not mine:
            continue
        rows = (np.array([d.location.row for d in mine]) + 0.5) * pitch
        cols = (np.array([d.location.col for d in mine]) + 0.5) * pitch
        ax.scatter(
            cols,
            rows,
            s=26,
            marker=MARKERS[k % len(MARKERS)],
            label=f"{name} {'pending' if hollow else 'measured'}",
            facecolors="none" if hollow else "white",
            edgecolors="red" if hollow else "black",
            linewidths=1.4 if hollow else 0.5,
        )


def _grid_png(
    rp: Replayer,
    mean: np.ndarray,
    std: np.ndarray,
    truth: np.ndarray | None,
    pending: list[Proposal],
    title: str,
) -> bytes:
    """The grid campaign's panels (see the module docstring) as PNG bytes."""
    space = rp.space
    h, w = rp.sample.structure.shape[:2]
    pitch = space.pixel_size_um if isinstance(space, PixelGrid) else 1.0
    extent = (0.0, w * pitch, h * pitch, 0.0)
    label = rp.steered.spec.scalarizer.name
    names = list(dict.fromkeys([i.name for i in rp.spec.instruments]))
    names += [n for n in dict.fromkeys(d.instrument for d in rp.decisions) if n not in names]
    measured_steps = {m.step for m in rp.measurements}
    measured = [d for d in rp.decisions if d.step in measured_steps]
    panels = [
        ("prediction (mean)", mean, "viridis", label),
        ("uncertainty (std)", std, "magma", f"std of {label}"),
    ]
    if truth is not None:
        panels.append(("ground truth", truth, "viridis", label))
    limits = _shared_limits(truth, mean)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.0 * len(panels), 4.0), constrained_layout=True
    )
    for ax, (name, data, cmap, bar) in zip(np.atleast_1d(axes), panels, strict=True):
        if data is None or not np.isfinite(data).any():
            ax.set_title(f"{name}: no model yet", fontsize=10)
            data = np.zeros((h, w))
        shared = limits if cmap == "viridis" else None
        _image(ax, data, name, extent=extent, label=bar, cmap=cmap, limits=shared)
        _points(ax, pitch, measured, names, hollow=False)
        _points(ax, pitch, pending, names, hollow=True)
        ax.set_xlim(0, w * pitch)
        ax.set_ylim(h * pitch, 0)
    np.atleast_1d(axes)[0].legend(fontsize=6, loc="lower left", framealpha=0.7)
    fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def render_maps(path: str | Path, *, allow_user_code: bool = False) -> RenderedMaps:
    """Refit the campaign's model from the trace at ``path`` and draw its maps.

    A campaign whose model cannot be rebuilt here (multi-objective, several targets, user
    code not allowed) gives ``RenderedMaps(error=...)`` instead of raising.
    """
    began = time.perf_counter()
    store = TraceStore.open(path, mode="r")
    fits = store.fits() if store.counts().get("fits") else []
    version = fits[-1].version if fits else -1
    try:
        require_trusted(store, allow_user_code, "dashboard")
        rp = rebuilt(store)
    except CoscopeError as exc:
        return RenderedMaps(b"", 0, version, None, time.perf_counter() - began, str(exc))
    n = len(rp.measurements)
    agent = rp.steered.agent
    report = agent.report()
    rmse = rp.metrics()["rmse"]
    title = f"{rp.spec.name}: the model rebuilt from {n} measurements (trace fit v{version})"
    measured = {m.step for m in rp.measurements}
    pending = [d for d in rp.decisions if d.step not in measured]
    if not isinstance(rp.space, PixelGrid | None):  # a box, a table: the report's maps
        with tempfile.TemporaryDirectory(prefix="coscope-dashboard-") as folder:
            visited = [d.location for d in rp.decisions if d.step in measured]
            png = write_replayed_maps(Path(folder), rp, title, visited).read_bytes()
    else:
        png = _grid_png(rp, report.mean, report.std, rp.steered.truth, pending, title)
    return RenderedMaps(
        png,
        n,
        version,
        rmse if np.isfinite(rmse) else None,
        time.perf_counter() - began,
    )


class MapRenderer:
    """Renders one campaign's maps on a background thread when its measurements change.

    Args:
        path: The campaign's trace.
        min_interval_s: Seconds between the starts of two renderings at least (a refit per
            poll would compete with the campaign for the CPU).
        allow_user_code: Run user code the trace names (scalarizers …) to rebuild its model.
        pool: The executor renderings run on (shared by the campaigns of one dashboard, one
            worker: one fit at a time).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        min_interval_s: float,
        allow_user_code: bool,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self.allow_user_code = allow_user_code
        self._pool = pool
        self._lock = threading.Lock()
        self._future: Future[RenderedMaps] | None = None
        self._started = -float("inf")
        self._wanted = -1
        self.latest: RenderedMaps | None = None
        self.history: list[tuple[int, float]] = []
        """``(n_measurements, rmse)`` of every rendering with a known truth: the learning
        curve as the dashboard saw it."""

    def request(self, n_measurements: int) -> None:
        """Start a rendering if the trace holds ``n_measurements`` and the last picture
        shows fewer, none is running, and the interval has passed."""
        with self._lock:
            self._collect()
            shown = -1 if self.latest is None else self.latest.n_measurements
            if n_measurements == shown and self.latest is not None:
                return
            if self._future is not None:
                return
            if time.monotonic() - self._started < self.min_interval_s:
                return
            self._started = time.monotonic()
            self._wanted = n_measurements
            self._future = self._pool.submit(
                render_maps, self.path, allow_user_code=self.allow_user_code
            )

    def _collect(self) -> None:
        future = self._future
        if future is None or not future.done():
            return
        self._future = None
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a live view keeps serving; shown, retried
            result = RenderedMaps(b"", self._wanted, -1, None, 0.0, f"maps failed: {exc}")
            if self.latest is not None and self.latest.png:
                return  # keep the last picture; the next measurement tries again
        self.latest = result
        if result.rmse is not None and (
            not self.history or self.history[-1][0] != result.n_measurements
        ):
            self.history.append((result.n_measurements, result.rmse))

    def current(self) -> RenderedMaps | None:
        """The latest finished rendering (None before the first)."""
        with self._lock:
            self._collect()
            return self.latest

    @property
    def busy(self) -> bool:
        """A rendering is running."""
        with self._lock:
            self._collect()
            return self._future is not None
