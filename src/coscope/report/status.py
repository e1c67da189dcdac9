"""The state of a campaign from its trace alone (``coscope status``).

The JSON form is a stable interface (documented in ``docs/cli.md``); keys are only ever
added, never renamed, and ``status_version`` changes if that promise is broken.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

from coscope.approve_requests import approval_status
from coscope.campaign.feasible import constraint_status, status_lines, stopping_status
from coscope.campaign.front import FrontBook, objectives_of
from coscope.campaign.theory_intake import batch_summary, campaign_measured
from coscope.config import parse_spec
from coscope.errors import CoscopeError
from coscope.report.utilisation import utilisation
from coscope.report.verdict import leading_fit, verdict_line, verdict_of
from coscope.scalarizers import SCALARIZERS, scalarize
from coscope.spaces import POINT_PARAM, space_summary
from coscope.steer_requests import steering_summary
from coscope.storage import TraceStore
from coscope.types import FitRecord

STATUS_VERSION = 1


def _alive(runner: dict[str, Any] | None) -> bool | None:
    """Whether the recorded runner process is alive (``None`` if it ran on another host)."""
    if not runner or runner.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(runner["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


def campaign_status(path: str | Path) -> dict[str, Any]:
    """Everything ``coscope status`` reports, as a JSON-safe dict (see ``docs/cli.md``)."""
    store = TraceStore.open(path, mode="r")
    campaign = store.effective_campaign()
    measurements = store.measurements()
    decisions = store.decisions()
    by_modality: dict[str, int] = {}
    for m in measurements:
        by_modality[m.modality] = by_modality.get(m.modality, 0) + 1
    spent = float(sum(m.cost for m in measurements))
    budget = campaign.get("budget", {})
    used = []
    if budget.get("max_cost"):
        used.append(spent / budget["max_cost"])
    if budget.get("max_measurements"):
        used.append(campaign_measured(store, measurements) / budget["max_measurements"])
    status = store.get_attr("status", "created")
    alive = _alive(store.get_attr("runner", None))
    if status == "running" and alive is False:
        status = "interrupted"
    last = decisions[-1] if decisions else None
    space = space_summary(store.get_attr("space", None), store.sample_shape)
    best = _with_point(_best(store, campaign, measurements), space, decisions)
    failures = _failures(store)
    approval = approval_status(store)
    closed = {m.step for m in measurements} | set(approval["dropped"] if approval else ())
    closed |= set(failures["retired"])
    fits = store.fits() if store.counts().get("fits", 0) else []
    return {
        "status_version": STATUS_VERSION,
        "store": str(Path(path)),
        "campaign": campaign.get("name"),
        "space": space,
        "status": status,
        "finished": status == "finished",
        "finished_reason": store.get_attr("finished_reason", None),
        "runner_alive": alive,
        "measurements": {"total": len(measurements), "by_modality": by_modality},
        "theory_batches": batch_summary(store),
        "decisions": len(decisions),
        "pending": sum(d.step not in closed for d in decisions),
        "pending_by_instrument": pending_by_instrument(decisions, closed),
        "failures": failures,
        "fits": store.counts().get("fits", 0),
        "model": _model(fits, campaign),
        "hypotheses": verdict_of(fits),
        "cost_spent": spent,
        "budget": {
            "max_cost": budget.get("max_cost"),
            "max_measurements": budget.get("max_measurements"),
        },
        "budget_used": max(used) if used else None,
        "best": best,
        "pareto": _pareto(store, campaign, measurements),
        "constraints": constraint_status(
            campaign, measurements, lambda m: store.modalities[m].axis
        ),
        "stopping": stopping_status(campaign, store.interventions()),
        "last_decision": None
        if last is None
        else {
            "step": last.step,
            "instrument": last.instrument,
            "modality": last.modality,
            "location": [last.location.row, last.location.col],
            "policy": last.policy,
            **_point_of(last, space),
            "score": None if math.isnan(last.score) else last.score,
            "t_decided": last.t_decided,
        },
        "mlflow_run_id": store.get_attr("mlflow_run_id", None),
        "steering": _steering(store, campaign),
        "approval": approval,
        "utilisation": utilisation(
            measurements, decisions, [i.get("name") for i in campaign.get("instruments", [])]
        ),
    }


def _model(fits: list[FitRecord], campaign: dict[str, Any]) -> dict[str, Any] | None:
    """The latest fit: its kind, version, size and, for a structured GP, the law's fitted
    parameters (``{name: {"value", "std"}}``, docs/structured-gp.md); None before any fit.
    Plain data from the fits table: no model is rebuilt, no law imported."""
    if not fits:
        return None
    last = leading_fit(fits) or fits[-1]  # hypothesis learning: the leading hypothesis' fit
    hp = last.hyperparameters
    out: dict[str, Any] = {
        "kind": "structured" if "law" in hp else campaign.get("policy", {}).get("model", "gp"),
        "version": last.version,
        "n_train": last.n_train,
    }
    if "law" in hp:
        names = [k[4:] for k in hp if k.startswith("law.") and not k.endswith(".std")]
        out["law"] = hp["law"]
        out["law_parameters"] = {
            n: {"value": _finite(hp[f"law.{n}"]), "std": _finite(hp.get(f"law.{n}.std"))}
            for n in names
        }
    return out


def _finite(value: Any) -> float | None:
    """``value`` as a JSON-safe float (None for NaN or missing)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _failures(store: TraceStore) -> dict[str, Any]:
    """Failed measurements recorded in the trace (docs/faults-and-security.md)."""
    records = [i.payload for i in store.interventions() if i.kind == "failed_measurement"]
    by_class: dict[str, int] = {}
    for r in records:
        by_class[str(r.get("failure_class"))] = by_class.get(str(r.get("failure_class")), 0) + 1
    retired = sorted({int(r["step"]) for r in records if r.get("retired")})
    return {"failed": len(records), "by_class": by_class, "retired": retired}


