"""Test-wide settings: one torch/BLAS thread, engines offline, a shared Prefect server for e2e."""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Tests that run a flow in-process start Prefect's ephemeral server: its 20 s default start
# timeout failed under load (test_queue_dask); waiting longer never changes an outcome.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.servers import free_port, wait_for_http  # noqa: E402

torch.set_num_threads(1)


def _datasets_folder() -> Path:
    """``$COSCOPE_DATASETS``, else ``../shared/datasets`` beside the checkout (as in CI)."""
    if os.environ.get("COSCOPE_DATASETS"):
        return Path(os.environ["COSCOPE_DATASETS"])
    return Path(__file__).resolve().parents[2] / "shared" / "datasets"


DATASETS = _datasets_folder()
UNUSED_PREFECT_SERVICES = (
    "CANCELLATION_CLEANUP",
    "DB_VACUUM",
    "EVENT_LOGGER",
    "FOREMAN",
    "LATE_RUNS",
    "SCHEDULER",
    "REPOSSESSOR",
    "CLEANUP_RECONCILER",
    "TRIGGERS",
)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server`` on loopback for the subprocess tests; yields its API URL."""
    from coscope.infra.prefect_api import database_template

    home = tmp_path_factory.mktemp("prefect-home")
    if database_template().is_file():  # migrated by an earlier private API of this version
        shutil.copyfile(database_template(), home / "prefect.db")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    # Only the services the tests use: task-run recording (task runs reach the database as
    # events), event persistence and pause expirations (approval timeouts). The others
    # (scheduler, late runs, foreman, triggers …) poll the database every few seconds, a
    # steady share of a core per test process for nothing here.
    for service in UNUSED_PREFECT_SERVICES:
        env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_for_http(f"{url}/health", proc, home / "server.log")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
