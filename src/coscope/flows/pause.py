"""A paused campaign shows in the Prefect UI as a paused flow run waiting for typed input.

When the loop is paused (a ``pause`` intervention) and nothing is in flight, the campaign
flow calls :func:`prefect.flow_runs.pause_flow_run` with ``wait_for_input=SteerInput``: the
UI shows the run as *Paused* with a form of :class:`SteerInput`'s fields. What the scientist
types becomes interventions, posted to the campaign's inbox (``who = "prefect-ui"``, ``why``
= the note) and validated and recorded by the loop like any other. The flow run id and the
API URL are kept in the trace attribute ``prefect_pause`` while paused (for display only).
``coscope intervene STORE resume`` (or any other request) from another shell only writes the
inbox; the paused campaign watches its inbox and ends its own pause through its own Prefect
API (``_InboxWatcher``), so no process contacts an address read from a trace.

The pause timeout (``COSCOPE_PAUSE_TIMEOUT_S``, default 7 days) fails the flow run in Prefect
when it passes; the trace stays consistent and ``coscope resume`` continues (still paused).

Under the approval gate (``docs/approval.md``) a campaign whose only requests left wait for
approval pauses the same way, for an :class:`ApprovalInput` naming the waiting step: what the
scientist submits (approve, modify with row/col or params, reject with a reason) is posted to
the inbox as an ``approval`` request and validated and recorded by the loop like an answer
from ``coscope approve``. When the gate's timeout is due the watcher ends the pause itself,
so that the loop applies the timeout policy.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field

from coscope.campaign.approval import APPROVAL, describe_waiting
from coscope.campaign.inbox import Inbox
from coscope.types import Proposal

log = logging.getLogger(__name__)

PAUSE_ATTR = "prefect_pause"
"""Trace attribute holding ``{flow_run_id, api_url, step}`` while the flow run is paused."""


class SteerInput(RunInput):
    """The form a paused campaign shows in the Prefect UI.

    Attributes:
        action: ``resume`` the campaign or ``stop`` it.
        policy: New acquisition policy (``ei``, ``ucb``, ``maxvar`` …), empty to keep it.
        beta: UCB exploration weight (sets ``params.beta``), empty to keep it.
        scalarizer: New scalarizer name (its default parameters), empty to keep it.
        note: Why: recorded with every intervention this input makes.
        posted: Set by ``coscope intervene``: the action is already in the inbox.
    """

    action: Literal["resume", "stop"] = Field("resume", description="resume or stop the campaign")
    policy: str | None = Field(None, description="new policy (ei, ucb, maxvar …); empty: keep")
    beta: float | None = Field(None, description="UCB exploration weight; empty: keep")
    scalarizer: str | None = Field(None, description="new scalarizer name; empty: keep")
    note: str = Field("", description="why (recorded with every change)")
    posted: bool = Field(False, description="set by `coscope intervene` only")


def requests_from_input(data: SteerInput) -> list[tuple[str, dict[str, Any]]]:
    """The interventions a typed input asks for: changes first, then resume/stop."""
    out: list[tuple[str, dict[str, Any]]] = []
    policy: dict[str, Any] = {}
    if data.policy:
        policy["name"] = data.policy
    if data.beta is not None:
        policy["params"] = {"beta": float(data.beta)}
    if policy:
        out.append(("policy", policy))
    if data.scalarizer:
        out.append(("scalarizer", {"name": data.scalarizer}))
    if not data.posted:
        out.append((data.action, {}))
    return out


class ApprovalInput(RunInput):
    """The form a campaign shows in the Prefect UI while a proposal waits for approval.

    Attributes:
        step: The waiting step answered (the form starts with the first waiting one).
        action: ``approve`` (as proposed, or modified by row/col/params) or ``reject``.
        row: Measure at this row instead (with ``col``), empty to keep the location.
        col: Measure at this column instead (with ``row``).
        params: Request params instead of the agent's, a JSON object, empty to keep them.
        note: Why (the reason of a rejection); recorded with the answer.
        posted: Set by coscope when the pause ends without the form (an answer came from
            ``coscope approve``, or the gate's timeout is due).
    """

    step: int = Field(0, description="the waiting step answered")
    action: Literal["approve", "reject"] = Field("approve", description="approve or reject")
    row: int | None = Field(None, description="modify: measure at this row instead")
    col: int | None = Field(None, description="modify: measure at this column instead")
    params: str = Field("", description='modify: request params as JSON, e.g. {"dwell_s": 2}')
    note: str = Field("", description="why (recorded with the answer)")
    posted: bool = Field(False, description="set by coscope only")


def answer_from_input(data: ApprovalInput) -> dict[str, Any]:
    """The ``approval`` request a submitted :class:`ApprovalInput` asks for.

    Malformed params are passed on as they are: the loop refuses them with one sentence
    (recorded) and the proposal keeps waiting.
    """
    payload: dict[str, Any] = {"step": int(data.step), "action": data.action}
    if data.action == "reject":
        payload["reason"] = data.note
        return payload
    if data.row is not None or data.col is not None:
        payload["location"] = [data.row, data.col]
    if data.params.strip():
        try:
            payload["params"] = json.loads(data.params)
        except ValueError:
            payload["params"] = data.params
    return payload


def _pause_for_input(
    store: Any,
    inbox: Inbox,
    form: type[RunInput],
    key: str,
    attr: dict[str, Any],
    deadline_s: float | None = None,
) -> Any | None:
    """Pause the current flow run for ``form`` until it is submitted, a request lands in the
    inbox, or ``deadline_s`` seconds pass; the input (None: not in a flow run, or a request
    was already waiting)."""
    from prefect.context import FlowRunContext
    from prefect.flow_runs import pause_flow_run
    from prefect.settings import PREFECT_API_URL

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        time.sleep(0.2 if deadline_s is None else min(0.2, deadline_s))
        return None
    timeout = int(os.environ.get("COSCOPE_PAUSE_TIMEOUT_S", str(7 * 24 * 3600)))
    run_id, url = str(context.flow_run.id), PREFECT_API_URL.value()
    store.set_attr(PAUSE_ATTR, {"flow_run_id": run_id, "api_url": url, **attr})
    watcher = _InboxWatcher(inbox, run_id, url, deadline_s=deadline_s)
    try:
        if inbox.pending():  # a request posted before the attribute was visible
            return None
        log.warning("campaign paused: Prefect flow run %s waits for input", run_id)
        watcher.start()
        return pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=1, key=key)
    finally:
        watcher.stop()
        store.set_attr(PAUSE_ATTR, None)


def prefect_pauser(store: Any, inbox: Inbox) -> Callable[[int], None]:
    """The loop's ``pauser``: pause the current flow run for typed input (see module doc)."""
    count = 0

    def pause(step: int) -> None:
        nonlocal count
        count += 1
        data = _pause_for_input(store, inbox, SteerInput, f"pause-{count}", {"step": step})
        if data is None:
            return
        for kind, payload in requests_from_input(data):
            inbox.post(kind, payload, why=data.note, who="prefect-ui")

    return pause


def prefect_approver(
    store: Any, inbox: Inbox, waiting: Callable[[], list[Proposal]]
) -> Callable[[int, float | None], None]:
    """The loop's ``approver``: pause the flow run for an :class:`ApprovalInput` (module doc).

    Args:
        store: The campaign's trace (the pause is shown in its ``prefect_pause`` attribute).
        inbox: The campaign's inbox (answers go there).
        waiting: The proposals waiting for approval now, step order.
    """
    count = 0

    def approve(step: int, seconds_left: float | None) -> None:
        nonlocal count
        count += 1
        proposals = waiting()
        if not proposals:
            return
        description = "Waiting for approval:\n" + "\n".join(map(describe_waiting, proposals))
        form = ApprovalInput.with_initial_data(description=description, step=proposals[0].step)
        attr = {"step": step, "approval": [p.step for p in proposals]}
        data = _pause_for_input(store, inbox, form, f"approval-{count}", attr, seconds_left)
        if data is None or data.posted:
            return
        inbox.post(APPROVAL, answer_from_input(data), why=data.note, who="prefect-ui")

    return approve


class _InboxWatcher:
    """While the flow run is paused, resume it as soon as a request lands in the inbox.

    It runs in the campaign's own process and uses that process's Prefect API URL (from the
    user's settings or the API it started), so no other process ever contacts an address
    read from a trace: ``coscope intervene`` only writes the inbox.
    """

    def __init__(
        self,
        inbox: Inbox,
        run_id: str,
        api_url: str | None,
        poll_s: float = 0.5,
        deadline_s: float | None = None,
    ):
        self.inbox, self.run_id, self.api_url, self.poll_s = inbox, run_id, api_url, poll_s
        self.deadline_s = deadline_s
        """End the pause after this many seconds even without a request (None: never)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="coscope-pause", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        from uuid import UUID

        from prefect.exceptions import NotPausedError
        from prefect.flow_runs import resume_flow_run
        from prefect.settings import PREFECT_API_URL, temporary_settings

        started = time.monotonic()
        while not self._stop.wait(self.poll_s):
            due = self.deadline_s is not None and time.monotonic() - started >= self.deadline_s
            if not self.inbox.pending() and not due:
                continue
            try:
                with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                    resume_flow_run(UUID(self.run_id), run_input={"posted": True})
                return
            except NotPausedError:  # not paused yet (or any more): look again
                continue
            except Exception as exc:  # the pause then ends in the UI or at its timeout
                log.warning("could not end the Prefect pause (%s); resume it in the UI", exc)
                return
