"""Theory batches into the campaign's trace: the ``theory_batch`` request and its recording.

A scheduled theory batch (:mod:`coscope.flows.theory_batch`) never writes the trace while a
campaign runs: the trace has one writer, the loop. The batch writes its simulations to a
**sidecar** file, ``<run_dir>/theory_batches/batch-NNNN/simulations.npz``
(:mod:`coscope.campaign.theory_sidecar`), and posts **one** request per batch into the
campaign's inbox, atomically:

``{"kind": "theory_batch", "payload": {batch, file, sha256, n, instrument, modality}}``.

A sidecar rather than inline JSON: the loops are float arrays (``n x V``) that round-trip
exactly through ``.npz`` (not through JSON text), the batch folder keeps them anyway, and the
sha256 in the request pins the file, so a sidecar changed after posting is refused.

The loop takes the request between steps (:func:`record_batch`, through the
:class:`~coscope.campaign.sources.TheoryBatches` source), validates it against the
trace and the spec (one sentence on bad input; the refusal is recorded as an intervention
with ``payload["rejected"]`` and nothing else is written), then appends, per simulation, a
decision (policy ``theory-batch``; ``params`` = the request's ``theta``/``fidelity`` plus
``batch``, ``who``, ``batch_cost`` and ``batch_time`` ``[t_start, t_end]``) and its measurement
(``cost`` 0, untimed: ``t_start = t_end = 0``, as it ran on the batch's resources, not the
campaign's simulator), and hands both to the agent.

**Budget:** a batch pays for its simulations. Their cost is recorded in ``batch_cost`` of the
decision's params and of the request's intervention; the measurement's ``cost`` is ``0`` and
they are not counted against the campaign's ``max_measurements`` (:func:`campaign_measured`).

**No campaign running:** :func:`absorb_if_idle` takes the store's writer lock if it is free
(it never waits for it) and records the waiting batch requests itself; if a campaign holds
the lock, its loop takes them. Either way the trace has one writer at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from coscope.agents.protocols import Agent, RemembersParams
from coscope.campaign.theory_sidecar import (
    BATCH_POLICY,
    THEORY_BATCH,
    Simulation,
    TheoryBatchError,
    load_arrays,
    read_batch,
    rows_of,
)
from coscope.campaign.tracker import Tracker
from coscope.errors import StoreError
from coscope.types import Intervention, Measurement, Proposal

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ recording
def record_batch(
    item: Intervention,
    step: int,
    store: Any,
    spec: Any,
    *,
    agent: Agent | None = None,
    remembers: RemembersParams | None = None,
    tracker: Tracker | None = None,
    n_known: int = -1,
) -> int:
    """Validate and record one ``theory_batch`` request as of decision ``step``.

    Appends the request as an intervention (refused: with ``payload["rejected"]``, nothing
    else), then a decision and a measurement per simulation at steps ``step, step + 1, ...``,
    each handed to ``agent`` when given: its request params through ``remembers`` (the
    agent's :class:`~coscope.agents.protocols.RemembersParams` ability, required), then the
    measurement.

    Returns:
        The next decision step.
    """
    try:
        rows = read_batch(item.payload, store, spec)
        if agent is not None and remembers is None:
            raise TheoryBatchError("the campaign's agent does not learn from simulations.")
    except TheoryBatchError as exc:
        refused = replace(item, step=step, payload={**item.payload, "rejected": str(exc)})
        store.append_intervention(refused)
        if tracker is not None:
            tracker.log_intervention(refused)
        log.warning("theory batch refused: %s", exc)
        return step
    extra = {
        "steps": [step, step + len(rows) - 1],
        "batch_cost": sum(c for *_, c in rows),
        "n_known": n_known,
    }
    accepted = replace(item, step=step, payload={**item.payload, **extra})
    store.append_intervention(accepted)  # first: the redo record (complete_batches)
    if tracker is not None:
        tracker.log_intervention(accepted)
    for decision, measured in _append(store, accepted, rows, set(), set()):
        if tracker is not None:
            tracker.log_decision(decision)
        if agent is not None and remembers is not None:
            remembers.remember_params(decision.step, decision.params)
            agent.ingest_measurements([measured])
    return step + len(rows)


def _append(
    store: Any, item: Intervention, rows: list[Simulation], decided: set, measured: set
) -> Iterator[tuple[Proposal, Measurement]]:
    """Append the decision and measurement of each row not already in the trace; yields the
    pairs appended, at the steps the accepted ``item`` names."""
    first = int(item.payload["steps"][0])
    batch, n_known = item.payload.get("batch"), int(item.payload.get("n_known", -1))
    for k, (proposal, measurement, cost) in enumerate(rows):
        params = {**proposal.params, "batch": batch, "who": item.who, "batch_cost": cost}
        decision = replace(
            proposal, step=first + k, t_decided=time.time(), n_known=n_known, params=params
        )
        done = replace(measurement, step=first + k)
        if decision.step not in decided:
            store.append_decision(decision)
        if done.step not in measured:
            store.append_measurement(done)
            yield decision, done


def complete_batches(store: Any) -> int:
    """Finish recording a batch that a crash cut short; returns the measurements appended.

    The accepted intervention is appended before its batch's rows and names their steps, so it
    is a redo record: the rows missing after it are re-read from the sidecar (sha256 checked)
    and appended — never simulated again, never charged to the campaign. Only the last batch
    can be torn (nothing else is appended while one is recorded). Called when a writer opens
    the trace (the loop's restore, :func:`absorb_if_idle`) before pending decisions are
    re-issued. An unreadable sidecar leaves things as they are (resume then re-issues a
    pending batch decision to the simulator) and logs why.
    """
    items = [i for i in store.interventions() if i.kind == THEORY_BATCH]
    items = [i for i in items if "rejected" not in i.payload and "steps" in i.payload]
    if not items:
        return 0
    item = items[-1]
    first, last = (int(v) for v in item.payload["steps"])
    measured = store.measured_steps()
    if all(s in measured for s in range(first, last + 1)):
        return 0
    decided = {d.step for d in store.decisions() if d.step >= first}
    try:
        inst = str(item.payload["instrument"])
        rows = rows_of(load_arrays(item.payload), item.payload, store, inst)
    except TheoryBatchError as exc:
        log.warning("cannot complete theory batch %s: %s", item.payload.get("batch"), exc)
        return 0
    return len(list(_append(store, item, rows, decided, measured)))


def batch_steps(store: Any) -> set[int]:
    """Steps of the trace's decisions recorded from theory batches."""
    return {d.step for d in store.decisions() if d.policy == BATCH_POLICY}


def campaign_measured(store: Any, measurements: list[Measurement]) -> int:
    """Measurements the campaign paid for (theory-batch simulations are paid by the batch)."""
    paid_elsewhere = batch_steps(store)
    return sum(m.step not in paid_elsewhere for m in measurements)


def batch_summary(store: Any) -> dict[str, Any]:
    """Theory batches in the trace: recorded and refused requests, simulations, their cost."""
    items = [i for i in store.interventions() if i.kind == THEORY_BATCH]
    done = [i for i in items if "rejected" not in i.payload]
    return {
        "recorded": len(done),
        "refused": len(items) - len(done),
        "simulations": sum(int(i.payload.get("n", 0)) for i in done),
        "cost": float(sum(float(i.payload.get("batch_cost", 0.0)) for i in done)),
    }


def absorb_if_idle(store_path: str | Path) -> list[int] | None:
    """Record waiting batch requests if no campaign holds the trace's writer role.

    Takes the writer lock without waiting; returns ``None`` if a campaign holds it (its loop
    will take the requests), else the steps recorded (possibly none).
    """
    from coscope.campaign.inbox import Inbox
    from coscope.config import parse_spec
    from coscope.infra.compose import effective_campaign
    from coscope.storage import TraceStore

    try:
        store = TraceStore.open(store_path, mode="a")
    except StoreError as exc:
        if "already open for writing" in str(exc):  # a campaign runs: its loop takes them
            return None
        raise
    try:
        complete_batches(store)
        spec = parse_spec(effective_campaign(store))
        first = step = store.counts()["decisions"]
        n_known = campaign_measured(store, store.measurements())
        for item in Inbox(store_path).take(step, kinds={THEORY_BATCH}):
            step = record_batch(item, step, store, spec, n_known=n_known)
    finally:
        store.close()
    return list(range(first, step))
