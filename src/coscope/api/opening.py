"""Opening a campaign from Python: the spec in any form, the process's threads, a whole run.

Nothing here runs at import; :func:`use_threads` is called by
:meth:`coscope.api.Campaign.create` / :meth:`~coscope.api.Campaign.open` and :func:`run`.
Ask/tell needs no engine: Prefect's environment is set only by :func:`run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coscope.config import CampaignSpec, load_spec, parse_spec
from coscope.errors import ConfigError

SpecLike = CampaignSpec | dict[str, Any] | str | Path
"""A campaign spec: a validated :class:`~coscope.config.CampaignSpec`, a dict of its fields,
or the path of a YAML file."""


def as_spec(
    spec: SpecLike, *, store: str | Path | None = None, run_dir: str | Path | None = None
) -> CampaignSpec:
    """Validate ``spec`` (see :data:`SpecLike`); ``store`` and ``run_dir`` replace its own.

    Raises:
        ConfigError: The spec is invalid, or of a type that is none of these (one sentence).
    """
    overrides = {k: str(v) for k, v in {"store": store, "run_dir": run_dir}.items() if v}
    if isinstance(spec, CampaignSpec):
        return spec.model_copy(update=overrides) if overrides else spec
    if isinstance(spec, dict):
        return parse_spec({**spec, **overrides})
    if isinstance(spec, str | Path):
        return load_spec(spec, overrides)
    raise ConfigError(
        f"a campaign spec must be a CampaignSpec, a dict or the path of a YAML file, not "
        f"{type(spec).__name__}."
    )


def use_threads(threads: int | None) -> int:
    """Set this process up for a campaign: torch/BLAS threads, MLflow offline switches.

    Args:
        threads: Torch/BLAS threads, 1..64; ``None`` reads ``COSCOPE_TORCH_THREADS`` (default
            1: on a shared machine one thread per process is ~10x faster than torch's default).

    Returns:
        The thread count set.

    Raises:
        ConfigError: ``threads`` (or ``COSCOPE_TORCH_THREADS``) is out of range.
    """
    from pydantic import ValidationError

    from coscope.infra.environment import set_threads, tracking_environment
    from coscope.infra.settings import Settings

    try:
        settings = Settings() if threads is None else Settings(torch_threads=threads)
    except ValidationError:
        raise ConfigError(
            f"torch threads {threads if threads is not None else '(COSCOPE_TORCH_THREADS)'} "
            "must be a whole number from 1 to 64."
        ) from None
    tracking_environment()
    set_threads(settings.torch_threads)
    try:  # optional (scipy/sklearn's dependency): caps a BLAS that numpy has already loaded
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        threadpool_limits(settings.torch_threads)
    return settings.torch_threads


def run(
    spec: SpecLike,
    *,
    store: str | Path | None = None,
    run_dir: str | Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a whole campaign as ``coscope run`` does: Prefect flow, Dask cluster.

    Args:
        spec: The campaign (:data:`SpecLike`).
        store: Trace path replacing the spec's.
        run_dir: Run folder replacing the spec's.
        threads: Torch/BLAS threads per process (:func:`use_threads`).

    Returns:
        The campaign summary (status, reason, measurements, cost_spent, best_so_far, rmse,
        report, store, mlflow_run_id), as ``coscope run`` prints it.
    """
    from coscope.infra.environment import prepare_environment
    from coscope.infra.runner import run_campaign
    from coscope.infra.settings import Settings

    campaign = as_spec(spec, store=store, run_dir=run_dir)
    settings = Settings(torch_threads=use_threads(threads))
    prepare_environment(settings, campaign.resolved_run_dir())  # Prefect's home, as the CLI
    return run_campaign(campaign, settings)
