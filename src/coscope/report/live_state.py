"""What the live dashboard shows of one campaign, read from its trace alone (JSON-safe).

Everything comes from one read-only opening of the trace (:meth:`TraceStore.open` with
``"r"``), which sees a consistent prefix even while the campaign appends (the counts are read
first, then only the rows below them); the ``coscope status`` block is read in a second
opening, so it may be one step ahead. Like ``coscope status`` it never runs code the trace
names: per-measurement rewards are computed only with coscope's own scalarizers.

:class:`LiveState` caches the snapshot by the trace's root document and the inbox listing,
so a page polling every second costs one small file read while nothing changes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from coscope.approve_requests import stored_gate
from coscope.campaign.approval import describe_waiting
from coscope.campaign.inbox import Inbox
from coscope.campaign.steering import REJECTED, intervention_kinds
from coscope.errors import CoscopeError
from coscope.report.status import campaign_status, pending_by_instrument
from coscope.scalarizers import SCALARIZERS, scalarize
from coscope.storage import TraceStore
from coscope.storage.layout import read_root
from coscope.types import Measurement, Proposal

DECISIONS_SHOWN = 60
"""The decision log shows the latest this many decisions."""
TIMELINE_SHOWN = 400
"""The utilisation timeline shows the latest this many measurements."""


def _num(value: float) -> float | None:
    """A float for JSON (None for NaN and infinities)."""
    return float(value) if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _rewards(
    store: TraceStore, campaign: dict[str, Any], measurements: list[Measurement]
) -> dict[int, float]:
    """``{step: reward}`` of the target modality's measurements under the campaign's (stored)
    scalarizer; empty when it is a user's (never imported here) or fails on a signal."""
    scalarizer = campaign.get("scalarizer", {})
    name, modality = scalarizer.get("name"), scalarizer.get("modality")
    info = store.modalities.get(modality)
    if not isinstance(name, str) or name not in SCALARIZERS or info is None:
        return {}
    out: dict[int, float] = {}
    for m in measurements:
        if m.modality != modality:
            continue
        try:
            out[m.step] = float(scalarize(name, m.signal, info.axis, scalarizer.get("params")))
        except CoscopeError:
            return {}
    return out


def _decision_row(d: Proposal, state: str) -> dict[str, Any]:
    return {
        "step": d.step,
        "instrument": d.instrument,
        "modality": d.modality,
        "location": [d.location.row, d.location.col],
        "policy": d.policy,
        "score": _num(d.score),
        "expected_cost": _num(d.expected_cost),
        "model_version": d.model_version,
        "predicted_mean": _num(d.predicted_mean),
        "predicted_std": _num(d.predicted_std),
        "t_decided": d.t_decided,
        "state": state,
    }


def _approvals(store: TraceStore) -> list[dict[str, Any]]:
    """The decisions waiting for a person under the approval gate (oldest first)."""
    try:
        _, gate = stored_gate(store)
    except CoscopeError:
        return []
    return [
        {
            "step": p.step,
            "instrument": p.instrument,
            "location": [p.location.row, p.location.col],
            "text": describe_waiting(p),
        }
        for p in gate.waiting
    ]


