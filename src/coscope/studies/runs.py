"""One campaign of a study, run where it is sent (a Dask worker): plain data in, plain data out.

A *job* is a JSON-safe dict::

    {"keys": {"policy": "ei", "seed": 3},        # what identifies the run in the study
     "spec": {...},                              # the full campaign spec (seed, policy,
                                                 #   run_dir, store, time_scale already set)
     "inject": {"at": 20, "n": 5, "seed": [..]}} # optional seed-point intervention

:func:`run_job` builds the campaign from the spec in the worker
(:func:`~coscope.infra.local.open_local`: the plain :class:`~coscope.campaign.CampaignLoop`
with the :class:`~coscope.campaign.LocalExecutor` and no tracker), writes the trace to the
spec's store, and returns the per-step curve rows (:mod:`coscope.studies.metrics`). Nothing
live crosses the process boundary and no MLflow client is opened in the worker: the driver
logs what it gets back.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from coscope.agents.base import GridAgent
from coscope.agents.box_agent import BoxAgent
from coscope.campaign import CampaignLoop
from coscope.campaign.inbox import Inbox
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import box_truth
from coscope.infra.local import open_local
from coscope.instruments import Sample
from coscope.spaces import PixelGrid, Space
from coscope.studies.metrics import BoxMetrics, StepMetrics
from coscope.types import Location

ROW_HEAD = ("step", "n_measurements", "cost_spent")


def injection_points(
    space: Space, measured: set[int], n: int, seed: list[int]
) -> list[tuple[int, int]]:
    """``n`` distinct candidates ``(row, col)`` not in ``measured`` (flat), drawn from ``seed``."""
    W = space.layout[1]
    free = np.setdiff1d(space.indices, np.fromiter(measured, dtype=np.int64))
    picks = np.random.default_rng(seed).choice(free, size=min(n, free.size), replace=False)
    return [(int(i) // W, int(i) % W) for i in picks]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one campaign of a study and return its curve.

    Args:
        job: See the module docstring.

    Returns:
        ``{"keys", "rows", "points", "injected", "status", "reason", "seconds", "store"}``:
        ``rows`` one dict per measurement (step, n_measurements, cost_spent and
        :data:`~coscope.studies.metrics.METRICS`, ``None`` where unknown); ``points`` the
        measured ``[row, col]`` in step order; ``injected`` the points added by the
        intervention (empty without one).
    """
    t0 = time.perf_counter()
    spec = parse_spec(job["spec"])
    loop, sample = open_local(spec)
    ctx = loop.ctx
    agent = ctx.agent
    inject = job.get("inject")
    if isinstance(agent, BoxAgent):
        if inject:
            ctx.store.close()
            raise ConfigError("seed-point injection needs a finite space, not a box.")
        return _run_box_job(job, loop, agent, sample, t0)
    if not isinstance(agent, GridAgent):  # the study reads its observations and seed points
        ctx.store.close()
        raise ConfigError(
            f"policy '{spec.policy.name}' cannot run in a study: benchmark and seed studies "
            "take single-target policies (ei, ucb, maxvar, thompson, random, raster)."
        )
    space = ctx.space if ctx.space is not None else PixelGrid(sample.shape)
    metrics = StepMetrics(ctx.truth_map)
    ctx.truth_map = None  # the loop's own RMSE would predict the grid a second time per step
    width = sample.shape[1]
    seen: set[int] = set()
    rows: list[dict[str, Any]] = []
    injected: list[tuple[int, int]] = []

    def on_measurement(row: dict[str, float]) -> None:
        for ob in agent.observations:
            if ob.step not in seen:
                seen.add(ob.step)
                metrics.add(ob.location.flat(width), ob.value)
        report = agent.report()
        rows.append(
            {
                "step": int(row["step"]),
                "n_measurements": int(row["n_measurements"]),
                "cost_spent": float(row["cost_spent"]),
                **metrics.row(report.mean, report.std),
            }
        )
        if inject and int(row["n_measurements"]) == int(inject["at"]):
            points = injection_points(space, metrics.measured, inject["n"], inject["seed"])
            injected.extend(points)
            # Applied to the live agent (seed points are proposed before anything else) and
            # posted to the inbox, so the loop records it in the trace as an intervention.
            agent.seed_points = (*agent.seed_points, *(Location(r, c) for r, c in points))
            Inbox(ctx.store.path).post(
                "seed_points",
                {"points": [list(p) for p in points]},
                why=f"seed study: {len(points)} random points injected after measurement "
                f"{inject['at']}",
            )

    ctx.on_measurement = on_measurement
    try:
        outcome = loop.run()
        points = [
            [m.location.row, m.location.col]
            for m in sorted(ctx.store.measurements(), key=lambda m: m.step)
        ]
    finally:
        ctx.store.close()
    return {
        "keys": dict(job["keys"]),
        "rows": rows,
        "points": points,
        "injected": [list(p) for p in injected],
        "status": outcome.status,
        "reason": outcome.reason,
        "seconds": time.perf_counter() - t0,
        "store": str(spec.resolved_store()),
    }


def _run_box_job(
    job: dict[str, Any], loop: CampaignLoop, agent: BoxAgent, sample: Sample, t0: float
) -> dict[str, Any]:
    """:func:`run_job` of a box campaign: curve rows of :class:`BoxMetrics` (best so far,
    simple regret when the instrument is a synthetic function); ``points`` are the
    measured coordinates."""
    ctx = loop.ctx
    spec = ctx.spec
    truth = box_truth(spec, sample)
    metrics = BoxMetrics(truth.value, truth.maximum) if truth else BoxMetrics()
    seen: set[int] = set()
    rows: list[dict[str, Any]] = []

    def on_measurement(row: dict[str, float]) -> None:
        for ob in agent.observations:
            if ob.step not in seen:
                seen.add(ob.step)
                metrics.add(agent.point(ob.step), ob.value)
        rows.append(
            {
                "step": int(row["step"]),
                "n_measurements": int(row["n_measurements"]),
                "cost_spent": float(row["cost_spent"]),
                **metrics.row(),
            }
        )

    ctx.on_measurement = on_measurement
    try:
        outcome = loop.run()
        steps = sorted(m.step for m in ctx.store.measurements())
        points = [agent.point(s).tolist() for s in steps]
    finally:
        ctx.store.close()
    return {
        "keys": dict(job["keys"]),
        "rows": rows,
        "points": points,
        "injected": [],
        "status": outcome.status,
        "reason": outcome.reason,
        "seconds": time.perf_counter() - t0,
        "store": str(spec.resolved_store()),
    }
