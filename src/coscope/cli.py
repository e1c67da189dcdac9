"""The command line: ``coscope COMMAND`` (``coscope --help`` lists every command).

Errors a user can fix (a bad spec, a missing or foreign store) print one sentence and exit
with status 2 — never a traceback. Ctrl-C leaves the trace consistent and says how to resume.

Parsing and spec validation are light (argparse, pydantic); each handler imports what only
its command needs — zarr to read a store, Prefect/Dask/MLflow/torch to run or replay — so
``--help``, ``status`` and ``intervene`` start without torch (tests/test_light_imports.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from coscope import cli_approve, cli_check, cli_dashboard, cli_steer
from coscope.campaign.inbox import Inbox
from coscope.cli_serve import serve_command, serve_parsers
from coscope.config import CampaignSpec, load_spec, parse_spec
from coscope.errors import ConfigError, CoscopeError

EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141
"""As a shell reports a command ended by SIGPIPE (128 + 13): the output was cut short."""
EXIT_INTERRUPTED = 130


def _version() -> str:
    """The installed distribution's version (``unknown`` when run from a bare source tree)."""
    try:
        return metadata.version("coscope")
    except metadata.PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coscope",
        description="Autonomous experiment campaigns: a Bayesian agent decides what to measure "
        "next; you watch, steer and audit it (docs/cli.md).",
    )
    parser.add_argument("--version", action="version", version=f"coscope {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a demo campaign on a synthetic ferroelectric film")
    demo.add_argument("--budget", type=int, default=60, help="number of measurements (default 60)")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument(
        "--policy", default="ei", help="ei, ucb, maxvar, random or raster (default ei)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--size", type=int, default=50, help="film side in pixels (default 50)")
    demo.add_argument(
        "--time-scale", type=float, default=0.1, help="latency multiplier (default 0.1)"
    )

    run = sub.add_parser("run", help="run (or continue) the campaign a YAML spec describes")
    run.add_argument("spec", help="path of the campaign spec (YAML)")
    run.add_argument("--store", help="override the spec's store path")
    run.add_argument("--out", help="override the spec's run folder")

    resume = sub.add_parser("resume", help="continue an interrupted campaign from its store")
    resume.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    for p in (run, resume):
        _dask_address_option(p)

    status = sub.add_parser("status", help="print the state of a campaign from its store alone")
    status.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    status.add_argument("--json", action="store_true", help="stable JSON (see docs/cli.md)")

    for p in (demo, run, resume):
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    _dataset_parser(sub)
    _study_parsers(sub)
    serve_parsers(sub)  # coscope serve
    cli_steer.add_parsers(sub)  # coscope intervene | replay | retrace | report
    cli_check.add_parser(sub)  # coscope check
    cli_approve.add_parsers(sub)  # coscope approve | reject
    cli_dashboard.add_parser(sub)  # coscope dashboard
    return parser


def _dask_address_option(parser: argparse.ArgumentParser, stored: bool = True) -> None:
    parser.add_argument(
        "--dask-address",
        help="Dask scheduler to use instead of the spec's (tcp://host:8786), or 'local' for "
        "a LocalCluster" + ("; stored for later resumes" if stored else ""),
    )


