"""Agents: acquisition, selection, the GP agent and baselines (ingest / suggest / report).

Names are imported on first use, so that the light modules of this package (the protocols)
load without torch and botorch: ``coscope status`` and ``coscope intervene`` read the
campaign's context without the models (``tests/test_light_imports.py``).
"""

from __future__ import annotations

from coscope.lazy import lazy_exports

_EXPORTS = {
    "AgentReport": "base",
    "DKLAgent": "dkl_agent",
    "GPAgent": "agent",
    "GridAgent": "base",
    "RandomAgent": "baselines",
    "RasterAgent": "baselines",
    "agent_policy_names": "agent",
    "build_acquisition": "acquisition",
    "evaluate": "acquisition",
    "get_policy": "acquisition",
    "make_agent": "agent",
    "policy_names": "acquisition",
    "register_policy": "acquisition",
    "select": "selection",
    "thompson_indices": "thompson",
    "thompson_scores": "thompson",
    "validate_policy": "acquisition",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
