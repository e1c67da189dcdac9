"""``coscope serve``: register and serve the Prefect deployments of a campaign."""

from __future__ import annotations

import argparse
from typing import Any

from coscope.config import load_spec


def serve_parsers(sub: Any) -> None:
    """Add the ``serve`` command to the CLI's subparsers."""
    serve = sub.add_parser(
        "serve",
        help="register the campaign and a scheduled theory-batch flow with a Prefect server, "
        "and serve them",
    )
    serve.add_argument("spec", help="campaign spec (YAML) with a theory instrument")
    when = serve.add_mutually_exclusive_group()
    when.add_argument("--theory-interval", type=float, help="seconds between theory batches")
    when.add_argument("--theory-cron", help="cron schedule of theory batches, e.g. '*/10 * * * *'")
    serve.add_argument("--simulations", type=int, default=8, help="simulations per theory batch")
    serve.add_argument("--out", help="run folder (default: the spec's run_dir)")
    serve.add_argument(
        "--register-only",
        action="store_true",
        help="register the deployments and exit (serve them later or elsewhere)",
    )


def serve_command(args: argparse.Namespace) -> int:
    """Create the trace if needed, register both deployments, then serve until Ctrl-C."""
    # heavy: Prefect and Dask, only for `coscope serve`
    from coscope.infra.dask import dask_client
    from coscope.infra.deployments import (
        campaign_deployment,
        register,
        require_api_url,
        theory_deployment,
    )
    from coscope.infra.runner import absolute_paths, prepare_store

    spec = absolute_paths(load_spec(args.spec, {"run_dir": args.out} if args.out else None))
    url = require_api_url()
    theory = theory_deployment(
        spec,
        spec.resolved_store(),
        interval=args.theory_interval,
        cron=args.theory_cron,
        n_simulations=args.simulations,
    )
    store_path, _ = prepare_store(spec)
    if args.register_only:
        address = spec.dask_address or "tcp://127.0.0.1:8786"
        ids = register([campaign_deployment(spec, store_path, address), theory])
        print(
            f"registered {len(ids)} deployments with {url}: campaign/{spec.name}, "
            f"theory-batch/{spec.name}-theory"
        )
        return 0
    from prefect import serve  # heavy, as above

    with dask_client(spec.dask_address, spec.dask_workers) as client:
        scheduler = client.scheduler
        assert scheduler is not None  # a connected client holds its scheduler's rpc
        address = str(scheduler.address)
        campaign = campaign_deployment(spec, store_path, address)
        print(
            f"serving campaign/{spec.name} and theory-batch/{spec.name}-theory on {url} "
            "(Ctrl-C stops)"
        )
        serve(campaign, theory)
    return 0