def _study_parsers(sub: Any) -> None:
    """``coscope benchmark`` and ``coscope seeds`` (campaign studies on Dask, docs/studies.md)."""
    bench = sub.add_parser(
        "benchmark", help="run N seeds x policies of a spec's campaign in parallel on Dask"
    )
    bench.add_argument("spec", help="path of the campaign spec (YAML)")
    bench.add_argument("--seeds", type=int, default=3, help="seeds per policy (default 3)")
    bench.add_argument(
        "--policies",
        default=None,
        help="comma-separated [gp:|dkl:|structured:]policy entries, e.g. ei,dkl:ei,random "
        "(default: spec's)",
    )
    seeds = sub.add_parser(
        "seeds", help="one policy over N initial seed-point sets (optionally inject points)"
    )
    seeds.add_argument("spec", help="path of the campaign spec (YAML)")
    seeds.add_argument("--seed-sets", type=int, default=5, help="initial designs (default 5)")
    seeds.add_argument(
        "--initial", type=int, default=None, help="points per initial design (default n_initial)"
    )
    seeds.add_argument(
        "--inject-at", type=int, default=None, help="measurement after which to inject"
    )
    seeds.add_argument("--inject", type=int, default=None, help="random points to inject")
    seeds.add_argument(
        "--policy", default=None, help="[gp:|dkl:|structured:]policy (default: the spec's)"
    )
    for p in (bench, seeds):
        p.add_argument("--out", default=None, help="output folder (default runs/<name>-<study>)")
        p.add_argument(
            "--workers", type=int, default=2, help="local Dask worker processes (default 2)"
        )
        _dask_address_option(p, stored=False)


def _study_command(args: argparse.Namespace) -> int:
    # heavy: Dask, MLflow and torch, only for `coscope benchmark | seeds`
    from coscope.infra.environment import prepare_environment
    from coscope.infra.settings import Settings
    from coscope.studies import plan_benchmark, plan_seeds
    from coscope.studies.benchmark import policy_entry

    spec = _with_dask(load_spec(args.spec), args)
    out = Path(args.out) if args.out else Path("runs") / f"{spec.name}-{args.command}"
    if args.command == "benchmark":
        policies = (args.policies or policy_entry(spec.policy)).split(",")
        plan = plan_benchmark(
            spec, seeds=args.seeds, policies=policies, out=out, workers=args.workers
        )
    else:
        plan = plan_seeds(
            spec,
            seed_sets=args.seed_sets,
            out=out,
            initial=args.initial,
            inject_at=args.inject_at,
            inject=args.inject,
            policy=args.policy,
            workers=args.workers,
        )
    settings = Settings()
    prepare_environment(settings, out)
    from coscope.flows.study import run_study_flow  # Prefect reads its settings at import

    print(f"{plan.kind} study: {len(plan.jobs)} campaigns → {out}", file=sys.stderr)
    summary = run_study_flow(plan, lambda line: print(line, flush=True), settings.bind_host)
    print(
        f"done in {summary['seconds']:.0f} s: {out / 'curves.csv'}, {out / 'summary.md'}, "
        f"{out / 'plots'}; MLflow parent run {summary['parent_run_id']}",
        file=sys.stderr,
    )
    if summary["failed"]:
        print(
            f"error: {len(summary['failed'])} campaign(s) failed; see summary.md", file=sys.stderr
        )
        return EXIT_FAILED
    return 0


def _dataset_parser(sub: Any) -> None:
    """``coscope dataset import|info`` (ground-truth datasets, docs/datasets.md)."""
    dataset = sub.add_parser("dataset", help="import or describe a ground-truth dataset")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)
    imp = dsub.add_parser(
        "import", help="convert a BEPS/PFM HDF5 file, NumPy arrays, a CSV table or a mask"
    )
    imp.add_argument(
        "source", help=".h5 file, .npz (image, spectra, axis), .npy, folder, .csv or mask image"
    )
    imp.add_argument("--out", required=True, help="dataset folder to create (…/name.zarr)")
    imp.add_argument(
        "--format",
        default="auto",
        choices=("auto", "beps-h5", "pfm-h5", "arrays", "table", "mask"),
        help="reader (default auto: by extension and content)",
    )
    imp.add_argument("--name", help="dataset name (default: the source's file name)")
    imp.add_argument(
        "--signal-channels",
        default="",
        help="comma-separated structure channels to turn into one-point modalities",
    )
    imp.add_argument("--features", default="", help="table: comma-separated feature columns")
    imp.add_argument("--targets", default="", help="table: comma-separated target columns")
    imp.add_argument("--modality", default="spectrum", help="arrays: modality name")
    imp.add_argument("--axis-name", default="index", help="arrays: name of the spectral axis")
    imp.add_argument("--axis-units", default="", help="arrays: units of the spectral axis")
    imp.add_argument("--signal-units", default="a.u.", help="arrays: units of the spectra")
    imp.add_argument("--pixel-size-um", type=float, default=1.0, help="arrays: pixel pitch, µm")
    info = dsub.add_parser("info", help="describe a dataset: grid, channels, modalities, ranges")
    info.add_argument("path", help="dataset folder")


