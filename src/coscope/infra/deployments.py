"""Prefect deployments of a campaign: the campaign flow and a scheduled theory-batch flow.

``coscope serve`` builds both from a spec, registers them with the Prefect server named by
``PREFECT_API_URL`` and serves them (Prefect 3 ``flow.to_deployment`` + ``prefect.serve``):

* ``campaign/<name>`` — the campaign flow on the spec's trace (run on demand, e.g.
  ``prefect deployment run campaign/<name>``), measuring on the Dask cluster that ``serve``
  keeps up;
* ``theory-batch/<name>-theory`` — :func:`~coscope.flows.theory_batch.theory_batch_flow` on
  an interval (seconds) or a cron schedule, picking up the latest trace each time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from coscope.config import CampaignSpec
from coscope.errors import ConfigError


def require_api_url() -> str:
    """The Prefect server's API URL (``PREFECT_API_URL``); ConfigError if none is set."""
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value() or ""
    if not url:
        raise ConfigError(
            "coscope serve needs a running Prefect server: start one with `prefect server start "
            "--host 127.0.0.1` and set PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    return url


def _schedule(interval: float | None, cron: str | None) -> dict[str, Any]:
    if interval is not None and cron is not None:
        raise ConfigError(
            "give the theory batch either --theory-interval or --theory-cron, not both."
        )
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=cron)
        except ValueError:
            raise ConfigError(
                f"--theory-cron {cron!r} is not a cron expression: use five fields, "
                "e.g. '*/10 * * * *'."
            ) from None
        return {"cron": cron}
    seconds = 600.0 if interval is None else float(interval)
    if not seconds > 0:
        raise ConfigError(f"--theory-interval {interval!r} is invalid: give seconds > 0.")
    return {"interval": timedelta(seconds=seconds)}


def theory_deployment(
    spec: CampaignSpec,
    store_path: Path,
    *,
    interval: float | None = None,
    cron: str | None = None,
    n_simulations: int = 8,
) -> Any:
    """The scheduled theory-batch deployment of ``spec`` (default: every 600 s)."""
    from coscope.flows.theory_batch import theory_batch_flow

    if not any(i.kind.startswith("theory_") for i in spec.instruments):
        raise ConfigError(
            f"campaign {spec.name!r} has no theory instrument: a theory batch needs one of kind "
            "theory_lgd or theory_lattice and policy 'conavigate'."
        )
    if n_simulations < 1:
        raise ConfigError(f"--simulations {n_simulations} is invalid: ask for at least 1.")
    return theory_batch_flow.to_deployment(
        name=f"{spec.name}-theory",
        parameters={"store_path": str(store_path.resolve()), "n_simulations": n_simulations},
        description=f"Theory batch of {n_simulations} simulations + recalibration for {spec.name}",
        tags=["coscope", "theory"],
        **_schedule(interval, cron),
    )


def campaign_deployment(spec: CampaignSpec, store_path: Path, dask_address: str) -> Any:
    """The campaign flow of ``spec`` as a deployment (run on demand)."""
    from coscope.flows.campaign import campaign_flow

    return campaign_flow.to_deployment(
        name=spec.name,
        parameters={"store_path": str(store_path.resolve()), "dask_address": dask_address},
        description=f"Campaign {spec.name} on its trace",
        tags=["coscope", "campaign"],
    )


def register(deployments: list[Any]) -> list[str]:
    """Create or update ``deployments`` on the Prefect server; returns their ids."""
    return [str(d.apply()) for d in deployments]