def pending_by_instrument(decisions: list, closed: set[int]) -> dict[str, list[int]]:
    """Steps decided but not measured (nor rejected, nor retired: ``closed``), per instrument,
    oldest first.

    The first of an instrument is the one it measures (or that resume re-issues first); the
    others are queued behind it (``queue_depth``), chained, each starting when the one before
    it ends.
    """
    pending: dict[str, list[int]] = {}
    for d in decisions:
        if d.step not in closed:
            pending.setdefault(d.instrument, []).append(d.step)
    return pending


def _pending_line(pending: dict[str, list[int]], running: bool) -> str:
    first = "measuring" if running else "next"
    parts = []
    for name, steps in pending.items():
        queued = f", {', '.join(map(str, steps[1:]))} queued" if len(steps) > 1 else ""
        parts.append(f"{name}: step {steps[0]} {first}{queued}")
    return "pending    " + "; ".join(parts)


def _steering(store: TraceStore, campaign: dict[str, Any]) -> dict[str, Any]:
    return steering_summary(store, campaign)


def _best(store: TraceStore, campaign: dict[str, Any], measurements: list) -> dict[str, Any] | None:
    """The best stored target value; None when the scalarizer is a user's (status never
    imports code a trace names, :mod:`coscope.trust`) or fails on a stored signal."""
    scalarizer = campaign.get("scalarizer", {})
    modality, name = scalarizer.get("modality"), scalarizer.get("name")
    info = store.modalities.get(modality)
    if not isinstance(name, str) or name not in SCALARIZERS:
        return None
    best = None
    for m in measurements:
        if m.modality != modality or info is None:
            continue
        try:
            value = float(scalarize(name, m.signal, info.axis, scalarizer.get("params")))
        except CoscopeError:
            return None
        if best is None or value > best["value"]:
            best = {"value": value, "location": [m.location.row, m.location.col], "step": m.step}
    return best


def _point_of(decision: Any, space: dict[str, Any]) -> dict[str, Any]:
    """``{"point": {name: value}}`` of a box campaign's decision (its params' ``x``), else
    ``{}`` (also when the decision carries no valid point)."""
    names = [d["name"] for d in space.get("dimensions", [])]
    x = decision.params.get(POINT_PARAM) if names else None
    if not isinstance(x, list) or len(x) != len(names):
        return {}
    return {"point": {n: float(v) for n, v in zip(names, x, strict=True)}}


def _with_point(
    best: dict[str, Any] | None, space: dict[str, Any], decisions: list
) -> dict[str, Any] | None:
    """``best`` with the coordinates of its point on a box (see :func:`_point_of`)."""
    if best is None:
        return None
    decision = next((d for d in decisions if d.step == best["step"]), None)
    return {**best, **(_point_of(decision, space) if decision is not None else {})}


def _named(point: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.6g}" for name, value in point.items())


def _pareto(store: TraceStore, campaign: dict[str, Any], measurements: list) -> dict | None:
    """The Pareto front of a multi-objective campaign's measurements
    (:meth:`FrontBook.summary`); None for one objective, a user's scalarizer (never imported
    from a trace, :mod:`coscope.trust`), a spec that no longer parses, or a failing signal."""
    objectives = campaign.get("objectives") or []
    if not all(isinstance(o, dict) and o.get("name") in SCALARIZERS for o in objectives):
        return None
    try:
        spec = parse_spec(campaign)
        found = objectives_of(spec, lambda m: store.modalities[m].axis)
        if found is None:
            return None
        book = FrontBook(found)
        book.add(measurements)
        return book.summary()
    except (CoscopeError, KeyError):
        return None


def _space_line(space: dict[str, Any] | None) -> list[str]:
    if not space:
        return []
    if space.get("dimensions"):
        dims = ", ".join(
            f"{d['name']} in [{d['lo']:g}, {d['hi']:g}]" + (f" {d['units']}" if d["units"] else "")
            for d in space["dimensions"]
        )
        return [f"space      box of {len(space['dimensions'])} dimensions: {dims}"]
    h, w = space["layout"]
    where = f"{h} x {w} layout" if space["kind"] != "table" else "rows of the table"
    return [f"space      {space['kind']}: {space['candidates']} candidates ({where})"]