def _dataset_command(args: argparse.Namespace) -> int:
    # zarr, only for the commands that read a store (`--help` stays at ~340 modules)
    from coscope.storage.datasets import describe_dataset, load_dataset

    if args.dataset_command == "info":
        print(describe_dataset(load_dataset(args.path), args.path))
        return 0
    from coscope.storage.dataset_readers import import_dataset  # h5py, only to import

    options = {  # used by the arrays reader only
        "modality": args.modality,
        "axis_name": args.axis_name,
        "axis_units": args.axis_units,
        "signal_units": args.signal_units,
        "pixel_size_um": args.pixel_size_um,
    }
    channels = [c.strip() for c in args.signal_channels.split(",") if c.strip()]
    import_dataset(
        args.source,
        args.out,
        fmt=args.format,
        name=args.name,
        signal_channels=channels,
        features=args.features,
        targets=args.targets,
        **options,
    )
    print(describe_dataset(load_dataset(args.out), args.out))
    return 0


def _demo_spec(args: argparse.Namespace) -> CampaignSpec:
    return parse_spec(
        {
            "name": "demo",
            "seed": args.seed,
            "sample": {"kind": "synthetic_film", "params": {"size": args.size}},
            "instruments": [
                {
                    "name": "afm",
                    "modalities": ["beps_loop"],
                    "latency_s": 0.5,
                    "cost": 1.0,
                    "noise": 0.02,
                }
            ],
            "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
            "policy": {"name": args.policy, "n_initial": 5},
            "budget": {"max_measurements": args.budget},
            "time_scale": args.time_scale,
            "run_dir": args.out,
        }
    )


def _execute(spec: CampaignSpec, quiet: bool) -> int:
    """Run the campaign holding its run folder's lock: one coscope process per run folder."""
    from coscope.storage.lock import run_folder_lock

    with run_folder_lock(spec.resolved_run_dir(), spec.name):
        return _execute_locked(spec, quiet)


