"""A paused campaign shows in the Prefect UI as a paused flow run waiting for typed input.

When the loop is paused (a ``pause`` intervention) and nothing is in flight, the campaign
flow calls :func:`prefect.flow_runs.pause_flow_run` with ``wait_for_input=SteerInput``: the
UI shows the run as *Paused* with a form of :class:`SteerInput`'s fields. What the scientist
types becomes interventions, posted to the campaign's inbox (``who = "prefect-ui"``, ``why``
= the note) and validated and recorded by the loop like any other. The flow run id and the
API URL are kept in the trace attribute ``prefect_pause`` while paused, so ``coscope
intervene STORE resume`` (or ``stop``) from another shell ends the pause through the Prefect
API (:func:`release_prefect_pause`).

The pause timeout (``COSCOPE_PAUSE_TIMEOUT_S``, default 7 days) fails the flow run in Prefect
when it passes; the trace stays consistent and ``coscope resume`` continues (still paused).
"""

from __future__ import annotations

import logging
import os
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
        run_id = str(context.flow_run.id)
        store.set_attr(
            PAUSE_ATTR, {"flow_run_id": run_id, "api_url": PREFECT_API_URL.value(), "step": step}
        )
        try:
            if inbox.pending():  # a resume posted before the attribute was visible
                return
            log.warning("campaign paused: Prefect flow run %s waits for input", run_id)
            data = pause_flow_run(
                wait_for_input=SteerInput, timeout=timeout, poll_interval=1, key=f"pause-{count}"
            )
        finally:
            store.set_attr(PAUSE_ATTR, None)
        for kind, payload in requests_from_input(data):
            inbox.post(kind, payload, why=data.note, who="prefect-ui")

    return pause


def release_prefect_pause(store: Any, action: str, why: str = "", wait_s: float = 10.0) -> bool:
    """End the Prefect pause of the campaign (after its request was posted); True if released.

    Waits up to ``wait_s`` for a pause that is being entered. Raises nothing when the
    campaign is not paused in Prefect; a Prefect API that cannot be reached is a
    :class:`~coscope.errors.ConfigError`.
    """
    from coscope.errors import ConfigError

    deadline = time.monotonic() + wait_s
    while True:
        attr = store.get_attr(PAUSE_ATTR)
        if not attr:
            return False
        try:
            _resume(attr, {"action": action, "note": why, "posted": True})
            return True
        except _NotPaused:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
        except Exception as exc:  # any client failure means the same to the user
            raise ConfigError(
                f"the request is posted, but the paused Prefect flow run {attr['flow_run_id']} "
                f"at {attr['api_url']} could not be resumed ({type(exc).__name__}); resume it "
                "in the Prefect UI."
            ) from None


class _NotPaused(Exception):
    pass


def _resume(attr: dict[str, Any], run_input: dict[str, Any]) -> None:
    from uuid import UUID

    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: attr["api_url"]}):
        try:
            resume_flow_run(UUID(attr["flow_run_id"]), run_input=run_input)
        except NotPausedError:
            raise _NotPaused() from None
