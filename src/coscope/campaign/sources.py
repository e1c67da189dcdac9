"""Measurements that reach a campaign from elsewhere: the :class:`MeasurementSource` protocol.

A source is polled between steps with the inbox requests of the kinds it takes (the rest go
to steering). It records what it brings — decisions and measurements, in the trace first, then
to the agent and tracker — and says which steps it paid for (they do not count against the
campaign's measurement budget). On restore it completes an intake a crash cut short.

:class:`TheoryBatches` is the one source today: simulations a scheduled theory batch ran on
its own resources (:mod:`coscope.campaign.theory_intake`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from coscope.campaign.context import CampaignContext
from coscope.campaign.theory_intake import (
    THEORY_BATCH,
    batch_steps,
    complete_batches,
    record_batch,
)
from coscope.types import Intervention


@runtime_checkable
class MeasurementSource(Protocol):
    """Brings measurements into a running campaign between steps."""

    kinds: frozenset[str]
    """Inbox request kinds it takes."""

    def recover(self) -> None:
        """Complete an intake a crash cut short (before pending decisions are re-issued)."""
        ...

    def paid_steps(self) -> set[int]:
        """Steps of the trace it recorded and paid for."""
        ...

    def take(self, item: Intervention, step: int, n_known: int) -> int:
        """Validate and record one request as of decision ``step``; returns the next step.

        Args:
            item: The request from the inbox.
            step: The next decision step.
            n_known: Measurements the campaign paid for so far.
        """
        ...


class TheoryBatches:
    """Theory-batch simulations as a source (see :mod:`coscope.campaign.theory_intake`)."""

    kinds = frozenset({THEORY_BATCH})

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx

    def recover(self) -> None:
        complete_batches(self.ctx.store)  # a batch cut short by a crash: redo from its sidecar

    def paid_steps(self) -> set[int]:
        return batch_steps(self.ctx.store)

    def take(self, item: Intervention, step: int, n_known: int) -> int:
        ctx = self.ctx
        return record_batch(
            item,
            step,
            ctx.store,
            ctx.spec,
            agent=ctx.agent,
            remembers=ctx.abilities.remembers_params,
            tracker=ctx.tracker,
            n_known=n_known,
        )