def _approval_lines(approval: dict[str, Any] | None) -> list[str]:
    if not approval or not (approval["required"] or any(approval["answers"].values())):
        return []
    answers = ", ".join(f"{k} {v}" for k, v in approval["answers"].items() if v) or "none yet"
    lines = [f"approval   answers: {answers}"]
    for w in approval["waiting"]:
        lines.append(
            f"waiting    step {w['step']} on {w['instrument']}: {w['modality']} at "
            f"({w['location'][0]}, {w['location'][1]}), price {w['price']:g}; "
            f"`coscope approve STORE --step {w['step']}`"
        )
    return lines


def _pareto_line(pareto: dict[str, Any]) -> str:
    """One line: the objectives, the size of the front and its hypervolume."""
    names = ", ".join(f"{o['goal']} {o['name']}" for o in pareto["objectives"])
    return (
        f"pareto     {len(pareto['points'])} non-dominated ({names}), "
        f"hypervolume {pareto['hypervolume']:.4g}"
    )


def format_status(status: dict[str, Any]) -> str:
    """Human-readable lines of a status dict."""
    budget = status["budget"]
    limits = []
    if budget["max_measurements"]:
        batches = status.get("theory_batches") or {}
        counted = status["measurements"]["total"] - batches.get("simulations", 0)
        limits.append(f"{counted}/{budget['max_measurements']} measurements")
    if budget["max_cost"]:
        limits.append(f"cost {status['cost_spent']:g}/{budget['max_cost']:g}")
    lines = [
        f"campaign   {status['campaign']}  ({status['store']})",
        f"status     {status['status']}"
        + (f" — {status['finished_reason']}" if status["finished_reason"] else ""),
        f"budget     {', '.join(limits) or 'none'}",
        *_space_line(status.get("space")),
        "measured   "
        + (
            ", ".join(f"{k}: {v}" for k, v in status["measurements"]["by_modality"].items())
            or "nothing yet"
        ),
        f"decisions  {status['decisions']} ({status['pending']} pending), "
        f"model fits {status['fits']}",
    ]
    model = status.get("model") or {}
    if model.get("law_parameters"):
        lines.append(
            f"model      v{model['version']} {model['kind']} {model['law']}: "
            + ", ".join(
                f"{n} {p['value']:.4g}" + (f" ± {p['std']:.2g}" if p["std"] is not None else "")
                for n, p in model["law_parameters"].items()
                if p["value"] is not None
            )
        )
    if status.get("hypotheses"):
        lines.append(f"hypotheses {verdict_line(status['hypotheses'])}")
    if status.get("pending_by_instrument"):
        running = status["status"] == "running"
        lines.append(_pending_line(status["pending_by_instrument"], running))
    failures = status.get("failures") or {}
    if failures.get("failed"):
        kinds = ", ".join(f"{k}: {v}" for k, v in failures["by_class"].items())
        retired = failures["retired"]
        lines.append(
            f"failures   {failures['failed']} ({kinds})"
            + (f"; retired step(s) {', '.join(map(str, retired))}" if retired else "")
        )
    lines += _approval_lines(status.get("approval"))
    if status["best"]:
        b = status["best"]
        where = (
            _named(b["point"])
            if "point" in b
            else f"(row {b['location'][0]}, col {b['location'][1]})"
        )
        lines.append(f"best       {b['value']:.4g} at {where}, step {b['step']}")
    if status.get("pareto"):
        lines.append(_pareto_line(status["pareto"]))
    lines += status_lines(status)
    if status.get("utilisation"):
        lines.append(
            "busy       "
            + ", ".join(f"{k}: {100 * v:.0f} %" for k, v in status["utilisation"].items())
        )
    if status["last_decision"]:
        d = status["last_decision"]
        where = _named(d["point"]) if "point" in d else f"({d['location'][0]}, {d['location'][1]})"
        lines.append(
            f"last       step {d['step']}: {d['policy']} -> {d['modality']} at {where} on "
            f"{d['instrument']}"
        )
    theory = status.get("theory_batches") or {}
    if theory.get("recorded") or theory.get("refused"):
        lines.append(
            f"theory     {theory['recorded']} batches in the trace ({theory['simulations']} "
            f"simulations, cost {theory['cost']:g} paid by the batches), "
            f"{theory['refused']} refused"
        )
    steer = status.get("steering") or {}
    if steer.get("interventions") or steer.get("paused"):
        lines.append(
            f"steering   {'PAUSED, ' if steer['paused'] else ''}{steer['interventions']} "
            f"interventions ({steer['rejected']} rejected, {steer['inbox']} waiting); now "
            f"{steer['policy']} on {steer['scalarizer']}"
            + (f", reward: {steer['votes']} votes" if steer["reward"] == "votes" else "")
        )
    return "\n".join(lines)
