"""Soak: a long campaign with interventions every few seconds and periodic SIGKILL + resume.

``coscope run`` in a subprocess on the embedded defaults (Prefect's ephemeral API in the run
folder, a Dask LocalCluster with one worker process, MLflow sqlite, Zarr trace): a synthetic
film of 64 x 64 pixels, instant instrument (``time_scale: 0``), a model-free policy (random,
switched to raster and back by interventions) so the figures are the platform's, not a GP's;
the surrogate is refitted and the map error computed every ``metrics_every``
measurements. While it runs, this process
posts an intervention every ``--every`` seconds (cost changes, policy switches, must-measure
points, small excluded rectangles; exactly what ``coscope intervene`` posts) and kills the
campaign's process group with SIGKILL at seeded measurement counts, then resumes it with
``coscope resume``, until the budget is spent.

Reported (docs/benchmarks.md, section ``soak``):

- lost / duplicated steps in the trace (every step 0..budget-1 measured exactly once, no
  decision left pending) and in MLflow (the ``reward`` history holds each step exactly once);
- interventions posted / recorded (applied or refused with a reason) / lost;
- SQLite "database is locked" lines in every segment's output;
- memory: resident set size of the campaign process (and its Dask worker) sampled every
  second, per segment: after start-up and at the end, and the growth per 1000 measurements in
  the longest segment;
- per-step latency drift: the median interval between consecutive measurements (``t_end``)
  over the first and the last 200 measurements of the longest segment, and over the whole run.

Usage: ``python benchmarks/soak.py [--budget 3000] [--kills 4] [--every 3] [--seed 0]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

SIZE = 64
SPEC = """
name: soak
seed: {seed}
sample: {{kind: synthetic_film, params: {{size: {size}}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.0, cost: 1.0, noise: 0.02}}
policy: {{name: random, fit_iterations: 30, refit_every: {metrics_every}}}
budget: {{max_measurements: {budget}}}
metrics_every: {metrics_every}
time_scale: 0.0
dask_workers: 1
run_dir: {run_dir}
"""
LOCKED = re.compile(r"database is locked", re.IGNORECASE)


@dataclass
class Segment:
    """One ``coscope run|resume`` process: how it ended and what it used."""

    command: str
    start_measurements: int
    end_measurements: int = 0
    killed: bool = False
    exit_code: int | None = None
    rss_mib: list[tuple[float, int, float]] = field(default_factory=list)
    """(seconds since start, measurements, MiB of the campaign process + its children)."""
    locked_lines: int = 0
    log: str = ""


def _counts(store: Path) -> dict[str, int]:
    from coscope.storage import TraceStore

    try:
        return TraceStore.open(store, mode="r").counts()
    except Exception:  # not created yet, or a commit in progress
        return {"measurements": -1, "decisions": -1}


def _rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` and every process in its session (its Dask worker, its
    Prefect server), MiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def _requests(seed: int):
    """An endless seeded stream of (kind, payload) interventions."""
    import numpy as np

    rng = np.random.default_rng([seed, 77])
    k = 0
    while True:
        pick = k % 5
        if pick == 0:
            yield "costs", {"afm": round(float(rng.uniform(0.5, 2.0)), 2)}
        elif pick == 1:
            yield "policy", {"name": "raster" if (k // 5) % 2 == 0 else "random"}
        elif pick == 2:
            points = rng.integers(0, SIZE, size=(2, 2)).tolist()
            yield "seed_points", {"points": points}
        elif pick == 3:
            r, c = (int(v) for v in rng.integers(0, SIZE - 3, size=2))
            yield "exclude", {"rect": [r, c, r + 2, c + 2]}
        else:
            yield "include", {"rect": [0, 0, SIZE - 1, SIZE - 1]}
        k += 1


class Poster(threading.Thread):
    """Posts an intervention every ``every`` seconds while the campaign runs."""

    def __init__(self, store: Path, every: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.store, self.every, self.stream = store, every, _requests(seed)
        self.posted = 0
        self.refused_at_post: Counter[str] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        from coscope.errors import CoscopeError
        from coscope.steer_requests import post_intervention

        while not self.halt.wait(self.every):
            if _counts(self.store)["measurements"] < 1:
                continue  # the campaign has not started yet
            kind, payload = next(self.stream)
            try:
                post_intervention(self.store, kind, payload, why="soak", who="soak")
                self.posted += 1
            except CoscopeError as exc:  # validated against trace + inbox before posting
                self.refused_at_post[str(exc)[:60]] += 1


def _run_segment(
    command: str, target: Path, store: Path, env: dict[str, str], kill_at: int | None, log: Path
) -> Segment:
    start = max(_counts(store)["measurements"], 0)
    segment = Segment(command, start)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coscope.cli", command, str(target), "--quiet"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: we kill it and its workers together
        )
        t0 = time.time()
        last_sample = 0.0
        while proc.poll() is None:
            n = _counts(store)["measurements"]
            now = time.time()
            if now - last_sample >= 1.0:
                segment.rss_mib.append((now - t0, n, _rss_mib(proc.pid)))
                last_sample = now
            if kill_at is not None and n >= kill_at:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                segment.killed = True
                break
            if now - t0 > 3600:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit(f"segment {command} hung for an hour; see {log}")
            time.sleep(0.2)
        segment.exit_code = proc.returncode
    try:  # the rest of the session (Prefect server, Dask worker) goes with it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    segment.log = log.read_text(errors="replace")
    segment.locked_lines = len(LOCKED.findall(segment.log))
    segment.end_measurements = max(_counts(store)["measurements"], 0)
    return segment


def _mlflow_reward_steps(run_dir: Path, run_id: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    return [m.step for m in client.get_metric_history(run_id, "reward")]


def _rss_after_start(segment: Segment) -> float:
    """MiB at the first sample after the segment's first new measurement."""
    later = [m for _, n, m in segment.rss_mib if n > segment.start_measurements]
    return later[0] if later else float("nan")


def _intervals(segment: Segment, ends: dict[int, float]) -> list[float]:
    """Seconds between consecutive measurements' ends within one segment (step order)."""
    span = range(segment.start_measurements + 1, segment.end_measurements)
    return [ends[s] - ends[s - 1] for s in span if s in ends and s - 1 in ends]


def _rss_before_end(segment: Segment) -> float:
    """MiB at the last sample before the segment's last measurement (not its shutdown)."""
    earlier = [m for _, n, m in segment.rss_mib if n < segment.end_measurements]
    return earlier[-1] if earlier else float("nan")


def _growth_per_1000(segment: Segment) -> float:
    """MiB per 1000 measurements between the first sample after warm-up and the last."""
    samples = [
        s
        for s in segment.rss_mib
        if segment.start_measurements + 20 < s[1] < segment.end_measurements  # while measuring
    ]
    if len(samples) < 2 or samples[-1][1] == samples[0][1]:
        return float("nan")
    (_, n0, m0), (_, n1, m1) = samples[0], samples[-1]
    return (m1 - m0) / (n1 - n0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between interventions")
    parser.add_argument("--metrics-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import numpy as np

    from coscope.campaign.inbox import Inbox
    from coscope.storage import TraceStore

    rng = np.random.default_rng([args.seed, 5])
    kill_points = sorted(
        int(k) for k in rng.choice(np.arange(100, args.budget - 100), args.kills, replace=False)
    )
    load = [os.getloadavg()]
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        spec = Path(tmp) / "soak.yaml"
        spec.write_text(
            SPEC.format(
                seed=args.seed,
                size=SIZE,
                budget=args.budget,
                metrics_every=args.metrics_every,
                run_dir=run_dir,
            )
        )
        store = run_dir / "trace.zarr"
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect-home")}
        env.pop("PREFECT_API_URL", None)
        poster = Poster(store, args.every, args.seed)
        segments: list[Segment] = []
        plan: list[int | None] = [*kill_points, None]
        poster.start()
        for k, kill_at in enumerate(plan):
            command, target = ("run", spec) if k == 0 else ("resume", store)
            segment = _run_segment(command, target, store, env, kill_at, Path(tmp) / f"seg{k}.log")
            segments.append(segment)
            print(
                f"segment {k} ({command}): measurements {segment.start_measurements} → "
                f"{segment.end_measurements}, {'SIGKILL' if segment.killed else 'exit'} "
                f"{segment.exit_code}",
                file=sys.stderr,
            )
            if not segment.killed and segment.exit_code != 0:
                raise SystemExit(f"segment {k} failed:\n{segment.log[-3000:]}")
        poster.halt.set()
        poster.join()
        wall = time.time() - t_start
        load.append(os.getloadavg())
        trace = TraceStore.open(store, mode="r")
        measurements = trace.measurements()
        steps = Counter(m.step for m in measurements)
        lost = [s for s in range(args.budget) if s not in steps]
        duplicated = sum(c - 1 for c in steps.values() if c > 1)
        pending = len(trace.pending_decisions())
        status = trace.get_attr("status")
        interventions = [i for i in trace.interventions() if i.who.startswith("soak")]
        waiting = len(Inbox(store).pending())  # posted after the campaign had ended
        refused = sum(1 for i in interventions if i.payload.get("rejected"))
        reward_steps = _mlflow_reward_steps(run_dir, trace.get_attr("mlflow_run_id"))
        mlflow_counts = Counter(reward_steps)
        mlflow_lost = sum(1 for m in measurements if m.step not in mlflow_counts)
        mlflow_dup = sum(c - 1 for c in mlflow_counts.values() if c > 1)
        ends = {m.step: m.t_end for m in measurements}
        # intervals within a segment only (a resume's start-up is not a step's latency)
        longest = max(segments, key=lambda s: s.end_measurements - s.start_measurements)
        within = _intervals(longest, ends)
        all_intervals = [dt for seg in segments for dt in _intervals(seg, ends)]
    ms = 1000.0
    first, last = within[:200], within[-200:]
    figures = _report.table(
        ("", "value"),
        [
            ("measurements (budget)", f"{len(measurements)} ({args.budget})"),
            ("status at the end", status),
            ("segments (SIGKILLs at measurement counts)", f"{len(segments)} ({kill_points})"),
            ("wall time (s)", f"{wall:.0f}"),
            (
                "trace: steps lost / duplicated / decisions left pending",
                f"{len(lost)} / {duplicated} / {pending}",
            ),
            ("MLflow `reward`: steps lost / duplicated", f"{mlflow_lost} / {mlflow_dup}"),
            (
                "interventions posted / recorded (refused with a reason) / still in the inbox "
                "when the campaign ended / lost",
                f"{poster.posted} / {len(interventions)} ({refused}) / {waiting} / "
                f"{poster.posted - len(interventions) - waiting}",
            ),
            ("interventions refused at posting", str(sum(poster.refused_at_post.values()))),
            ("SQLite 'database is locked' lines", str(sum(s.locked_lines for s in segments))),
            (
                "step interval, whole run: median / p99 (ms)",
                f"{_report.median(all_intervals) * ms:.1f} / "
                f"{_report.percentile(all_intervals, 99) * ms:.1f}",
            ),
            (
                f"longest segment ({len(within) + 1} measurements): median interval, first 200 / "
                "last 200 (ms)",
                f"{_report.median(first) * ms:.1f} / {_report.median(last) * ms:.1f}",
            ),
        ],
    )
    memory = _report.table(
        (
            "segment",
            "measurements",
            "ended by",
            "RSS after start-up (MiB)",
            "RSS at the last measurement (MiB)",
            "growth (MiB / 1000 measurements)",
            "median step interval (ms)",
        ),
        [
            (
                f"{k} ({s.command})",
                f"{s.start_measurements} → {s.end_measurements}",
                "SIGKILL" if s.killed else f"exit {s.exit_code}",
                f"{_rss_after_start(s):.0f}",
                f"{_rss_before_end(s):.0f}",
                f"{_growth_per_1000(s):.1f}",
                f"{_report.median(_intervals(s, ends)) * 1000:.1f}",
            )
            for k, s in enumerate(segments)
        ],
    )
    loads = ", ".join(f"{a:.2f}" for a, _, _ in load)
    _report.publish(
        "soak",
        "Soak: a long campaign under interventions and SIGKILLs (`benchmarks/soak.py`)",
        f"`coscope run` then `coscope resume` in subprocesses on the embedded defaults (Prefect "
        f"ephemeral API, Dask LocalCluster with 1 worker process, MLflow sqlite, Zarr trace); "
        f"synthetic film {SIZE} x {SIZE}, instant instrument, model-free policy (random, "
        f"switched to raster and back by interventions), map error fitted every "
        f"{args.metrics_every} measurements; an intervention posted every {args.every:g} s "
        f"(costs, policy, seed_points, exclude, include, through `post_intervention`, what "
        f"`coscope intervene` runs); SIGKILL of the campaign's process group at "
        f"{args.kills} seeded measurement counts, each followed by `coscope resume`. "
        f"Seed {args.seed}. Load average (1/5/15 min) at start and end: {loads}.",
        "",
        figures,
        "",
        "Resident memory of the campaign process and its session (Dask worker, Prefect "
        "server), sampled every second:",
        "",
        memory,
        "",
        "RSS after start-up is the first sample after the segment's first new measurement. "
        "Intervals straddling a kill/resume are excluded from the latency figures (they are "
        'start-up, measured in docs/benchmarks.md, "Start-up").',
    )


if __name__ == "__main__":
    main()
