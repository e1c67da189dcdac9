"""Process environment for the engines, set by the entry point before they are imported.

Prefect and MLflow read their settings from the environment when first imported, so the
command line calls :func:`prepare_environment` first. Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from coscope.infra.settings import Settings

_OFFLINE = {
    # Prefect: no telemetry, no outside lookups (STACK.md: checked with strace).
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # No heartbeat thread: it adds ~1 s to every flow teardown.
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def set_threads(threads: int) -> None:
    """Torch/BLAS threads of this process and, through the environment, of its children."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    import torch

    torch.set_num_threads(threads)


def tracking_environment() -> None:
    """MLflow without telemetry, progress bars or minutes of retries (set if not set)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # "1" does not count for MLflow
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # No artifact progress bars (registering the digital twin printed one over the display).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A tracking server that is down should fail in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings precede our error


def prepare_environment(settings: Settings, run_dir: Path | None) -> None:
    """Set thread counts, offline switches and Prefect's home for this process and its children.

    Args:
        settings: Engine settings.
        run_dir: The campaign's run folder; Prefect's ephemeral database goes to
            ``<run_dir>/prefect`` unless ``settings.prefect_home`` or ``PREFECT_HOME`` is set.
    """
    for key, value in _OFFLINE.items():
        if value == "":
            os.environ.pop(key, None)
        else:
            os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", settings.log_level)
    # coscope's records (a line per decision and per measurement) reach the flow run's logs;
    # Prefect's own stay at PREFECT_LOGGING_LEVEL (WARNING: its INFO lines cost ~30 ms a task)
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "true")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        home = (
            Path(settings.prefect_home)
            if settings.prefect_home
            else (run_dir or Path("runs")) / "prefect"
        )
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())
    tracking_environment()
    set_threads(settings.torch_threads)
