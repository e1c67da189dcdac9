"""``coscope check STORE [--repair] [--json]``: the trace's fsck (:mod:`coscope.storage.integrity`).

Exit status: 0 when the trace is intact (warnings may remain), 1 when it holds errors, 2 when
the path is not a trace at all. Checking only reads; ``--repair`` takes the writer lock and
fixes only what the digest chains prove (never deletes a committed row).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``coscope check`` to the ``coscope`` sub-parsers."""
    check = sub.add_parser(
        "check", help="check a trace's integrity (digests, counts, invariants); --repair fixes"
    )
    check.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    check.add_argument(
        "--repair",
        action="store_true",
        help="restore rolled-back counts, tidy crash leftovers, write missing digests",
    )
    check.add_argument("--json", action="store_true", help="the report as JSON")


def command(args: argparse.Namespace) -> int:
    """Run ``coscope check``; prints the findings, returns the exit status."""
    from coscope.storage.integrity import check_trace  # zarr: only for commands that read a trace

    report = check_trace(args.store, repair=args.repair)
    if args.json:
        print(json.dumps(report.to_json_dict(), indent=2))
        return 0 if report.ok else 1
    if not report.findings:
        print(f"{report.path}: intact")
    for finding in report.findings:
        fix = f" [repair: {finding.repair}]" if finding.repair else " [cannot be repaired here]"
        if finding.severity == "warning" and finding.repair is None:
            fix = ""
        print(f"{finding.severity}: {finding.message}{fix if not report.repaired else ''}")
    for done in report.repaired:
        print(f"repaired: {done}")
    if report.repaired:
        again = check_trace(args.store)
        print(f"after repair: {'intact' if again.ok else 'still has errors'}")
        return 0 if again.ok else 1
    return 0 if report.ok else 1
