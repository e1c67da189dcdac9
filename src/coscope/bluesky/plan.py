"""A Bluesky plan that runs a coscope campaign: the agent decides, the RunEngine moves and reads.

::

    from bluesky import RunEngine
    import coscope
    from coscope.bluesky import coscope_plan

    RE = RunEngine({})
    campaign = coscope.Campaign.create("film.yaml")
    RE(coscope_plan(campaign, [stage_y, stage_x], {"beps_loop": (detector, "det_spectrum")}))
    campaign.finish()

One call of the plan is one Bluesky run (docs/bluesky.md). Per measurement:

1. ``checkpoint`` — a deferred pause (Ctrl-C once) stops here, between measurements;
2. the next pending proposal, else ``Campaign.ask()`` (trace first, as ``coscope run``);
3. ``mv`` every positioner to the proposal's set-points (rewindable: a resume moves again);
4. ``create`` → ``trigger`` and wait (a ``Triggerable`` reader; rewindable: an immediate
   pause, Ctrl-C twice, triggers again on resume) → not rewindable from here: ``read`` the
   reader and the positioners → ``Campaign.tell`` the signal (trace, agent, MLflow) → ``read``
   the :class:`~coscope.bluesky.record.StepRecord` → ``save``: one event, holding what was
   told.

A read that fails (a failed status, a timeout, a disconnected signal, a signal of the wrong
shape or with NaN) is recorded as coscope records a failed measurement
(``Campaign.fail``: a ``failed_measurement`` row, the proposal stays pending), the bundle is
dropped, the run is closed with ``exit_status="fail"`` and the error (an
:class:`~coscope.errors.InstrumentError`) is raised out of the RunEngine. RunEngine stop,
abort and halt leave what they interrupt pending. Running the plan again (same ``Campaign``
or re-opened) measures the pending proposals first: nothing lost, nothing measured twice.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import HasHints, Status
from bluesky.utils import FailedStatus, Msg, RequestStop, RunEngineControlException

from coscope.api import Campaign
from coscope.bluesky.record import StepRecord
from coscope.bluesky.setup import Reader, ReaderLike, Setup, check_setup, triggers
from coscope.errors import (
    BadMeasurement,
    ConfigError,
    CoscopeError,
    InstrumentDown,
    InstrumentError,
    InstrumentTimeout,
)
from coscope.types import Proposal

Plan = Generator[Msg, Any, dict[str, Any]]
"""A Bluesky plan returning the run's summary: ``measured`` and ``reason``."""


def coscope_plan(
    campaign: Campaign,
    positioners: Sequence[Any | None],
    readers: Mapping[str, ReaderLike],
    *,
    origin: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    max_measurements: int | None = None,
    wait_when_paused: float | None = 1.0,
    md: Mapping[str, Any] | None = None,
) -> Plan:
    """The plan measuring ``campaign``'s proposals with the facility's devices.

    Checks everything first (nothing is moved or opened before): raises a ConfigError here,
    when the plan is built, not when the RunEngine runs it.

    Args:
        campaign: An open :class:`coscope.Campaign` (``create`` or ``open``); the plan does
            not close it (``campaign.finish()`` or ``close()`` afterwards).
        positioners: One ophyd ``Movable`` per coordinate of ``campaign.space`` (a grid's
            ``(row, col) * pixel_size_um``: the row axis first); ``None`` for a coordinate
            every candidate shares (a line scan's row, a table's second coordinate).
        readers: Per modality the campaign may propose, ``(device, data_key)`` of a
            ``Readable`` whose key holds the ``(L,)`` signal after ``trigger``.
        origin: Set-point of coordinate 0 per positioner, positioner units (default 0).
        scale: Positioner units per ``campaign.space.units`` per positioner (default 1).
        max_measurements: Stop this run after that many measurements (the campaign goes
            on when the plan runs again); ``None``: until coscope stops.
        wait_when_paused: Paused by ``coscope intervene STORE pause``, ask again every so
            many seconds (a RunEngine ``sleep``: Ctrl-C still pauses the RunEngine) until a
            ``resume``, as ``coscope run`` waits; ``None``: end the run when paused.
        md: Extra start-document metadata (the ``coscope`` key is the plan's).

    Returns:
        A generator for ``RE(...)``; it returns ``{"measured": n, "reason": why}``.

    Raises:
        ConfigError: A device does not fit the campaign (one sentence, see
            :func:`~coscope.bluesky.setup.check_setup`), or ``max_measurements < 1``.
    """
    setup = check_setup(campaign, positioners, readers, origin, scale)
    if max_measurements is not None and max_measurements < 1:
        raise ConfigError(f"max_measurements={max_measurements} measures nothing: give >= 1.")
    if wait_when_paused is not None and not wait_when_paused > 0:
        raise ConfigError(
            f"wait_when_paused={wait_when_paused} is no interval: give seconds > 0, or None to "
            "end the run when the campaign is paused."
        )
    record = StepRecord(name="coscope")
    return _run(campaign, setup, record, dict(md or {}), Pacing(max_measurements, wait_when_paused))


