"""Build the campaign report from a wired context: maps, learning curve, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coscope.campaign.context import CampaignContext
from coscope.report.box_maps import write_learner_maps
from coscope.report.front_plot import write_front
from coscope.report.maps import write_learning_curve, write_space_maps
from coscope.spaces import Box


def write_report(ctx: CampaignContext, history: list[dict[str, float]], folder: Path) -> Path:
    """Write ``maps.png``, ``learning_curve.png`` (when ground truth is known), ``front.png``
    (a multi-objective campaign) and ``summary.json``.

    Args:
        ctx: The campaign's wired parts; the agent must hold every observation.
        history: Per-measurement rows (``n_measurements``, ``rmse`` …) known to the caller.
        folder: Output folder (created).

    Returns:
        ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    measurements = ctx.store.measurements()
    spec = ctx.spec
    title = (
        f"{spec.name}: {spec.policy.name} on {spec.scalarizer.name}, {len(measurements)} "
        "measurements"
    )
    write_campaign_maps(ctx, folder, title)
    rows = [r for r in history if "rmse" in r]
    if rows:
        write_learning_curve(
            folder,
            {spec.policy.name: ([r["n_measurements"] for r in rows], [r["rmse"] for r in rows])},
            ylabel=f"RMSE of {spec.scalarizer.name} map",
            name="learning_curve",
        )
    summary: dict[str, Any] = {
        "campaign": spec.name,
        "measurements": len(measurements),
        "cost_spent": float(sum(m.cost for m in measurements)),
        "final": rows[-1] if rows else {},
    }
    if ctx.front is not None:  # a multi-objective campaign: its front and hypervolume curve
        summary["pareto"] = ctx.front.summary()
        write_front(folder, ctx.front.measured(), summary["pareto"], history, title=title)
    weighs = ctx.abilities.hypotheses
    verdict = weighs.verdict() if weighs is not None else None
    if verdict is not None:  # hypothesis learning: which hypothesis the data support
        summary["hypotheses"] = verdict
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


def write_campaign_maps(ctx: CampaignContext, folder: Path, title: str) -> Path:
    """Write ``maps.png`` of the agent's model now: prediction and uncertainty over the space
    (with the truth when known and the measured points), or a box's maps; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    report = ctx.agent.report()
    measurements = ctx.store.measurements()
    mean, std = report.mean, report.std
    learner = ctx.abilities.points
    if isinstance(ctx.space, Box) and learner is not None:  # no image: map or slices
        observed = [ctx.observe(m) for m in measurements if m.modality == ctx.target_modality]
        write_learner_maps(folder, ctx.space, learner, observed, title)
    else:
        write_space_maps(
            folder,
            ctx.space,
            structure=ctx.sample.structure,
            mean=mean,
            std=std,
            truth=ctx.truth_map,
            visited=[m.location for m in measurements],
            title=title,
            value_label=ctx.spec.scalarizer.name,
        )
    return folder / "maps.png"
