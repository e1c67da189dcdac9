"""The campaign loop in plain Python and the executor protocol it runs on.

The Dask executor lives at the edge, :mod:`coscope.infra.executors`: importing this package
(or its loop) loads neither Prefect nor Dask.

Names are imported on first use, so that light modules of this package (the inbox, steering)
load without torch and Prefect (``coscope intervene`` starts in well under a second).
"""

from __future__ import annotations

from coscope.lazy import lazy_exports

_EXPORTS = {
    "CampaignContext": "context",
    "CampaignLoop": "loop",
    "Executor": "executors",
    "LocalExecutor": "executors",
    "LoopOutcome": "loop",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
