"""Per-measurement overhead on a real Dask cluster against the LocalCluster, in one run.

The real cluster is what docs/scale-out.md starts by hand: a ``dask scheduler`` process and
two ``dask worker`` processes (``--nthreads 1``), on loopback, in a working folder of their
own. The baseline is the campaign's default, ``dask_client(None, 2)``: a LocalCluster of two
one-thread worker processes. On each, after the workers are warmed (:func:`_warm_worker`,
as ``run_campaign`` does), ``n`` sequential measurements of a zero-latency, noise-free
instrument go through ``DaskExecutor(measure_via="dask")`` (submit, wait, result: a full
round trip, :mod:`overhead`); the overhead is the median (p90) round trip minus the direct
``instrument.measure`` call's, timed in the same repeat. The repeats alternate which
cluster goes first, so a drift of the machine's load touches both.

Usage: ``python benchmarks/cluster_overhead.py [--repeats 3] [-n 200]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

import overhead  # noqa: E402

sys.path.insert(0, str(_report.REPO))
from tests.servers import dask_processes, engine_env  # noqa: E402


def _uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return " ".join(done.stdout.split())


def _summary(times: list[float], direct: float) -> tuple[float, float]:
    """(median, p90) overhead in ms of round trips ``times`` over the direct median."""
    return _report.median(times) - direct, _report.percentile(times, 90) - direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("-n", type=int, default=200, help="measurements per cluster and repeat")
    args = parser.parse_args()
    warmup = 10

    import torch
    from distributed import Client

    from coscope.infra.dask import dask_client
    from coscope.infra.runner import _warm_worker

    torch.set_num_threads(1)
    load_before = _uptime()
    rows, medians = [], {"local": [], "real": []}
    with tempfile.TemporaryDirectory(prefix="coscope-bench-cluster-") as tmp:
        tmp_path = Path(tmp)
        spec = overhead._spec(tmp_path / "run")
        t0 = time.perf_counter()
        with ExitStack() as engines:
            env = engine_env(_report.REPO / "src")
            address = engines.enter_context(dask_processes(tmp_path / "cluster", env))
            real = engines.enter_context(Client(address, timeout="600s"))
            local = engines.enter_context(dask_client(None, 2))
            for client in (real, local):
                client.run(_warm_worker, 1)
            t_start = time.perf_counter() - t0
            for r in range(args.repeats):
                direct = _report.median(overhead.time_direct(spec, args.n, warmup))
                order = [("real", real), ("local", local)]
                for name, client in order if r % 2 else order[::-1]:
                    print(f"repeat {r + 1}: {name}, {args.n} measurements ...", flush=True)
                    with client.as_current():  # `distributed.wait` runs on the default client
                        times = overhead._time_executor(client, spec, "dask", args.n, warmup)
                    med, p90 = _summary(times, direct)
                    medians[name].append(med)
                    rows.append((r + 1, name, direct, med, p90))
    label = {
        "local": "LocalCluster (2 processes x 1 thread)",
        "real": "`dask scheduler` + 2 `dask worker`",
    }
    table = _report.table(
        ["repeat", "cluster", "direct median ms", "overhead median ms", "overhead p90 ms"],
        [(r, label[name], f"{d:.2f}", f"{m:.2f}", f"{p:.2f}") for r, name, d, m, p in rows],
    )

    def mean_sd(xs: list[float]) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.2f} ± {sd:.2f}"

    notes = f"""
- Per measurement, `DaskExecutor(measure_via="dask")` round trip minus the direct call
  (zero-latency, noise-free 50 x 50 `synthetic_film` `beps_loop`), {args.n} sequential
  measurements per cluster and repeat after {warmup} warm-up ones; {args.repeats} repeats,
  alternating which cluster goes first. Both clusters up at once, on this machine's 2 cores.
- Median overhead over the repeats (mean ± sd of the per-repeat medians): real cluster
  {mean_sd(medians["real"])} ms, LocalCluster {mean_sd(medians["local"])} ms.
- Both are the same Dask protocol over loopback TCP. The LocalCluster's scheduler runs in
  the campaign's own process; the real one is a process of its own, so each round trip
  crosses one more process boundary. A cluster on several hosts adds the network between
  them (not measured here: one host). Starting both clusters and warming their workers took
  {t_start:.0f} s (torch, botorch and Prefect imported in each worker).
- Each timing runs under `client.as_current()`: with two clients in one process,
  `distributed.wait` otherwise waits through the other (the last created) client, and a first
  try measured 2.5 s per round trip on the LocalCluster for that reason alone.
- `uptime` before: {load_before}; after: {_uptime()}.
"""
    _report.publish(
        "cluster_overhead",
        "Overhead per measurement: real Dask cluster vs LocalCluster "
        "(`benchmarks/cluster_overhead.py`)",
        table,
        notes,
    )


if __name__ == "__main__":
    main()
