"""Which Dask cluster a campaign runs on: a LocalCluster by default, any scheduler to scale out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from coscope.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def dask_client(
    address: str | None, n_workers: int = 2, host: str = "127.0.0.1"
) -> Iterator[Client]:
    """Yield a ``distributed.Client``; start and stop a LocalCluster when no address is given.

    The LocalCluster runs ``n_workers`` worker processes with one thread each; their nannies
    set ``OMP_NUM_THREADS=1`` so torch in each worker uses one thread (two threads per process
    on this 2-core machine collapsed small-model fits 7-13x, STACK.md).

    Args:
        address: Scheduler address (``tcp://host:8786``) or ``None`` for a LocalCluster.
        n_workers: Worker processes of the LocalCluster.
        host: Interface the LocalCluster's scheduler, workers and dashboard listen on
            (loopback unless configured, ``COSCOPE_BIND_HOST``).
    """
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at '{address}' ({exc}); start it, or run "
                "(or resume) with --dask-address local for a local cluster."
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    logging.getLogger("distributed").setLevel(logging.ERROR)  # in-process scheduler and nannies
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host=host,
        dashboard_address=f"{host}:0",
        # workers log only CRITICAL: on Ctrl-C they get SIGINT with the campaign and their
        # heartbeat to the closing scheduler fails with an ERROR traceback (a task's own
        # error still reaches the campaign through its future)
        silence_logs=logging.CRITICAL,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
