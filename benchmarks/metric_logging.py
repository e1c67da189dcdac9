"""Per-event MLflow logging on the campaign loop's thread: synchronous vs background writer.

For every event the loop logs one decision (``MlflowTracker.log_decision``: one or two
``log_batch`` commits to the sqlite tracking store, two for ``gain_per_cost``) and one step
(``log_step``). This script times what those calls cost *on the calling thread*, for
:data:`EVENTS` events spaced :data:`SPACING_S` apart (a measurement every 50 ms, as the
fast instrument at time_scale 0.1), in the same run:

* ``synchronous``: every batch committed by the caller (the loop before this change);
* ``background writer``: batches handed to :class:`coscope.infra.metric_writer.MetricWriter`
  (what the tracker does now), plus the time ``finish`` then needs to flush the rest.

Both write into fresh sqlite databases in a temporary folder; the number of stored points is
checked. Usage: ``python benchmarks/metric_logging.py [--events N]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

EVENTS = 60
SPACING_S = 0.05


def run(mode: str, events: int, folder: Path) -> dict:
    """Log ``events`` decisions and steps; per-event caller time, flush time, stored points."""
    from mlflow.tracking import MlflowClient

    from coscope.infra.tracking import MlflowTracker
    from coscope.types import Location, Proposal

    uri = f"sqlite:///{folder / f'{mode}.db'}"
    tracker = MlflowTracker(uri, mode, folder / f"{mode}-artifacts")
    run_id = tracker.start({"name": mode})
    if mode == "synchronous":  # the tracker as it was: every batch on the caller's thread
        tracker._metrics = _synchronous(tracker._metrics)  # noqa: SLF001
    per_event = []
    for step in range(events):
        proposal = Proposal(
            step=step,
            instrument="pfm",
            modality="pfm_loop",
            location=Location(step % 10, step // 10),
            policy="gain_per_cost",
            score=0.3,
            expected_cost=1.0,
            predicted_mean=0.1,
            predicted_std=0.2,
        )
        t0 = time.perf_counter()
        tracker.log_decision(proposal)
        tracker.log_step(step, {"reward": 0.1 * step, "best_so_far": 1.0, "cost_spent": step})
        per_event.append(time.perf_counter() - t0)
        time.sleep(SPACING_S)
    t0 = time.perf_counter()
    tracker.finish("finished")
    flush = time.perf_counter() - t0
    stored = len(MlflowClient(tracking_uri=uri).get_metric_history(run_id, "reward"))
    return {"mode": mode, "per_event": per_event, "flush": flush, "stored": stored}


def _synchronous(metrics):
    def call(step, values, prefix="", background=False):
        return metrics(step, values, prefix)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="coscope-metrics-"))
    rows = []
    for mode in ("synchronous", "background writer"):
        result = run(mode, args.events, folder)
        load = os.getloadavg()
        ms = [1000 * t for t in result["per_event"]]
        rows.append(
            [
                mode,
                f"{_report.median(ms):.1f}",
                f"{_report.percentile(ms, 90):.1f}",
                f"{max(ms):.1f}",
                f"{1000 * result['flush']:.0f}",
                f"{result['stored']}/{args.events}",
                " / ".join(f"{x:.1f}" for x in load),
            ]
        )
    text = [
        f"{args.events} events (one `log_decision` of a `gain_per_cost` decision + one "
        f"`log_step`) every {1000 * SPACING_S:.0f} ms into a fresh sqlite tracking store; time "
        "spent on the calling thread (the campaign loop's), per event. Same run, both modes; "
        "shared 2-core machine, other jobs running (load average when each mode finished).",
        _report.table(
            [
                "mode",
                "median ms",
                "p90 ms",
                "max ms",
                "flush at finish ms",
                "stored",
                "load 1/5/15 min",
            ],
            rows,
        ),
    ]
    text = [part + "\n" for part in text]
    _report.publish("metric_logging", "Per-event MLflow logging off the loop (issue 4)", *text)


if __name__ == "__main__":
    main()
