"""Shared helpers of the benchmark scripts: environment, machine description, report sections.

Each script owns one section of ``docs/benchmarks.md`` between ``<!-- BEGIN name -->`` and
``<!-- END name -->`` and rewrites only that section; the header is written once when the
file does not exist yet.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}

_HEADER = """# Benchmarks

Figures measured by the scripts in `benchmarks/` on the machine described below. Each
script rewrites only its own section (between its `BEGIN name` / `END name` HTML comments);
the text outside the sections is kept. Tests never time anything; these scripts do.

Rerun all three with `make bench` (about 8 minutes), or one at a time:

```bash
.venv/bin/python benchmarks/overhead.py          # ~1.5 min (--quick: 30 measurements per path)
.venv/bin/python benchmarks/decision_latency.py  # ~2 min   (--quick: 3 x 2 cells, ~10 s)
.venv/bin/python benchmarks/learning_curve.py    # ~3.5 min (--quick: 2 seeds, ~1.5 min)
```

Every script pins one thread per process (`OMP_NUM_THREADS=MKL_NUM_THREADS=
OPENBLAS_NUM_THREADS=1`, `torch.set_num_threads(1)`), keeps Prefect and MLflow offline, and
writes its scratch output to a temporary folder, never into the repository. Timings are
wall clock on a shared 2-core machine: read them as orders of magnitude, not as exact values.

"""


def set_environment() -> None:
    """One thread per process and the offline switches; call before importing torch/numpy."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    os.environ.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_description() -> str:
    """One markdown paragraph: cores, CPU, RAM, library versions, threads, date, load."""
    import torch

    threads = ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS)
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in (
            "torch",
            "gpytorch",
            "botorch",
            "prefect",
            "prefect-dask",
            "dask",
            "distributed",
            "zarr",
        )
    )
    return (
        f"Machine: {os.cpu_count()} cores (`nproc`), {_cpu_model()}, {_ram_gib()} RAM, no GPU; "
        f"Python {platform.python_version()}; {versions}. Threads: {threads}, "
        f"torch.get_num_threads()={torch.get_num_threads()}. "
        f"Run {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"(load average at the end of the run {load})."
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (values formatted by ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, title: str, *parts: str) -> None:
    """Print ``parts`` and write them, under ``title`` and the machine line, as section ``name``."""
    body = f"## {title}\n\n{machine_description()}\n\n" + "\n".join(parts)
    print()
    print("\n".join(parts))
    write_section(name, body)
    print(f"wrote section '{name}' of {DOC}")


def write_section(name: str, body: str, path: Path = DOC) -> None:
    """Replace the section ``name`` of ``path`` with ``body`` (append it when absent)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
