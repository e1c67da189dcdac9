"""Steering a running campaign: take requests, validate, record, apply between steps.

:class:`LiveSteering` is the loop's part that owns the effective settings. At start it folds
the interventions already in the trace (so resume honours them), then between steps it
takes the inbox's requests, validates each against the current settings, records it in the
trace — applied, or with ``payload["rejected"]`` naming why not — logs it to the tracker,
and adopts the new settings: a new policy, scalarizer or vote target rebuilds the agent and
re-scalarizes every stored observation from its full signal; exclusions and must-measure
points are set on the live agent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from coscope.campaign.adopt import RESTRICTING, facts_of, restrict, steer
from coscope.campaign.context import CampaignContext
from coscope.campaign.steering import (
    REJECTED,
    CampaignFacts,
    InterventionError,
    Settings,
    apply,
    effective_spec,
    fold,
    validate,
)
from coscope.types import Intervention, Measurement, Proposal

log = logging.getLogger(__name__)


def campaign_facts(store: Any, spec: Any) -> CampaignFacts:
    """Validators' view of a stored campaign (grid, modalities, measured steps)."""
    measured = {m.step: m.modality for m in store.measurements()}
    return facts_of(spec, store.sample_shape, measured)


def stored_settings(store: Any, spec: Any) -> Settings:
    """Effective settings after every intervention in the trace (stop not carried over)."""
    settings = fold(Settings.from_spec(spec), store.interventions())
    return replace(settings, stopped=False)


class LiveSteering:
    """Effective settings of the campaign the loop runs; see the module docstring."""

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx
        self.base = ctx.spec
        self.settings = Settings.from_spec(ctx.spec)
        self._key = self.settings.model_key()
        self._repriced = False

    def start(self) -> None:
        """Adopt what the trace's interventions say (before the agent is restored)."""
        self.settings = stored_settings(self.ctx.store, self.base)
        if self.settings.model_key() != self._key:
            self._rebuild(ingest=False)
        self.ctx.spec = effective_spec(self.base, self.settings)
        restrict(self.ctx.abilities.steerable, self.settings)
        self._repriced = self.settings.costs != Settings.from_spec(self.base).costs

    def take(self, requests: Iterable[Intervention], step: int, *, stale: bool = False) -> bool:
        """Validate, record and apply requests as of decision ``step``; True if the agent changed.

        Args:
            requests: Interventions taken from the inbox.
            step: The next decision step.
            stale: The requests arrived while no loop ran; a stale ``stop`` is not applied.
        """
        ctx, changed = self.ctx, False
        for item in requests:
            item = replace(item, step=step)
            try:
                if stale and item.kind == "stop":
                    note = "arrived while the campaign was not running; not applied"
                    item = replace(item, why=f"{item.why} ({note})".strip())
                    raise InterventionError(note)
                facts = campaign_facts(ctx.store, self.base)
                payload = validate(item.kind, item.payload, self.settings, facts)
                if item.kind in RESTRICTING and ctx.abilities.steerable is None:
                    raise InterventionError(
                        f"policy '{ctx.spec.policy.name}' does not take exclusions or "
                        "must-measure points; steer it with policy, costs or stop instead"
                    )
                item = replace(item, payload=payload)
            except InterventionError as exc:
                item = replace(item, payload={**item.payload, REJECTED: str(exc)})
                log.warning("intervention %s rejected: %s", item.kind, exc)
            ctx.store.append_intervention(item)
            ctx.tracker.log_intervention(item)
            self.settings = apply(self.settings, item)
            self._repriced = self._repriced or item.kind == "costs"
            changed = self.adopt() or changed
        return changed

    def adopt(self) -> bool:
        """Rebuild the agent if its settings changed; returns whether it did."""
        if self.settings.model_key() == self._key:
            self.ctx.spec = effective_spec(self.base, self.settings)  # costs, seed points
            restrict(self.ctx.abilities.steerable, self.settings)
            return False
        self._rebuild(ingest=True)
        return True

    def _rebuild(self, *, ingest: bool) -> None:
        ctx = self.ctx
        modality = self.settings.scalarizer["modality"]
        measurements = ctx.store.measurements()
        signals = {m.step: m.signal for m in measurements if m.modality == modality}
        steered = steer(self.base, ctx.sample, self.settings, signals)
        ctx.spec, ctx.reward = steered.spec, steered.reward
        ctx.use_agent(steered.agent)
        ctx.truth_map = steered.truth
        self._key = self.settings.model_key()
        if ingest:
            ctx.feed_agent(measurements)

    def priced(self, measurement: Measurement, proposal: Proposal) -> Measurement:
        """Charge the decision's expected cost once a ``costs`` intervention re-priced anything."""
        if not self._repriced or measurement.cost == proposal.expected_cost:
            return measurement
        return replace(measurement, cost=float(proposal.expected_cost))