def snapshot(path: str | Path) -> dict[str, Any]:
    """The dashboard's view of the campaign at ``path`` (docs/dashboard.md, "JSON").

    Keys: ``status`` (``coscope status --json``), ``counts``, ``shape`` ``[H, W]`` (pixels),
    ``measured`` (``[{step, instrument, modality, location, reward}]`` in order), ``pending``
    (decided, not yet measured: ``[{step, instrument, location}]``), ``curve`` (``{n, reward,
    best}``, one entry per rewarded measurement), ``fits`` (``[{version, step, n_train, loss,
    seconds}]``), ``timeline`` (``[{instrument, step, start, end}]``, seconds since the first
    decision), ``decisions`` (the latest :data:`DECISIONS_SHOWN`, newest first, each with its
    ``model_version`` and ``state`` measured | pending | closed), ``interventions`` (all, in
    order, each with ``rejected``: why or None), ``approvals`` (what waits), ``inbox``
    (requests not yet taken) and ``kinds`` (interventions a user may post).

    Raises:
        StoreError: No trace at ``path``, or it cannot be read.
    """
    status = campaign_status(path)
    store = TraceStore.open(path, mode="r")
    measurements = store.measurements()
    decisions = store.decisions()
    measured_steps = {m.step for m in measurements}
    closed = set(measured_steps)
    if status.get("approval"):
        closed |= set(status["approval"].get("dropped", ()))
    closed |= set(status["failures"]["retired"])
    pending = pending_by_instrument(decisions, closed)
    by_step = {d.step: d for d in decisions}
    rewards = _rewards(store, store.effective_campaign(), measurements)
    curve: dict[str, list[float]] = {"n": [], "reward": [], "best": []}
    best = -math.inf
    for k, m in enumerate(measurements, start=1):
        if m.step in rewards:
            best = max(best, rewards[m.step])
            curve["n"].append(k)
            curve["reward"].append(rewards[m.step])
            curve["best"].append(best)
    timed = [m for m in measurements if m.t_end > 0]
    starts = [d.t_decided for d in decisions if d.t_decided > 0] + [m.t_start for m in timed]
    t0 = min(starts) if starts else 0.0
    waiting = {s for steps in pending.values() for s in steps}
    return json_safe(
        {
            "status": status,
            "counts": store.counts(),
            "shape": list(store.sample_shape),
            "measured": [
                {
                    "step": m.step,
                    "instrument": m.instrument,
                    "modality": m.modality,
                    "location": [m.location.row, m.location.col],
                    "reward": rewards.get(m.step),
                }
                for m in measurements
            ],
            "pending": [
                {
                    "step": s,
                    "instrument": name,
                    "location": [by_step[s].location.row, by_step[s].location.col],
                }
                for name, steps in pending.items()
                for s in steps
            ],
            "curve": curve,
            "fits": [
                {
                    "version": f.version,
                    "step": f.step,
                    "n_train": f.n_train,
                    "loss": _num(f.loss),
                    "seconds": _num(f.seconds),
                }
                for f in (store.fits() if store.counts().get("fits") else [])
            ],
            "timeline": [
                {
                    "instrument": m.instrument,
                    "step": m.step,
                    "start": m.t_start - t0,
                    "end": m.t_end - t0,
                }
                for m in timed[-TIMELINE_SHOWN:]
            ],
            "decisions": [
                _decision_row(
                    d,
                    "measured"
                    if d.step in measured_steps
                    else "pending"
                    if d.step in waiting
                    else "closed",
                )
                for d in reversed(decisions[-DECISIONS_SHOWN:])
            ],
            "interventions": [
                {
                    "step": i.step,
                    "kind": i.kind,
                    "payload": {k: v for k, v in i.payload.items() if k != REJECTED},
                    "rejected": i.payload.get(REJECTED),
                    "who": i.who,
                    "why": i.why,
                    "t": i.t,
                }
                for i in store.interventions()
            ],
            "approvals": _approvals(store),
            "inbox": len(Inbox(store.path).pending()),
            "kinds": list(intervention_kinds()),
        }
    )


class LiveState:
    """The snapshot of one trace, read again only when the trace or its inbox changed, or
    ``max_age_s`` passed (the runner process may have died meanwhile)."""

    def __init__(self, path: str | Path, *, max_age_s: float = 10.0) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self._key: str | None = None
        self._read_at = -math.inf
        self._snapshot: dict[str, Any] | None = None

    def key(self) -> str:
        """What a new snapshot depends on: the trace's root attributes and the inbox listing.

        Raises:
            StoreError: No readable trace at the path.
        """
        attrs = read_root(self.path)["attributes"]
        inbox = [p.name for p in Inbox(self.path).pending()]
        return json.dumps([attrs.get("counts"), attrs.get("state"), inbox], sort_keys=True)

    def get(self) -> dict[str, Any]:
        """The current snapshot (cached while :meth:`key` is unchanged).

        Raises:
            StoreError: The trace cannot be read (and no snapshot was read before).
        """
        key = self.key()
        stale = time.monotonic() - self._read_at > self.max_age_s
        if key != self._key or self._snapshot is None or stale:
            self._snapshot = snapshot(self.path)
            self._key, self._read_at = key, time.monotonic()
        return self._snapshot
