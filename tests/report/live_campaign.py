"""A small real campaign driven step by step (the Python API), for the dashboard's tests."""

from __future__ import annotations

from pathlib import Path

import coscope
from coscope.config import CampaignSpec, parse_spec
from coscope.infra.compose import instruments_from_spec, sample_from_spec
from coscope.types import Proposal


def small_spec(tmp_path: Path, **changes) -> CampaignSpec:
    """A 12 x 12 synthetic film, one instrument, GP + EI, 40 measurements, no latency."""
    data = {
        "name": "live",
        "seed": 3,
        "sample": {"kind": "synthetic_film", "params": {"size": 12}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.0, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 30},
        "budget": {"max_measurements": 40},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return parse_spec(data)


class Stepper:
    """The campaign of ``spec``, measured by its own instrument as the caller asks."""

    def __init__(self, spec: CampaignSpec) -> None:
        self.spec = spec
        self.instrument = instruments_from_spec(spec, sample_from_spec(spec.sample, spec.seed))[
            "afm"
        ]
        self.campaign = coscope.Campaign.create(spec, track=False)
        self.store = spec.resolved_store()

    def ask(self, instrument: str | None = None) -> Proposal:
        """The next decision (recorded in the trace, not yet measured); naming the
        instrument decides for it even while a proposal of it waits for approval."""
        (proposal,) = self.campaign.ask(instrument)
        return proposal

    def tell(self, proposal: Proposal) -> None:
        self.campaign.tell(
            proposal, self.instrument.measure(self.campaign.request(proposal)).signal
        )

    def step(self, n: int) -> None:
        """Decide and measure ``n`` times."""
        for _ in range(n):
            self.tell(self.ask())

    def close(self) -> None:
        self.campaign.close()
