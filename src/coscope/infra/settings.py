"""Process settings, read once by the entry point from ``COSCOPE_*`` environment variables.

Campaign-specific choices live in the spec; these are about the machine and the engines.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Engine settings.

    Attributes:
        measure_via: ``dask`` submits each measurement as a plain Dask task from the flow
            (low overhead); ``prefect`` submits it as the ``measure`` Prefect task through the
            flow's DaskTaskRunner (every measurement visible in the Prefect UI,
            ~0.17 s more per measurement; docs/benchmarks.md).
        prefect_home: Folder for Prefect's ephemeral API database. Empty: ``<run_dir>/prefect``.
            Ignored when ``PREFECT_API_URL`` points at a running server.
        torch_threads: Torch/BLAS threads per process (flow process and each Dask worker).
        log_level: Level of coscope's and Prefect's loggers.
        bind_host: Interface every server coscope starts listens on (the local Dask
            scheduler, workers and dashboard); loopback unless set.
    """

    model_config = SettingsConfigDict(env_prefix="COSCOPE_", extra="ignore")

    measure_via: Literal["dask", "prefect"] = "dask"
    prefect_home: str = ""
    torch_threads: int = Field(1, ge=1, le=64)
    log_level: str = "WARNING"
    bind_host: str = "127.0.0.1"
