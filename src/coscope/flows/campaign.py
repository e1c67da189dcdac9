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
        from coscope.flows.pause import prefect_pauser

        loop.pauser = prefect_pauser(ctx.store, loop.inbox)
    try:
        outcome = loop.run()
    except BaseException:
        ctx.store.set_attr("status", "interrupted")
        ctx.store.close()
        ctx.tracker.finish("interrupted")
        raise
    return finish_campaign(ctx, outcome)


@flow(name="campaign", persist_result=False)
def campaign_flow(store_path: str, dask_address: str, measure_via: str = "dask") -> dict[str, Any]:
    """Prefect flow around :func:`execute_campaign`; connects to the Dask scheduler by address."""
    from distributed import Client

    with Client(dask_address, timeout="20s") as client:
        return execute_campaign(store_path, client, measure_via)  # type: ignore[arg-type]
