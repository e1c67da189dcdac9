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
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from coscope.campaign.adopt import RESTRICTING, facts_of, restrict, steer
from coscope.campaign.context import CampaignContext
from coscope.campaign.steering import (
    REFUSAL,
    REJECTED,
    CampaignFacts,
    InterventionError,
    Settings,
    apply,
    effective_spec,
    fold,
    intervention_kinds,
    refused_indices,
    validate,
)
from coscope.errors import CoscopeError
from coscope.types import Intervention, Measurement, Proposal

MODEL_KINDS = ("policy", "scalarizer", "vote")
"""Kinds whose change rebuilds the agent (which may fail, see :meth:`LiveSteering.start`)."""

log = logging.getLogger(__name__)


def campaign_facts(store: Any, spec: Any) -> CampaignFacts:
    """Validators' view of a stored campaign: grid, modalities, measured steps, and each
    modality's axis with a few stored signals (a new scalarizer is tried on them)."""
    from coscope.campaign.probe import probe_signals

    measurements = store.measurements()
    measured = {m.step: m.modality for m in measurements}
    axes = {name: info.axis for name, info in store.modalities.items()}
    signals = {
        name: tuple(probe_signals([m.signal for m in measurements if m.modality == name], axis))
        for name, axis in axes.items()
    }
    return facts_of(spec, store.sample_shape, measured, axes, signals)


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
        """Adopt what the trace's interventions say (before the agent is restored).

        Each recorded intervention is validated again against the campaign as it is now;
        one that no longer applies (recorded by an older version, or its scalarizer fails
        on the stored signals) is skipped and a :data:`REFUSAL` naming it is recorded, so
        that a campaign can always be continued.
        """
        ctx = self.ctx
        items = ctx.store.interventions()
        refused = refused_indices(items)
        facts = campaign_facts(ctx.store, self.base)
        settings, applied = Settings.from_spec(self.base), []
        for index, item in enumerate(items):
            if index in refused:
                continue
            if REJECTED not in item.payload and item.kind in intervention_kinds():
                try:
                    validate(item.kind, item.payload, settings, facts)
                except InterventionError as exc:
                    self._refuse(index, item, str(exc))
                    continue
                applied.append(index)
            settings = apply(settings, item)
        self.settings = replace(settings, stopped=False)
        while self.settings.model_key() != self._key:
            try:
                self._rebuild(ingest=False)
            except CoscopeError as exc:  # the agent cannot be built with the last change
                changing = [i for i in applied if items[i].kind in MODEL_KINDS]
                if not changing:
                    raise
                self._refuse(changing[-1], items[changing[-1]], str(exc))
                applied.remove(changing[-1])
                self.settings = stored_settings(ctx.store, self.base)
        ctx.spec = effective_spec(self.base, self.settings)
        restrict(ctx.abilities.steerable, self.settings)
        self._repriced = self.settings.costs != Settings.from_spec(self.base).costs

    def _refuse(self, index: int, item: Intervention, reason: str) -> None:
        """Record that the trace's intervention ``index`` no longer applies (it is skipped)."""
        ctx = self.ctx
        refusal = Intervention(
            kind=REFUSAL,
            payload={"refuses": index, "kind": item.kind, REJECTED: reason},
            step=ctx.store.counts()["decisions"],
            who="coscope",
            why=f"the {item.kind} intervention of step {item.step} no longer applies; skipped",
            t=time.time(),
        )
        log.warning("intervention %d (%s) skipped: %s", index, item.kind, reason)
        ctx.store.append_intervention(refusal)
        ctx.tracker.log_intervention(refusal)

    def take(self, requests: Iterable[Intervention], step: int, *, stale: bool = False) -> bool:
        """Validate, adopt and record requests as of decision ``step``; True if the agent
        changed.

        A request is adopted (the agent rebuilt, the stored signals re-scalarized) before it
        is recorded: one that fails there is recorded as rejected and changes nothing.

        Args:
            requests: Interventions taken from the inbox.
            step: The next decision step.
            stale: The requests arrived while no loop ran; a stale ``stop`` is not applied.
        """
        ctx, changed = self.ctx, False
        for item in requests:
            item = replace(item, step=step)
            if REJECTED in item.payload:  # refused by the inbox (unsigned): recorded as it is
                ctx.store.append_intervention(item)
                ctx.tracker.log_intervention(item)
                continue
            before = (self.settings, self._key, ctx.spec, ctx.agent, ctx.reward, ctx.truth_map)
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
                self.settings = apply(self.settings, item)
                adopted = self.adopt()
            except CoscopeError as exc:
                rebuilt = ctx.agent is not before[3]
                self.settings, self._key, ctx.spec, _, ctx.reward, ctx.truth_map = before
                ctx.use_agent(before[3])
                if not rebuilt:  # the old agent, as it was: restore its mask too
                    restrict(ctx.abilities.steerable, self.settings)
                item = replace(item, payload={**item.payload, REJECTED: str(exc)})
                log.warning("intervention %s rejected: %s", item.kind, exc)
                adopted = False
            ctx.store.append_intervention(item)
            ctx.tracker.log_intervention(item)
            if item.kind == "costs" and REJECTED not in item.payload:
                self._repriced = True
            changed = adopted or changed
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
