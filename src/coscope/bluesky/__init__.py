"""coscope inside Bluesky: a plan that runs a campaign with a facility's RunEngine and ophyd
devices (docs/bluesky.md).

Needs ``bluesky`` and ``ophyd``; nothing else in coscope imports this package.
"""

from __future__ import annotations

from coscope.bluesky.plan import coscope_plan, start_metadata
from coscope.bluesky.record import StepRecord
from coscope.bluesky.setup import Reader, Setup, check_setup
from coscope.bluesky.sim import SampleDetector
from coscope.bluesky.stage import StageMap

__all__ = [
    "Reader",
    "SampleDetector",
    "Setup",
    "StageMap",
    "StepRecord",
    "check_setup",
    "coscope_plan",
    "start_metadata",
]
