"""Start or resume a campaign on the engines: store, Dask cluster, Prefect flow."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coscope.config import CampaignSpec
from coscope.infra.compose import check_spec_fits_sample, create_or_open_store, sample_from_spec
from coscope.infra.dask import dask_client
from coscope.infra.settings import Settings


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
def prefect_api() -> Iterator[Callable[[], str]]:
    """Provide the Prefect API URL the flow and the Dask workers share.

    With ``PREFECT_API_URL`` set (a running ``prefect server``), use it. Otherwise start
    Prefect's own ephemeral API server once, here, on a free loopback port, and export its URL
    before the Dask workers are spawned: left alone, each worker process would start an
    ephemeral server of its own for its first task (10+ s each, measured). The server starts
    in the background (database migrations take ~10 s on a new run folder) while the cluster
    starts; call the yielded function to wait until it is ready.
    """
    if os.environ.get("PREFECT_API_URL"):
        url = os.environ["PREFECT_API_URL"]
        yield lambda: url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = SubprocessASGIServer(port)
    timeout = int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    errors: list[BaseException] = []

    def start() -> None:
        try:
            server.start(timeout=timeout)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    starter = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    starter.start()
    os.environ["PREFECT_API_URL"] = server.api_url

    def ready() -> str:
        starter.join()
        if errors:
            raise errors[0]
        return server.api_url

    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield ready
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        starter.join()
        server.stop()


def _warm_worker() -> None:
    """Import the heavy modules a worker needs before the first measurement or fit."""
    import coscope.infra.compose  # noqa: F401
    import coscope.tasks  # noqa: F401


def prepare_store(spec: CampaignSpec) -> tuple[Path, bool]:
    """Validate the spec against its sample, then create or reopen its trace.

    Returns:
        ``(store path, resumed)``. Nothing is written when validation fails.
    """
    sample = sample_from_spec(spec.sample, spec.seed)
    check_spec_fits_sample(spec, sample)
    store, resumed = create_or_open_store(spec, sample)
    store.close()  # the flow takes the single-writer lock next
    return store.path, resumed


def run_campaign(
    spec: CampaignSpec, settings: Settings, *, on_poll: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run (or resume) ``spec``'s campaign as the Prefect flow on a Dask cluster.

    Args:
        spec: Validated campaign spec.
        settings: Engine settings (measurement transport).
        on_poll: Called about twice a second while the flow runs (progress display).
    """
    from prefect_dask import DaskTaskRunner

    from coscope.flows.campaign import campaign_flow

    store_path, _ = prepare_store(spec)
    with prefect_api() as api_ready, dask_client(spec.dask_address, spec.dask_workers) as client:
        client.run(_warm_worker)
        api_ready()
        address = client.scheduler.address
        flow = campaign_flow.with_options(task_runner=DaskTaskRunner(address=address))
        with polling(1.0, on_poll):
            return flow(str(store_path), address, settings.measure_via)
