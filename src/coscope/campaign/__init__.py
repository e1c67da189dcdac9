"""The campaign loop in plain Python and the executors it runs on."""

from coscope.campaign.context import CampaignContext
from coscope.campaign.executors import DaskExecutor, Executor, LocalExecutor
from coscope.campaign.loop import CampaignLoop, LoopOutcome

__all__ = [
    "CampaignContext",
    "CampaignLoop",
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "LoopOutcome",
]
