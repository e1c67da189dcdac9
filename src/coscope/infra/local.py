"""A campaign run in this process on its own instruments: the shortest composition of a spec.

:func:`open_local` makes (or opens) the spec's trace and returns the plain
:class:`~coscope.campaign.CampaignLoop` measuring the spec's instruments in this process
(:class:`~coscope.campaign.LocalExecutor`, no Prefect, no Dask) — for benchmarks, studies and
tests that set the loop's hooks first; :func:`run_local` runs it to the end and hands back the
trace read-only. ``coscope run`` composes the same parts under Prefect (``flows/campaign.py``).
"""

from __future__ import annotations

from coscope.campaign import CampaignLoop, LocalExecutor, LoopOutcome
from coscope.config import CampaignSpec
from coscope.infra.compose import (
    check_spec_fits_sample,
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.instruments import Sample
from coscope.storage import TraceStore


def open_local(spec: CampaignSpec, *, track: bool = False) -> tuple[CampaignLoop, Sample]:
    """The loop of ``spec``'s campaign (its trace made, or opened to resume) and its sample.

    Args:
        spec: The campaign spec (paths as they are to be stored).
        track: Log to MLflow (the spec's tracking URI) as ``coscope run`` does.

    Raises:
        ConfigError: The spec does not fit its sample (one sentence).
    """
    sample = sample_from_spec(spec.sample, spec.seed)
    check_spec_fits_sample(spec, sample)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=track)
    return CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))), sample


def run_local(spec: CampaignSpec, *, track: bool = False) -> tuple[LoopOutcome, TraceStore]:
    """Run ``spec``'s campaign to its end here: its outcome and its trace, opened read-only."""
    loop, _ = open_local(spec, track=track)
    try:
        outcome = loop.run()
    finally:
        loop.ctx.store.close()
    return outcome, TraceStore.open(spec.resolved_store(), "r")