def start_metadata(campaign: Campaign, setup: Setup, md: dict[str, Any]) -> dict[str, Any]:
    """The start document's metadata: the user's ``md`` plus ``coscope`` (store, campaign,
    seed, policy, scalarizer, instruments, space, MLflow run), motors, detectors, hints."""
    spec = campaign.spec
    status = campaign.status()
    first_stream = next(iter(setup.streams.values()))
    motors = [p.name for _, p in setup.driven]
    fields = [hinted_fields(p) for _, p in setup.driven]
    return {
        **md,
        "plan_name": "coscope_plan",
        "motors": motors,
        "detectors": sorted({r.device.name for r in setup.readers.values()}),
        "hints": {"dimensions": [[f, first_stream] for f in fields]},
        "coscope": {
            "store": str(campaign.store_path.resolve()),
            "campaign": spec.name,
            "seed": int(spec.seed),
            "policy": spec.policy.name,
            "scalarizer": spec.scalarizer.name,
            "target_modality": spec.scalarizer.modality,
            "instruments": {k: list(v) for k, v in campaign.offered.items()},
            "readers": {m: r.key for m, r in setup.readers.items()},
            "streams": dict(setup.streams),
            "space": {"kind": campaign.space.kind, "units": campaign.space.units},
            "stage": {"origin": setup.stage.origin.tolist(), "scale": setup.stage.scale.tolist()},
            "measured_before": int(status["measurements"]["total"]),
            "mlflow_run_id": status.get("mlflow_run_id") or "",
        },
    }


def hinted_fields(positioner: Any) -> list[str]:
    """The data keys a positioner hints at (its readback), else its name: the start
    document's ``hints.dimensions`` entry for it (what live plots put on the x axis)."""
    if isinstance(positioner, HasHints):
        hinted = list(positioner.hints.get("fields", []))
        if hinted:
            return hinted
    return [positioner.name]


@dataclass(frozen=True)
class Pacing:
    """How long one run goes on: ``limit`` measurements (``None``: until coscope stops), and
    every ``poll_s`` seconds a new ask while paused by an intervention (``None``: stop)."""

    limit: int | None
    poll_s: float | None


def _run(
    campaign: Campaign,
    setup: Setup,
    record: StepRecord,
    md: dict[str, Any],
    pacing: Pacing,
) -> Plan:
    """One Bluesky run around :func:`_measure_all`; its stop document says why it ended."""
    summary: dict[str, Any] = {"measured": 0, "reason": ""}
    yield from bps.open_run(start_metadata(campaign, setup, md))  # the campaign as it starts

    def on_error(exc: Exception) -> Generator[Msg, Any, None]:
        left = len(campaign.pending)
        if isinstance(exc, RunEngineControlException):
            why = (
                f"interrupted from the RunEngine after {summary['measured']} measurement(s), "
                f"{left} pending; run the plan again to continue."
            )
            status = "success" if isinstance(exc, RequestStop) else "abort"
            yield from bps.close_run(exit_status=status, reason=why)
        else:
            yield from bps.close_run(exit_status="fail", reason=" ".join(str(exc).split()))

    def on_success() -> Generator[Msg, Any, None]:
        yield from bps.close_run(exit_status="success", reason=summary["reason"])

    yield from bpp.contingency_wrapper(
        _measure_all(campaign, setup, record, pacing, summary),
        except_plan=on_error,
        else_plan=on_success,
    )
    return summary


def _measure_all(
    campaign: Campaign,
    setup: Setup,
    record: StepRecord,
    pacing: Pacing,
    summary: dict[str, Any],
) -> Generator[Msg, Any, None]:
    """Measure pending proposals, then asked ones, until coscope says why not or the limit."""
    limit = pacing.limit
    while limit is None or summary["measured"] < limit:
        yield from bps.checkpoint()  # a deferred pause stops here: nothing half done
        todo = campaign.pending or campaign.ask()
        if not todo and campaign.paused and pacing.poll_s is not None:
            yield from bps.sleep(pacing.poll_s)  # until `coscope intervene STORE resume`
            continue
        if not todo:
            summary["reason"] = campaign.reason
            return
        yield from _measure(campaign, setup, record, todo[0])
        summary["measured"] += 1
    summary["reason"] = (
        f"measured max_measurements={limit} in this run; run the plan again to continue."
    )


