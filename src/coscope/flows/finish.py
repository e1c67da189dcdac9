"""What happens when a campaign's loop ends: final model, report, status, artifacts."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from coscope.campaign import CampaignContext, LoopOutcome
from coscope.report import write_report
from coscope.report.utilisation import co_orchestration_metrics
from coscope.twin.report import finish_twin


def finish_campaign(ctx: CampaignContext, outcome: LoopOutcome) -> dict[str, Any]:
    """Write the report (the agent fits first only if its model is stale), record the status;
    return a summary dict."""
    report_dir = ctx.spec.resolved_run_dir() / "report"
    write_report(ctx, outcome.history, report_dir)
    ctx.tracker.log_artifacts(report_dir, "report")
    twin = finish_twin(  # co-navigation: the digital twin, logged and registered
        ctx.abilities.digital_twin,
        ctx.tracker,
        ctx.spec.resolved_run_dir(),
        ctx.spec.name,
        outcome.n_measurements,
    )
    with tempfile.TemporaryDirectory() as tmp:
        decisions = [
            {**asdict(p), "location": [p.location.row, p.location.col]}
            for p in ctx.store.decisions()
        ]
        (Path(tmp) / "decisions.json").write_text(json.dumps(decisions, indent=1, default=float))
        ctx.tracker.log_artifacts(Path(tmp), "trace")
    hands = ctx.abilities.hands_over_fits  # fits adopted by the final report
    for record in hands.take_fits() if hands is not None else ():
        record = replace(record, version=ctx.store.counts()["fits"])
        ctx.store.append_fit(record)
        ctx.tracker.log_fit(record)
    metrics, arrays = co_orchestration_metrics(ctx)  # utilisation, per modality, task cov
    ctx.tracker.log_metrics(outcome.n_measurements, metrics)
    for name, array in arrays.items():
        ctx.tracker.log_array(name, array)
    ctx.store.set_attr("status", outcome.status)
    ctx.store.set_attr("finished_reason", outcome.reason)
    ctx.tracker.finish(outcome.status)
    ctx.store.close()
    final = outcome.history[-1] if outcome.history else {}
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "measurements": outcome.n_measurements,
        "cost_spent": outcome.cost_spent,
        "best_so_far": final.get("best_so_far"),
        "rmse": next((r["rmse"] for r in reversed(outcome.history) if "rmse" in r), None),
        "report": str(report_dir),
        "store": str(ctx.store.path),
        "mlflow_run_id": ctx.tracker.run_id,
        **({"twin": twin} if twin else {}),
    }
