"""A scripted voter standing in for the scientist (BOARS-style voting, docs/steering.md).

Run a campaign in one shell and this in another; it rates every ``--every``-th measured
loop good when its coercive field is at least ``--threshold`` (a deterministic physical rule)
and posts the vote with ``coscope intervene``'s own function, until the campaign ends::

    coscope run examples/voting.yaml &
    python examples/scripted_voter.py runs/example-voting/trace.zarr --prop coercive_field
"""

from __future__ import annotations

import argparse
import time

from coscope.campaign.voting import ScriptedVoter
from coscope.errors import CoscopeError
from coscope.steer_requests import post_intervention
from coscope.storage import TraceStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--prop", default="coercive_field", help="scalarizer of the rule")
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--every", type=int, default=3)
    args = parser.parse_args()
    voter = ScriptedVoter(prop=args.prop, threshold=args.threshold, every=args.every)
    seen: set[int] = set()
    while True:
        try:
            store = TraceStore.open(args.store, mode="r")
        except CoscopeError:
            time.sleep(0.5)  # not created yet
            continue
        modality = store.campaign["scalarizer"]["modality"]
        axis = store.modalities[modality].axis
        for m in store.measurements(modality):
            if m.step in seen:
                continue
            seen.add(m.step)
            vote = voter.vote(m.step, m.signal, axis)
            if vote is not None:
                post_intervention(args.store, "vote", vote, why=f"{args.prop} rule", who="voter")
                print(f"voted {vote['label']} on step {m.step}", flush=True)
        if store.get_attr("status") in ("finished", "stopped", "failed"):
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main()
