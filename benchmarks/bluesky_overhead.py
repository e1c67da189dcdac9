"""What the RunEngine adds per measurement: a campaign through ``coscope_plan`` against the
same campaign through ask/tell.

Both paths measure the same noise-free ``synthetic_film`` with the same ``SampleDetector``
(two ``ophyd.sim.SynAxis`` motors, no latency) under the ``random`` policy, without MLflow:

(a) ask/tell: ``campaign.ask()``, move the motors (``motor.set(...).wait()``), trigger and read
    the detector, ``campaign.tell`` — the Python API as a script would drive it;
(b) ``RE(coscope_plan(...))``: the same, as Bluesky messages, with a document subscriber.

Timed per measurement, from the trace: the device section, ``t_end - t_start`` (from the
start of the move to the read; in (b) the RunEngine's messages), and the whole step, the time
between consecutive measurements' ``t_end`` (ask and tell included: the agent's GP fit, the
same in both paths, dominates it).

Usage: ``python benchmarks/bluesky_overhead.py [-n N]``
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


def _spec(run_dir: Path, n: int) -> dict:
    return {
        "name": "bluesky-overhead",
        "seed": 0,
        "sample": {"kind": "synthetic_film", "params": {"size": 50}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.0, "noise": 0.0}],
        "policy": {"name": "random"},
        "budget": {"max_measurements": n},
        "time_scale": 0.0,
        "run_dir": str(run_dir),
    }


def _beamline(campaign):
    from ophyd.sim import SynAxis

    from coscope.bluesky import SampleDetector, StageMap

    y, x = SynAxis(name="y"), SynAxis(name="x")
    detector = SampleDetector(
        sample=campaign.sample,
        modality="beps_loop",
        stage=StageMap(campaign.space),
        positioners=[y, x],
        name="det",
    )
    return y, x, detector


def _ask_tell(run_dir: Path, n: int) -> tuple[list[float], list[float]]:
    import coscope
    from coscope.bluesky import StageMap

    with coscope.Campaign.create(_spec(run_dir, n), track=False) as campaign:
        y, x, detector = _beamline(campaign)
        stage = StageMap(campaign.space)
        while proposals := campaign.ask():
            for proposal in proposals:
                t_start = time.time()
                for motor, value in zip((y, x), stage.setpoints(proposal.location), strict=True):
                    motor.set(value).wait()
                detector.trigger().wait()
                signal = detector.read()["det_spectrum"]["value"]
                campaign.tell(proposal, signal, t_start=t_start, t_end=time.time())
    return _steps(campaign.store_path)


def _plan(run_dir: Path, n: int) -> tuple[list[float], list[float]]:
    from bluesky import RunEngine

    import coscope
    from coscope.bluesky import coscope_plan

    documents: list[str] = []
    engine = RunEngine({})
    engine.subscribe(lambda name, doc: documents.append(name))
    with coscope.Campaign.create(_spec(run_dir, n), track=False) as campaign:
        y, x, detector = _beamline(campaign)
        engine(coscope_plan(campaign, [y, x], {"beps_loop": (detector, "det_spectrum")}))
    assert documents.count("event") == n
    return _steps(campaign.store_path)


def _steps(store: Path) -> tuple[list[float], list[float]]:
    """Device section and whole step per measurement, ms, after 5 warm-up measurements."""
    from coscope.storage import TraceStore

    measured = TraceStore.open(store, "r").measurements()
    device = [1e3 * (m.t_end - m.t_start) for m in measured[1:]]
    steps = [1e3 * (b.t_end - a.t_end) for a, b in zip(measured, measured[1:], strict=False)]
    return device[5:], steps[5:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="measurements per path (default 100)")
    args = parser.parse_args()
    load = [os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "(a) ask/tell, motors and detector called directly": _ask_tell(Path(tmp) / "a", args.n),
            "(b) `RE(coscope_plan(...))`": _plan(Path(tmp) / "b", args.n),
        }
    for name, (device, steps) in results.items():
        rows.append(
            (
                name,
                len(steps),
                f"{_report.median(device):.2f}",
                f"{_report.percentile(device, 90):.2f}",
                f"{_report.median(steps):.0f}",
                f"{_report.percentile(steps, 90):.0f}",
            )
        )
        print(rows[-1], flush=True)
    (a_device, _), (b_device, _) = results.values()
    added = _report.median(b_device) - _report.median(a_device)
    load.append(os.getloadavg())
    loads = " and ".join(" / ".join(f"{x:.1f}" for x in la) for la in load)
    _report.publish(
        "bluesky_overhead",
        "A campaign inside Bluesky: RunEngine overhead per measurement "
        "(`benchmarks/bluesky_overhead.py`)",
        f"{args.n} measurements per path of a noise-free 50 x 50 `synthetic_film` under the "
        "`random` policy, no MLflow, two `ophyd.sim.SynAxis` motors and a `SampleDetector`. "
        "Device section: from the start of the move to the read (`t_end - t_start` in the "
        "trace; in (b) the RunEngine's set/wait per motor, create, trigger and reads)"
        "; whole step: between consecutive measurements (ask and tell included: the "
        "agent's GP fit, the same in both paths, dominates it). After 5 warm-up "
        f"measurements. Load average at the start and the end: {loads} (other work shared "
        "the machine: read the times as orders of magnitude).",
        "",
        _report.table(
            (
                "path",
                "n",
                "device section median ms",
                "p90 ms",
                "whole step median ms",
                "p90 ms",
            ),
            rows,
        ),
        "",
        "What the RunEngine adds is the difference of the device sections, about "
        f"{added:.0f} ms per measurement here; a model fit or a real motor move dwarfs it.",
    )


if __name__ == "__main__":
    main()
