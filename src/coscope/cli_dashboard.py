"""``coscope dashboard STORE… [--port N] [--host H]``: watch and steer campaigns in a browser.

Checks every path is a readable trace (else one sentence, exit 2), makes a per-launch access
token, prints the page's URL (the token in it) and serves the page until Ctrl-C; FastAPI,
uvicorn and the map code (torch, matplotlib) load only here. See ``docs/dashboard.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coscope.errors import ConfigError

COMMANDS = ("dashboard",)


def add_parser(sub: Any) -> None:
    """Add ``coscope dashboard`` to the ``coscope`` sub-parsers."""
    dash = sub.add_parser(
        "dashboard",
        help="serve a live web page of running campaigns (maps, curves, decisions) that can "
        "steer them",
    )
    dash.add_argument("stores", nargs="+", metavar="STORE", help="campaign traces (…/trace.zarr)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    dash.add_argument(
        "--map-interval",
        type=float,
        default=5.0,
        help="seconds between two map refits of a campaign at least (default 5)",
    )
    dash.add_argument(
        "--poll", type=float, default=2.0, help="seconds between the page's updates (default 2)"
    )
    dash.add_argument(
        "--allow-user-code",
        action="store_true",
        help="run user scalarizers the traces name to draw their maps; only for traces you trust",
    )


def command(args: argparse.Namespace) -> int:
    """Run ``coscope dashboard`` until interrupted; CoscopeError propagates to the CLI."""
    from coscope.storage import TraceStore  # zarr: only for commands that read a trace

    stores = [Path(s) for s in args.stores]
    for store in stores:
        TraceStore.open(store, "r")  # StoreError: one sentence, exit 2
    if len(set(map(Path.resolve, stores))) != len(stores):
        raise ConfigError("a STORE is given twice: name each campaign's trace once.")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port: give 0..65535 (0: any free port).")
    if args.map_interval < 0 or args.poll <= 0:
        raise ConfigError("--map-interval must be >= 0 and --poll > 0 seconds.")
    from coscope.report.serve_dashboard import serve  # heavy: FastAPI, uvicorn, torch

    return serve(
        stores,
        host=args.host,
        port=args.port,
        map_interval_s=args.map_interval,
        poll_ms=int(args.poll * 1000),
        allow_user_code=args.allow_user_code,
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )
