"""The ``campaign`` Prefect flow: wire from the trace, run the loop on Dask, finish.

The flow takes references only (a store path and a scheduler address); the spec stored in
the trace names everything else, so the same flow starts, resumes and is deployable.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run

from coscope.campaign import CampaignContext, CampaignLoop
from coscope.flows.finish import finish_campaign
from coscope.infra.compose import instrument_references, mark_running, open_context
from coscope.infra.executors import DaskExecutor
from coscope.report.campaign import write_campaign_maps
from coscope.storage import TraceStore
from coscope.types import Proposal

TABLE_ROWS = 500
"""Decisions shown in the flow run's table artifact (the latest)."""


class _InRun(logging.Filter):
    """Stamp records with the flow run's id, so records from any thread reach its logs."""

    def __init__(self, run_id: Any) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.flow_run_id = self.run_id
        return True


@contextmanager
def logs_in_flow_run() -> Iterator[None]:
    """coscope's log records (decisions, measurements, refusals) in the flow run's logs.

    INFO and above go to the Prefect API only; warnings also to stderr, as before.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        yield
        return
    logger = logging.getLogger("coscope")
    to_api = APILogHandler()
    to_api.setLevel(logging.INFO)
    to_api.addFilter(_InRun(context.flow_run.id))
    to_terminal = logging.StreamHandler(sys.stderr)
    to_terminal.setLevel(logging.WARNING)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(to_api)
    logger.addHandler(to_terminal)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(to_api)
        logger.removeHandler(to_terminal)
        logger.setLevel(level)
        logger.propagate = propagate


def artifact_key(campaign: str, what: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for ``campaign``'s ``what``."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{campaign}-{what}".lower()).strip("-")


def publish_artifacts(store_path: str, summary: dict[str, Any]) -> None:
    """The campaign's summary (markdown) and its latest decisions (a table) in the flow run."""
    with TraceStore.open(store_path, mode="r") as store:
        name = str(store.campaign.get("name", "campaign"))
        decisions = store.decisions()[-TABLE_ROWS:]
    rows = [
        {
            "step": d.step,
            "instrument": d.instrument,
            "modality": d.modality,
            "row": d.location.row,
            "col": d.location.col,
            "policy": d.policy,
            "expected_cost": d.expected_cost,
        }
        for d in decisions
    ]
    lines = [
        f"# {name}: {summary['status']}",
        "",
        f"* why: {summary['reason']}",
        f"* measurements: {summary['measurements']}, cost spent {summary['cost_spent']:g}",
        f"* best so far: {summary.get('best_so_far')}",
        f"* map RMSE vs truth: {summary.get('rmse')}",
        f"* trace: `{Path(store_path).resolve()}`",
        f"* report: `{summary.get('report')}`",
        f"* MLflow run: `{summary.get('mlflow_run_id')}`",
    ]
    create_markdown_artifact("\n".join(lines), key=artifact_key(name, "summary"))
    if rows:
        create_table_artifact(rows, key=artifact_key(name, "decisions"))


def checkpoint_maps(ctx: CampaignContext) -> Callable[[int], None]:
    """A callback that publishes the model's maps at a checkpoint as the flow run's markdown
    artifact ``<campaign>-maps`` (a new version of the key each time): ``maps.png`` of
    :func:`~coscope.report.campaign.write_campaign_maps` (prediction, uncertainty, the truth
    when known, measured points; axes in µm) inline as a ``data:image/png`` URI. Prefect 3
    has no image artifact; a failure to draw is logged and never stops the campaign."""

    def publish(version: int) -> None:
        n = ctx.store.counts()["measurements"]
        title = f"{ctx.spec.name}: model v{version} after {n} measurement{'s' * (n != 1)}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                png = write_campaign_maps(ctx, Path(tmp), title).read_bytes()
            image = base64.b64encode(png).decode("ascii")
            create_markdown_artifact(
                f"# {title}\n\n![maps of model v{version}](data:image/png;base64,{image})",
                key=artifact_key(ctx.spec.name, "maps"),
                description=f"prediction and uncertainty of model v{version}",
            )
        except Exception as exc:  # noqa: BLE001 - a picture must never stop a campaign
            logging.getLogger("coscope").warning("no checkpoint maps for v%d: %s", version, exc)

    return publish


def flow_run_name() -> str:
    """``<campaign>: <n> decisions`` from the trace the run was given (else ``campaign``)."""
    path = Path(str(flow_run.parameters.get("store_path", "")))
    try:
        with TraceStore.open(path, mode="r") as store:
            name = str(store.campaign.get("name", "campaign"))
            done = store.counts()["decisions"]
    except Exception:  # noqa: BLE001 - a name must never stop the run; the flow says why
        return "campaign"
    return f"{name}: from step {done}" if done else f"{name}: new"


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
        ctx.on_checkpoint = checkpoint_maps(ctx)  # and the maps of each checkpoint's model
        from coscope.flows.pause import PAUSE_ATTR, prefect_approver, prefect_pauser

        if ctx.store.get_attr(PAUSE_ATTR, None) is not None:  # a killed run's pause is over
            ctx.store.set_attr(PAUSE_ATTR, None)
        loop.pauser = prefect_pauser(ctx.store, loop.inbox)
        loop.approver = prefect_approver(
            ctx.store, loop.inbox, lambda: sorted(loop.gate.waiting.values(), key=_step)
        )
    try:
        with logs_in_flow_run():
            outcome = loop.run()
    except BaseException:
        ctx.store.set_attr("status", "interrupted")
        ctx.store.close()
        ctx.tracker.finish("interrupted")
        raise
    summary = finish_campaign(ctx, outcome)
    if in_flow:
        publish_artifacts(store_path, summary)
    return summary


def _step(proposal: Proposal) -> int:
    return proposal.step


@flow(name="campaign", persist_result=False, flow_run_name=flow_run_name)
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
