"""The Python API: create or open a campaign, ask for proposals, tell results (docs/python-api.md).

::

    import coscope

    with coscope.Campaign.create("examples/demo.yaml", run_dir="runs/mine") as campaign:
        for proposal in campaign.ask():
            campaign.tell(proposal, my_instrument(proposal))

``coscope.run(spec)`` runs a whole campaign as ``coscope run`` does.
"""

from __future__ import annotations

from coscope.api.checks import Proposals
from coscope.api.opening import SpecLike, as_spec, run
from coscope.api.session import Campaign

__all__ = ["Campaign", "Proposals", "SpecLike", "as_spec", "run"]
