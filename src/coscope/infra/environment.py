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
    # MLflow: the value "1" does not count for MLflow.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # No heartbeat thread: it adds ~1 s to every flow teardown.
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def prepare_environment(settings: Settings, run_dir: Path | None) -> None:
    """Set thread counts, offline switches and Prefect's home for this process and its children.

    Args:
        settings: Engine settings.
        run_dir: The campaign's run folder; Prefect's ephemeral database goes to
            ``<run_dir>/prefect`` unless ``settings.prefect_home`` or ``PREFECT_HOME`` is set.
    """
    threads = str(settings.torch_threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    for key, value in _OFFLINE.items():
        if value == "":
            os.environ.pop(key, None)
        else:
            os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", settings.log_level)
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        home = (
            Path(settings.prefect_home)
            if settings.prefect_home
            else (run_dir or Path("runs")) / "prefect"
        )
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # No artifact progress bars (registering the digital twin printed one over the display).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A tracking server that is down should fail in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings precede our error
    import torch

    torch.set_num_threads(settings.torch_threads)
