"""``coscope intervene | replay | retrace | report``: steer a campaign, then explain it.

Parsers and handlers live here; :mod:`coscope.cli` adds them with one call. See
``docs/cli.md`` ("Steering a campaign") for examples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coscope.campaign.steering import intervention_kinds
from coscope.errors import ConfigError
from coscope.report.step_progress import StepLines

COMMANDS = ("intervene", "replay", "retrace", "report")


def add_parsers(sub: Any) -> None:
    """Add the steering commands to the ``coscope`` sub-parsers."""
    kinds = ", ".join(intervention_kinds())
    iv = sub.add_parser(
        "intervene",
        help="change a running campaign: policy, scalarizer, costs, seed points, exclude, "
        "pause/resume/stop, vote",
        description=f"Post an intervention to the campaign whose trace is STORE. Kinds: {kinds}.",
    )
    iv.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    iv.add_argument("kind", nargs="?", help=f"one of: {kinds}")
    iv.add_argument(
        "pairs",
        nargs="*",
        help="payload as key=value (values read as JSON), e.g. name=ucb 'params={\"beta\": 4}'",
    )
    iv.add_argument("--json", dest="payload_json", help="payload as one JSON object")
    iv.add_argument("--why", default="", help="reason, recorded with the intervention")
    iv.add_argument("--list", action="store_true", help="list the recorded interventions")

    rp = sub.add_parser(
        "replay", help="follow a recorded path with other settings (counterfactual), read-only"
    )
    rp.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    rp.add_argument("--scalarizer", help="scalarizer name (default: as recorded)")
    rp.add_argument("--params", help='scalarizer params as JSON, e.g. \'{"lo": 1, "hi": 2}\'')
    rp.add_argument("--policy", help="policy name, e.g. ucb (default: as recorded)")
    rp.add_argument("--policy-params", help="policy params as JSON, e.g. '{\"beta\": 4}'")
    rp.add_argument("--model", choices=("gp", "dkl"), help="surrogate (default: as recorded)")
    rp.add_argument("--out", help="folder for replay.csv, replay.json and curves.png")

    rt = sub.add_parser("retrace", help="explain each decision with the final model")
    rt.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    rt.add_argument("--out", help="folder for retrace.csv and PNGs (default <run>/retrace)")
    rt.add_argument("--top-k", type=int, default=5, help="runners-up per step (default 5)")
    rt.add_argument("--panels", type=int, default=6, help="steps drawn as panels (default 6)")

    rep = sub.add_parser("report", help="write an offline HTML report of a campaign")
    rep.add_argument("store", help="path of the campaign's trace (…/trace.zarr)")
    rep.add_argument(
        "--out", help="report folder (default <run>/report/html: the campaign's own maps stay)"
    )
    rep.add_argument(
        "--counterfactual",
        default="",
        help="comma-separated scalarizers to replay for the comparison (default: none)",
    )
    rep.add_argument("--no-retrace", action="store_true", help="leave out the retrace panels")
    for p in (rp, rt, rep):
        p.add_argument(
            "--allow-user-code",
            action="store_true",
            help="run user scalarizers ('package.module:function') the trace names; only for "
            "a trace you trust (default: refuse such a trace)",
        )


def command(args: argparse.Namespace) -> int:
    """Run one steering command; CoscopeError propagates to :func:`coscope.cli.main`."""
    if args.command != "intervene":  # readers: never run code the trace names unless allowed
        from coscope.storage import TraceStore
        from coscope.trust import require_trusted

        require_trusted(TraceStore.open(args.store, "r"), args.allow_user_code, args.command)
    return _HANDLERS[args.command](args)


def _intervene(args: argparse.Namespace) -> int:
    # zarr, only for the commands that read a trace (`coscope --help` stays at ~340 modules)
    from coscope.report.status import _alive
    from coscope.steer_requests import describe, parse_pairs, post_intervention
    from coscope.storage import TraceStore

    if args.list:
        for item in TraceStore.open(args.store, "r").interventions():
            print(describe(item))
        return 0
    if not args.kind:
        raise ConfigError("name the intervention kind, e.g. `coscope intervene STORE pause`.")
    payload = parse_pairs(args.pairs, args.payload_json)
    path, normalised = post_intervention(args.store, args.kind, payload, why=args.why)
    shown = json.dumps(normalised)
    when = "the campaign applies it before its next decision"
    trace = TraceStore.open(args.store, "r")
    if trace.get_attr("status") != "running" or _alive(trace.get_attr("runner")) is False:
        when = f"the campaign is not running; it applies it on `coscope resume {args.store}`"
    print(
        f"posted {args.kind} {shown if len(shown) < 200 else shown[:200] + '…'} "
        f"({path.name}); {when}",
        file=sys.stderr,
    )
    return 0


def _json_arg(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not valid JSON; quote it.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, e.g. '{{\"beta\": 4}}'.")
    return value


def _replay(args: argparse.Namespace) -> int:
    from coscope.replay import Counterfactual, replay, write_replay  # heavy: torch (models)

    what = Counterfactual(
        scalarizer=args.scalarizer,
        scalarizer_params=_json_arg(args.params, "--params"),
        policy=args.policy,
        policy_params=_json_arg(args.policy_params, "--policy-params"),
        model=args.model,
    )
    result = replay(args.store, what, on_step=StepLines())
    print(result.summary())
    if args.out:
        write_replay(result, Path(args.out))
        print(f"wrote {args.out}/replay.csv, replay.json, curves.png", file=sys.stderr)
    return 0


def _retrace(args: argparse.Namespace) -> int:
    from coscope.replay import retrace, write_retrace  # heavy: torch (models)

    result = retrace(args.store, top_k=args.top_k, on_step=StepLines())
    out = Path(args.out) if args.out else Path(args.store).parent / "retrace"
    write_retrace(result, out, panels=args.panels)
    print(result.summary())
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from coscope.report.html import write_html_report  # heavy: torch, matplotlib

    out = Path(args.out) if args.out else Path(args.store).parent / "report" / "html"
    scalarizers = [s.strip() for s in args.counterfactual.split(",") if s.strip()]
    page = write_html_report(
        args.store,
        out,
        counterfactual=scalarizers,
        with_retrace=not args.no_retrace,
        on_step=StepLines("report: "),
    )
    print(f"wrote {page} (offline: open it in any browser)", file=sys.stderr)
    return 0


_HANDLERS = {"intervene": _intervene, "replay": _replay, "retrace": _retrace, "report": _report}
