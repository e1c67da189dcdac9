"""Start-up of `coscope run` in a new run folder: time to the first decision, wall and CPU.

Each run is ``python -m coscope.cli run SPEC --quiet`` in a fresh interpreter on a new run
folder (a 12 x 12 film, one instrument, GP + EI, 4 measurements, no latency), with its own
private Prefect API (no ``PREFECT_API_URL``): the engines start as a user's first run does.
Two cases, ``--n`` runs each, alternating:

* **migrating**: an empty cache folder (``XDG_CACHE_HOME``), so the private API migrates a
  new Prefect database, as every run folder did before the database template;
* **from the template**: a cache holding the migrated database a first run left there.

The time to the first decision is when the trace first holds a decision (polled every
0.1 s); CPU is user + system of the run and every process it waited for (its Prefect API,
its Dask worker), from ``RUSAGE_CHILDREN``.

Usage: ``python benchmarks/run_startup.py [--n 3]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

SPEC = """
name: startup
seed: 2
sample: {{kind: synthetic_film, params: {{size: 12}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.0, cost: 1.0}}
policy: {{name: ei, n_initial: 2, fit_iterations: 20}}
budget: {{max_measurements: 4}}
dask_workers: 1
run_dir: {run_dir}
"""


def _decisions(store: Path) -> int:
    from coscope.storage import TraceStore

    try:
        return TraceStore.open(store, mode="r").counts()["decisions"]
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def one_run(folder: Path, cache: Path) -> dict[str, float]:
    """Run the spec once in ``folder`` with ``cache`` as XDG_CACHE_HOME."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(run_dir=folder / "run"))
    store = folder / "run" / "trace.zarr"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = float("nan")
    while proc.poll() is None:
        if math.isnan(first) and _decisions(store) > 0:
            first = time.perf_counter() - start
        time.sleep(0.1)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"coscope run failed ({proc.returncode}): {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"first": first, "wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="runs per case")
    args = parser.parse_args()
    load_start = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {"migrating": [], "from the template": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = root / "warm-cache"
        one_run(root / "warm-up", warm)  # leaves the template in the warm cache
        for i in range(args.n):
            for case in results:
                cache = root / f"cold-cache-{i}" if case == "migrating" else warm
                results[case].append(one_run(root / f"{case.replace(' ', '-')}-{i}", cache))
                print(case, {k: round(v, 2) for k, v in results[case][-1].items()}, flush=True)
    load_end = os.getloadavg()
    rows = [
        [
            case,
            len(runs),
            f"{_report.median([r['first'] for r in runs]):.1f}",
            f"{_report.median([r['wall'] for r in runs]):.1f}",
            f"{_report.median([r['cpu'] for r in runs]):.1f}",
        ]
        for case, runs in results.items()
    ]
    table = _report.table(
        ["private Prefect API database", "runs", "first decision s", "wall s", "CPU s"], rows
    )
    note = (
        "Each run: `coscope run` of a 4-measurement campaign (12 x 12 film, GP + EI, no "
        "latency) in a new run folder with its own private Prefect API and a one-worker "
        "LocalCluster; medians; CPU = the run and every process it waited for. Load average "
        f"at the start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, at "
        f"the end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}. *migrating*: "
        "the private API migrates a new Prefect database (every run folder before the "
        "template); *from the template*: it starts from the copy of a migrated database a "
        "first run kept in `~/.cache/coscope` (`coscope.infra.prefect_api`)."
    )
    _report.publish(
        "run_startup",
        "`coscope run` start-up in a new run folder (`benchmarks/run_startup.py`)",
        note,
        "",
        table,
    )


if __name__ == "__main__":
    main()
