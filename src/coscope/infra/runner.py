"""Start or resume a campaign on the engines: store, Dask cluster, Prefect flow."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from coscope.config import CampaignSpec
from coscope.infra.compose import check_spec_fits_sample, create_or_open_store, sample_from_spec
from coscope.infra.dask import dask_client
from coscope.infra.settings import Settings
from coscope.infra.tracking import check_tracking_uri


@contextmanager
def polling(interval: float, callback: Callable[[], None] | None) -> Iterator[None]:
    """Call ``callback`` every ``interval`` seconds in a daemon thread while inside."""
    if callback is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                callback()
            except Exception:  # a display must never break a campaign
                pass

    thread = threading.Thread(target=loop, name="coscope-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        callback()


@contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Spawn child processes (Dask workers, the Prefect API) that ignore Ctrl-C.

    A terminal's Ctrl-C reaches the whole process group. Only this process should react
    (stop the loop, leave the trace consistent, shut the engines down in order); children
    inherit an ignored SIGINT, and Python keeps it ignored in a spawned interpreter.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def prefect_api(run_dir: Path) -> Iterator[Callable[[], str]]:
    """Provide the Prefect API URL the flow and the Dask workers share.

    With ``PREFECT_API_URL`` set (a running ``prefect server``), use it. Otherwise start a
    private ephemeral API (:class:`LocalPrefectAPI`, database in ``PREFECT_HOME``) and export
    its URL before the Dask workers are spawned. Its database migrations take ~10 s on a new
    run folder, so it starts while the cluster starts; call the yielded function to wait.
    """
    if os.environ.get("PREFECT_API_URL"):
        url = os.environ["PREFECT_API_URL"]
        yield lambda: url
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from coscope.infra.prefect_api import LocalPrefectAPI

    server = LocalPrefectAPI(run_dir / "prefect" / "server.log")
    server.spawn()
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    os.environ["PREFECT_API_URL"] = server.url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            yield lambda: server.wait_ready(timeout)
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _warm_worker(torch_threads: int) -> None:
    """Set the worker's torch threads; import what it needs before the first task."""
    import torch

    import coscope.infra.compose  # noqa: F401
    import coscope.tasks  # noqa: F401

    torch.set_num_threads(torch_threads)


def absolute_paths(spec: CampaignSpec) -> CampaignSpec:
    """``spec`` with its run folder and store made absolute (against this process's working
    folder), before they are stored in the trace and travel to a flow run or a worker that
    works elsewhere (a resume from another folder, a deployment's process)."""
    return spec.model_copy(
        update={
            "run_dir": str(spec.resolved_run_dir().resolve()),
            "store": str(spec.resolved_store().resolve()),
        }
    )


def prepare_store(spec: CampaignSpec) -> tuple[Path, bool]:
    """Validate the spec against its sample, then create or reopen its trace.

    Returns:
        ``(store path, resumed)``. Nothing is written when validation fails.
    """
    sample = sample_from_spec(spec.sample, spec.seed)
    check_spec_fits_sample(spec, sample)
    check_tracking_uri(spec.resolved_tracking_uri())
    store, resumed = create_or_open_store(spec, sample)
    store.close()  # the flow takes the single-writer lock next
    return store.path, resumed


def nothing_to_do(spec: CampaignSpec) -> str | None:
    """Why running ``spec`` would change nothing, or None: its store holds the same campaign,
    finished, with no decision pending and no request in its inbox (a resume of it would
    only rewrite the store's state; it is left byte-for-byte as it is)."""
    from coscope.campaign.inbox import Inbox
    from coscope.infra.compose import effective_campaign, normalised_campaign
    from coscope.storage import TraceStore

    path = spec.resolved_store()
    if not (path / "zarr.json").exists():
        return None
    store = TraceStore.open(path, mode="r")
    finished = store.get_attr("status") == "finished"
    stored = normalised_campaign(effective_campaign(store))
    same = {**stored, "store": None} == {**spec.to_json_dict(), "store": None}
    if not finished or not same:  # a changed budget (or anything else): run it
        return None
    if store.pending_decisions() or Inbox(path).pending():
        return None
    return str(store.get_attr("finished_reason") or "finished")


def run_campaign(
    spec: CampaignSpec,
    settings: Settings,
    *,
    on_poll: Callable[[], None] | None = None,
    on_phase: Callable[[str], None] = lambda what: None,
) -> dict[str, Any]:
    """Run (or resume) ``spec``'s campaign as the Prefect flow on a Dask cluster.

    Args:
        spec: Validated campaign spec.
        settings: Engine settings (measurement transport).
        on_poll: Called about once a second while the flow runs (progress display).
        on_phase: Told each start-up phase in a few words (the engines take seconds to start).
    """
    from prefect_dask import DaskTaskRunner

    from coscope.flows.campaign import campaign_flow

    store_path, _ = prepare_store(spec)
    with ExitStack() as engines:
        where = spec.dask_address or f"a local Dask cluster of {spec.dask_workers} workers"
        api = os.environ.get("PREFECT_API_URL") or "a private Prefect API"
        on_phase(f"starting engines: {api} and {where}")
        with children_ignore_sigint():
            api_ready = engines.enter_context(prefect_api(spec.resolved_run_dir()))
            client = engines.enter_context(
                dask_client(spec.dask_address, spec.dask_workers, settings.bind_host)
            )
        address = client.scheduler.address
        on_phase(f"Dask scheduler at {address}; {dashboard_note(client)}")
        on_phase("loading torch and coscope on the Dask workers")
        client.run(_warm_worker, settings.torch_threads)
        on_phase("waiting for the Prefect API (its database migrates on a new run folder)")
        api_url = api_ready()
        on_phase(f"Prefect API at {api_url}; running the campaign flow")
        flow = campaign_flow.with_options(task_runner=DaskTaskRunner(address=address))
        with polling(1.0, on_poll):
            state: Any = flow(str(store_path), address, settings.measure_via, return_state=True)
        summary = state.result(raise_on_failure=False)
        if not isinstance(summary, dict):  # the flow run crashed or was cancelled in Prefect
            summary = {"status": "error", "reason": f"the flow run ended {state.type.value}"}
            summary.update(user_error=False, traceback=str(state.message))
        if summary["status"] == "error":
            summary["log"] = str(write_error_log(spec.resolved_run_dir(), summary))
        return summary


def dashboard_note(client: Any) -> str:
    """Where the Dask dashboard is, or why there is none."""
    if importlib.util.find_spec("bokeh") is None:
        return "no Dask dashboard (bokeh is not installed)"
    try:
        link = str(client.dashboard_link or "")
    except (KeyError, AttributeError):  # the scheduler serves no dashboard
        link = ""
    return f"Dask dashboard {link}" if link else "no Dask dashboard"


def write_error_log(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Append the traceback of an error inside the flow to ``<run_dir>/coscope-error.log``."""
    import time

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "coscope-error.log"
    with path.open("a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}: {summary['reason']}\n")
        log.write(str(summary.get("traceback", "")) + "\n")
    return path
