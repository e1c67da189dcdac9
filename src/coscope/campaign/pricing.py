"""The prices of a campaign's instruments, from its spec: what the agent is told and checked by.

One :class:`CampaignPrices` per campaign (the live loop) or per replayed path: for each
instrument of the spec it builds the base instrument once and its
:class:`~coscope.instruments.pricing.Pricing` under the costs in force (the spec's, or a
``costs`` intervention's), the same price model the instrument stack charges by. The
loop's budget checks (:meth:`floor`, :meth:`reference`) and the agent's price function
(:meth:`quote`) are all this one function of the request; replay builds it from the
recorded settings, so a counterfactual agent is told what the live one was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coscope.config import CampaignSpec, InstrumentSpec
from coscope.instruments import Instrument, Pricing, Sample
from coscope.instruments.pricing import CostModel
from coscope.instruments.registry import build_base, instrument_pricing
from coscope.spaces import Space
from coscope.types import Location


class CampaignPrices:
    """Price models of the instruments of ``spec`` on ``sample``.

    Args:
        spec: The campaign spec (instruments, their kinds, options, costs, travel).
        sample: The sample the instruments measure (its pixel pitch prices travel).
        space: The campaign's space (what a kind on a space is built on; None: the
            sample's unmasked space).
    """

    def __init__(self, spec: CampaignSpec, sample: Sample, space: Space | None = None) -> None:
        self.spec = spec
        self.sample = sample
        self.space = space
        self._bases: dict[str, Instrument] = {}
        self._pricings: dict[tuple[str, str], Pricing] = {}

    def entry(self, instrument: str) -> InstrumentSpec:
        """The spec entry of ``instrument`` (KeyError naming it when absent)."""
        for inst in self.spec.instruments:
            if inst.name == instrument:
                return inst
        raise KeyError(f"instrument {instrument!r} is not in this campaign")

    def pricing(self, instrument: str, cost: CostModel | None = None) -> Pricing:
        """The price model of ``instrument`` under ``cost`` (default: the spec's cost)."""
        inst = self.entry(instrument)
        model = inst.cost if cost is None else cost
        key = (instrument, repr(model))
        if key not in self._pricings:
            if instrument not in self._bases:
                self._bases[instrument] = build_base(
                    inst.name,
                    self.sample,
                    kind=inst.kind,
                    modalities=inst.modalities,
                    options=inst.options,
                    space=self.space,
                )
            self._pricings[key] = instrument_pricing(
                self._bases[instrument], self.sample, model, inst.travel_cost_per_um
            )
        return self._pricings[key]

    def adopt_bases(self, other: CampaignPrices) -> None:
        """Reuse the base instruments ``other`` built where their spec entries are unchanged
        (a ``costs`` intervention replaces the spec, not the instruments)."""
        for name, base in other._bases.items():
            mine = next((i for i in self.spec.instruments if i.name == name), None)
            theirs = other.entry(name)
            same = mine is not None and (mine.kind, mine.modalities, mine.options) == (
                theirs.kind,
                theirs.modalities,
                theirs.options,
            )
            if same:
                self._bases.setdefault(name, base)

    def floor(self, instrument: str, modalities: Sequence[str]) -> float:
        """A lower bound of the price of any request for ``modalities`` on ``instrument``."""
        return self.pricing(instrument).floor(modalities)

    def reference(self, instrument: str, modality: str) -> float:
        """The reference price of ``modality`` on ``instrument`` (or of its cheapest modality
        when it does not offer ``modality``): what one more request is reserved at."""
        pricing = self.pricing(instrument)
        if modality in pricing.modalities:
            return pricing.reference(modality)
        return min(pricing.reference(m) for m in pricing.modalities)

    def quote(
        self,
        instrument: str,
        modality: str,
        location: Location,
        params: Mapping[str, Any] | None,
        origin: Location | None,
        cost: CostModel | None = None,
    ) -> float:
        """The price of the request under ``cost`` (default: the spec's), the stage starting
        at ``origin`` unless ``params`` say where."""
        pricing = self.pricing(instrument, cost)
        return pricing.quote(instrument, modality, location, params, origin)
