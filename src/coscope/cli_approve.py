"""``coscope approve | reject``: answer the decisions that wait under the approval gate.

``coscope approve STORE`` lists what waits (step, instrument, modality, location, price and
the agent's reason); ``coscope approve STORE --step N`` approves it, with ``--location R,C``
and/or ``--params key=value …`` as a modification; ``coscope reject STORE --step N --reason
…`` rejects it. See ``docs/approval.md``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from coscope.errors import ConfigError

COMMANDS = ("approve", "reject")


def add_parsers(sub: Any) -> None:
    """Add ``approve`` and ``reject`` to the ``coscope`` sub-parsers."""
    ap = sub.add_parser(
        "approve",
        help="list the proposals waiting for approval, or approve (or modify) one",
        description="Without --step: list what waits. With --step: approve it as it is, or "
        "modified by --location and/or --params.",
    )
    ap.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    ap.add_argument("--step", type=int, help="the waiting step to approve")
    ap.add_argument("--location", help="measure at ROW,COL instead (a candidate of the space)")
    ap.add_argument(
        "--params",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="request params instead of the agent's (values read as JSON), e.g. dwell_s=2",
    )
    ap.add_argument("--why", default="", help="note, recorded with the answer")
    rj = sub.add_parser("reject", help="reject a proposal waiting for approval")
    rj.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    rj.add_argument("--step", type=int, required=True, help="the waiting step to reject")
    rj.add_argument("--reason", default="", help="why, recorded with the answer")


def command(args: argparse.Namespace) -> int:
    """Run ``approve`` or ``reject``; CoscopeError propagates to :func:`coscope.cli.main`."""
    # zarr, only for the commands that read a trace (`coscope --help` stays light)
    from coscope.approve_requests import (
        describe_answer,
        parse_location,
        post_answer,
        stored_gate,
    )
    from coscope.campaign.approval import describe_waiting
    from coscope.report.status import _alive
    from coscope.steer_requests import parse_pairs
    from coscope.storage import TraceStore

    store = TraceStore.open(args.store, "r")
    if args.command == "approve" and args.step is None:
        if args.location or args.params:
            raise ConfigError("name the waiting step to modify: --step N.")
        spec, state = stored_gate(store)
        if not spec.approval.required and not state.waiting:
            print("the approval gate is off for this campaign (spec `approval.required`)")
        for proposal in state.waiting:
            print(describe_waiting(proposal))
        if spec.approval.required and not state.waiting:
            print("nothing waits for approval")
        return 0
    if args.command == "reject":
        payload: dict[str, Any] = {"step": args.step, "action": "reject", "reason": args.reason}
        why = args.reason
    else:
        payload = {"step": args.step, "action": "approve"}
        location = parse_location(args.location)
        if location is not None:
            payload["location"] = location
        if args.params:
            payload["params"] = parse_pairs(args.params, None)
        why = args.why
    path, answer = post_answer(args.store, payload, why=why)
    when = "the campaign applies it before its next decision"
    if store.get_attr("status") != "running" or _alive(store.get_attr("runner")) is False:
        when = f"the campaign is not running; it applies it on `coscope resume {args.store}`"
    print(
        f"posted step {args.step}: {describe_answer(answer)} ({path.name}); {when}", file=sys.stderr
    )
    return 0