def _measure(
    campaign: Campaign, setup: Setup, record: StepRecord, proposal: Proposal
) -> Generator[Msg, Any, None]:
    """Move, trigger, read, tell, one event (see the module docstring)."""
    t_start = time.time()
    targets = setup.stage.setpoints(proposal.location)
    moves: list[Any] = []
    for axis, device in setup.driven:
        moves += [device, targets[axis]]
    if moves:
        yield from bps.mv(*moves)
    yield from _read_and_tell(campaign, setup, record, proposal, t_start)


def _read_and_tell(
    campaign: Campaign, setup: Setup, record: StepRecord, proposal: Proposal, t_start: float
) -> Generator[Msg, Any, None]:
    """The measurement's bundle: trigger, then read, tell coscope and emit the event (or a
    recorded failure and no event).

    Up to the end of the acquisition the RunEngine may rewind (an immediate pause triggers
    again on resume); from the first read on it may not, so what is told is what the event
    holds, and a resume never reads again.
    """
    reader = setup.readers.get(proposal.modality)
    if reader is None:  # an intervention made the agent propose another modality
        raise InstrumentDown(
            f"step {proposal.step} asks for '{proposal.modality}', which has no reader: run "
            f"the plan with a reader for it."
        )
    yield from bps.create(setup.streams[proposal.modality])
    try:
        if triggers(reader.device):
            yield from bps.trigger(reader.device, wait=True)
        told = _tell_and_save(campaign, setup, record, reader, proposal, t_start)
        yield from bpp.rewindable_wrapper(told, False)
    except RunEngineControlException:
        raise  # stop, abort, halt: the proposal stays pending, no failure is recorded
    except Exception as exc:
        yield from bps.drop()
        if isinstance(exc, CoscopeError) and not isinstance(exc, InstrumentError):
            raise  # the campaign's own refusal (a ProposalError, a StoreError), not the device's
        error = failure_of(exc, reader.device.name, proposal)
        campaign.fail(proposal, error)
        raise error from None


def _tell_and_save(
    campaign: Campaign,
    setup: Setup,
    record: StepRecord,
    reader: Reader,
    proposal: Proposal,
    t_start: float,
) -> Generator[Msg, Any, None]:
    """Read the detector and the motors, tell coscope (trace first), then read the
    :class:`StepRecord` into the bundle and emit the event."""
    reading = yield from bps.read(reader.device)
    for _, device in setup.driven:
        yield from bps.read(device)
    signal = _signal_of(reading, reader.key, proposal)
    cost = float(proposal.expected_cost)
    row = campaign.tell(proposal, signal, cost=cost, t_start=t_start, t_end=time.time())
    record.show(proposal, cost, row)
    yield from bps.read(record)
    yield from bps.save()


def _signal_of(reading: Any, key: str, proposal: Proposal) -> Any:
    """The value of ``key`` in a ``read()`` result, or an InstrumentError."""
    if not isinstance(reading, Mapping) or key not in reading:
        raise BadMeasurement(
            f"the read for step {proposal.step} returned no '{key}' (got "
            f"{', '.join(reading) if isinstance(reading, Mapping) else 'nothing'})."
        )
    return reading[key]["value"]


def failure_of(exc: Exception, device: str, proposal: Proposal) -> InstrumentError:
    """The coscope failure a device error means: a timeout is transient, a bad signal a bad
    measurement, anything else the instrument being down (docs/faults-and-security.md)."""
    if isinstance(exc, InstrumentError):
        if type(exc) is InstrumentError:  # Campaign.tell refused the signal's values
            return BadMeasurement(f"'{device}' returned a bad signal: {exc}")
        return exc
    exc = cause_of(exc)
    words = " ".join(str(exc).split())[:300] or type(exc).__name__
    what = f"reading '{device}' for step {proposal.step} failed ({type(exc).__name__}: {words})"
    if isinstance(exc, TimeoutError):
        return InstrumentTimeout(f"{what}; the proposal stays pending.")
    return InstrumentDown(f"{what}; the proposal stays pending.")


def cause_of(exc: Exception) -> Exception:
    """What made a device's status fail (the RunEngine raises ``FailedStatus(status)``)."""
    if isinstance(exc, FailedStatus) and exc.args and isinstance(exc.args[0], Status):
        inner = exc.args[0].exception()
        if isinstance(inner, Exception):
            return inner
    return exc
