"""Agents: acquisition, selection, the GP agent and baselines (ingest / suggest / report)."""

from __future__ import annotations

from coscope.agents.acquisition import (
    build_acquisition,
    evaluate,
    get_policy,
    policy_names,
    register_policy,
    validate_policy,
)
from coscope.agents.agent import GPAgent, agent_policy_names, make_agent
from coscope.agents.base import AgentReport, GridAgent
from coscope.agents.baselines import RandomAgent, RasterAgent
from coscope.agents.dkl_agent import DKLAgent
from coscope.agents.selection import select
from coscope.agents.thompson import thompson_indices, thompson_scores

__all__ = [
    "AgentReport",
    "DKLAgent",
    "GPAgent",
    "GridAgent",
    "RandomAgent",
    "RasterAgent",
    "agent_policy_names",
    "build_acquisition",
    "evaluate",
    "get_policy",
    "make_agent",
    "policy_names",
    "register_policy",
    "select",
    "thompson_indices",
    "thompson_scores",
    "validate_policy",
]
