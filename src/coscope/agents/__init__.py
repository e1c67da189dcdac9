"""Agents: the one agent contract, acquisition, selection, the GP/DKL agents and baselines.

Names are imported on first use, so that the contract (:mod:`coscope.agents.protocols`) loads
without torch and botorch: control commands and spec validation stay fast
(``tests/test_light_imports.py``).
"""

from __future__ import annotations

from coscope.lazy import lazy_exports

_EXPORTS = {
    "Agent": "protocols",
    "AgentAbilities": "protocols",
    "AgentReport": "protocols",
    "Ask": "protocols",
    "ScalarTarget": "protocols",
    "abilities_of": "protocols",
    "build_acquisition": "acquisition",
    "evaluate": "acquisition",
    "get_policy": "acquisition",
    "policy_names": "acquisition",
    "register_policy": "acquisition",
    "validate_policy": "acquisition",
    "GPAgent": "agent",
    "agent_policy_names": "agent",
    "make_agent": "agent",
    "StructuredGPAgent": "agent",
    "GridAgent": "base",
    "ScheduledAgent": "base",
    "BoxAgent": "box_agent",
    "RandomAgent": "baselines",
    "RasterAgent": "baselines",
    "DKLAgent": "dkl_agent",
    "FidelityAgent": "fidelity_agent",
    "HypervolumeAgent": "hypervolume_agent",
    "NoveltyAgent": "novelty_agent",
    "Hypothesis": "hypotheses",
    "HypothesisAgent": "hypotheses",
    "select": "selection",
    "thompson_indices": "thompson",
    "thompson_scores": "thompson",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
