"""The ``campaign`` Prefect flow: wire from the trace, run the loop on Dask, finish.

The flow takes references only (a store path and a scheduler address); the spec stored in
the trace names everything else, so the same flow starts, resumes and is deployable.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from coscope.campaign import CampaignLoop
from coscope.flows.finish import finish_campaign
from coscope.infra.compose import instrument_references, mark_running, open_context
from coscope.infra.executors import DaskExecutor
from coscope.types import Proposal


def execute_campaign(
    store_path: str,
    client: Any,
    measure_via: Literal["dask", "prefect"] = "dask",
    *,
    in_flow: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the campaign stored at ``store_path`` on the Dask ``client``.

    Returns:
        The summary dict of :func:`finish_campaign`.
    """
    ctx, _ = open_context(store_path)
    mark_running(ctx.store)
    executor = DaskExecutor(
        client,
        instrument_references(ctx.spec),
        seed=ctx.spec.seed,
        time_scale=ctx.spec.time_scale,
        measure_via=measure_via,
        fit_via_prefect=in_flow,
    )
    loop = CampaignLoop(ctx, executor)
    if in_flow:  # a pause shows in the Prefect UI as a paused run waiting for typed input
        from coscope.flows.pause import PAUSE_ATTR, prefect_approver, prefect_pauser

        if ctx.store.get_attr(PAUSE_ATTR, None) is not None:  # a killed run's pause is over
            ctx.store.set_attr(PAUSE_ATTR, None)
        loop.pauser = prefect_pauser(ctx.store, loop.inbox)
        loop.approver = prefect_approver(
            ctx.store, loop.inbox, lambda: sorted(loop.gate.waiting.values(), key=_step)
        )
    try:
        outcome = loop.run()
    except BaseException:
        ctx.store.set_attr("status", "interrupted")
        ctx.store.close()
        ctx.tracker.finish("interrupted")
        raise
    return finish_campaign(ctx, outcome)


def _step(proposal: Proposal) -> int:
    return proposal.step


@flow(name="campaign", persist_result=False)
def campaign_flow(store_path: str, dask_address: str, measure_via: str = "dask") -> Any:
    """Prefect flow around :func:`execute_campaign`; connects to the Dask scheduler by address.

    An error inside ends the flow run as a Prefect ``Failed`` state carrying one sentence
    and the traceback (:func:`failed_summary`), so that Prefect logs no traceback on the
    user's terminal; the runner writes the traceback to the run folder.
    """
    from distributed import Client

    try:
        with Client(dask_address, timeout="20s") as client:
            return execute_campaign(store_path, client, measure_via)  # type: ignore[arg-type]
    except Exception as exc:
        from prefect.states import Failed

        summary = failed_summary(exc)
        return Failed(message=summary["reason"], data=summary)


def failed_summary(exc: Exception) -> dict[str, Any]:
    """``{status: "error", reason, user_error, traceback}`` of an error inside the flow."""
    import traceback

    from coscope.errors import CoscopeError

    user_error = isinstance(exc, CoscopeError)
    reason = " ".join((str(exc) if user_error else f"{type(exc).__name__}: {exc}").split())
    return {
        "status": "error",
        "reason": reason[:500],
        "user_error": user_error,
        "traceback": "".join(traceback.format_exception(exc)),
    }
