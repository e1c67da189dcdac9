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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field

from coscope.campaign.inbox import Inbox

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


def prefect_pauser(store: Any, inbox: Inbox) -> Callable[[int], None]:
    """The loop's ``pauser``: pause the current flow run for typed input (see module doc)."""
    count = 0
    timeout = int(os.environ.get("COSCOPE_PAUSE_TIMEOUT_S", str(7 * 24 * 3600)))

    def pause(step: int) -> None:
        nonlocal count
        from prefect.context import FlowRunContext
        from prefect.flow_runs import pause_flow_run
        from prefect.settings import PREFECT_API_URL

        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            time.sleep(0.2)
            return
        count += 1
        run_id, url = str(context.flow_run.id), PREFECT_API_URL.value()
        store.set_attr(PAUSE_ATTR, {"flow_run_id": run_id, "api_url": url, "step": step})
        watcher = _InboxWatcher(inbox, run_id, url)
        try:
            if inbox.pending():  # a resume posted before the attribute was visible
                return
            log.warning("campaign paused: Prefect flow run %s waits for input", run_id)
            watcher.start()
            data = pause_flow_run(
                wait_for_input=SteerInput, timeout=timeout, poll_interval=1, key=f"pause-{count}"
            )
        finally:
            watcher.stop()
            store.set_attr(PAUSE_ATTR, None)
        for kind, payload in requests_from_input(data):
            inbox.post(kind, payload, why=data.note, who="prefect-ui")

    return pause


class _InboxWatcher:
    """While the flow run is paused, resume it as soon as a request lands in the inbox.

    It runs in the campaign's own process and uses that process's Prefect API URL (from the
    user's settings or the API it started), so no other process ever contacts an address
    read from a trace: ``coscope intervene`` only writes the inbox.
    """

    def __init__(self, inbox: Inbox, run_id: str, api_url: str | None, poll_s: float = 0.5):
        self.inbox, self.run_id, self.api_url, self.poll_s = inbox, run_id, api_url, poll_s
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

        while not self._stop.wait(self.poll_s):
            if not self.inbox.pending():
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