def _execute_locked(spec: CampaignSpec, quiet: bool) -> int:
    # heavy: Prefect, Dask, MLflow and torch (and rich's bar), only to run a campaign
    from coscope.infra.environment import prepare_environment
    from coscope.infra.runner import absolute_paths, nothing_to_do, prepare_store, run_campaign
    from coscope.infra.settings import Settings
    from coscope.report.progress import CampaignProgress

    spec = absolute_paths(spec)  # stored in the trace: a resume from elsewhere finds them
    done = nothing_to_do(spec)
    if done is not None:
        print(
            f"campaign '{spec.name}' is finished ({done}); nothing to do. Raise its budget "
            "with `coscope run SPEC` or steer it with `coscope intervene`.",
            file=sys.stderr,
        )
        return 0

    settings = Settings()
    prepare_environment(settings, spec.resolved_run_dir())

    store_path, resumed = prepare_store(spec)
    progress = CampaignProgress(store_path, spec, enabled=not quiet)
    verb = "resuming" if resumed else "starting"
    print(f"{verb} campaign '{spec.name}' → {store_path}", file=sys.stderr)
    try:
        with progress, _ctrl_c_stops(store_path):
            summary = run_campaign(
                spec, settings, on_poll=progress.refresh, on_phase=progress.phase
            )
    except BaseException as exc:
        if not _caused_by_ctrl_c(exc):
            raise
        print(
            f"\naborted: the trace is consistent; continue with `coscope resume {store_path}`",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if summary["status"] == "error":  # inside the flow; the traceback is in the run folder
        print(f"error: {summary['reason']} (details: {summary['log']})", file=sys.stderr)
        return EXIT_USER_ERROR if summary.get("user_error") else EXIT_FAILED
    progress.print_summary(summary)
    if summary["status"] == "stopped":
        print(f"continue with `coscope resume {store_path}`", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary["status"] == "failed":
        print(
            f"error: {summary['reason']}; fix it, then `coscope resume {store_path}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


@contextmanager
def _ctrl_c_stops(store_path: Path) -> Iterator[None]:
    """First Ctrl-C: ask the loop to stop after what is in flight; second: abort at once.

    SIGTERM aborts at once, as a second Ctrl-C: the trace is consistent, the MLflow metrics
    queued are written and the run marked killed (docs/trace.md, "After a crash").
    A stop request the loop did not take (Ctrl-C while the report was written, or an abort)
    is withdrawn when the run ends, so it cannot stop the next resume at once.
    """
    posted: list[Path] = []

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def first(signum: int, frame: object) -> None:
        posted.append(Inbox(store_path).post("stop", why="Ctrl-C"))
        print(
            "\nstopping after the measurements in flight (Ctrl-C again aborts now)", file=sys.stderr
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    previous_term = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        for request in posted:  # the run is over: a request still waiting is stale
            if request.exists():
                request.unlink()
                print("the Ctrl-C stop request was not needed and is withdrawn", file=sys.stderr)


def _caused_by_ctrl_c(exc: BaseException | None) -> bool:
    """True when ``exc`` is, or was raised while handling, a KeyboardInterrupt."""
    for _ in range(20):
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _command(args: argparse.Namespace) -> int:
    if args.command == "dataset":
        return _dataset_command(args)
    if args.command == "serve":
        return serve_command(args)
    if args.command in ("benchmark", "seeds"):
        return _study_command(args)
    if args.command in cli_steer.COMMANDS:
        return cli_steer.command(args)
    if args.command in cli_approve.COMMANDS:
        return cli_approve.command(args)
    if args.command == "check":
        return cli_check.command(args)
    if args.command in cli_dashboard.COMMANDS:
        return cli_dashboard.command(args)
    if args.command == "status":
        from coscope.report.status import campaign_status, format_status  # zarr: reads a store

        status = campaign_status(args.store)
        print(json.dumps(status, indent=2) if args.json else format_status(status))
        return 0
    if args.command == "demo":
        return _execute(_demo_spec(args), args.quiet)
    if args.command == "run":
        overrides = {k: v for k, v in {"store": args.store, "run_dir": args.out}.items() if v}
        return _execute(_with_dask(load_spec(args.spec, overrides), args), args.quiet)
    if args.command == "resume":
        from coscope.infra.compose import spec_of_store  # heavy: torch (the agents)

        path = Path(args.store)
        spec = spec_of_store(path)
        if spec.resolved_store().resolve() != path.resolve():
            spec = spec.model_copy(update={"store": str(path)})
        return _execute(_with_dask(spec, args), args.quiet)
    raise AssertionError(args.command)


def _with_dask(spec: CampaignSpec, args: argparse.Namespace) -> CampaignSpec:
    """``spec`` with ``--dask-address`` (``local``: a LocalCluster) in place of its own."""
    address = getattr(args, "dask_address", None)
    if address is None:
        return spec
    if address != "local" and not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(
            f"--dask-address {address!r} is not a scheduler address: give tcp://host:port, "
            "or 'local' for a LocalCluster."
        )
    return spec.model_copy(update={"dask_address": None if address == "local" else address})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coscope`` command."""
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except CoscopeError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, always
        return EXIT_USER_ERROR
    except BrokenPipeError:  # `coscope status --json | head`: the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
