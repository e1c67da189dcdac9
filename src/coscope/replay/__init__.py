"""Read a finished or running trace again: counterfactual replay and explainable retrace.

Both open the trace read-only and rebuild the agent from the settings in force at each
step (:mod:`coscope.campaign.steering`), so they honour every recorded intervention.
"""

from __future__ import annotations

from coscope.replay.counterfactual import Counterfactual, ReplayResult, replay
from coscope.replay.output import write_replay, write_retrace
from coscope.replay.retrace import RetraceResult, retrace

__all__ = [
    "Counterfactual",
    "ReplayResult",
    "RetraceResult",
    "replay",
    "retrace",
    "write_replay",
    "write_retrace",
]
