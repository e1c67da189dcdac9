"""Start-up of the control commands: modules imported, wall and CPU time per command.

A small campaign is run first (``coscope demo``: 16 x 16 film, 12 measurements) to have a
trace. Then each control command runs ``--n`` times in a fresh interpreter (``python -m
coscope.cli …``), and once more under ``-X importtime`` to count the modules it imports and
name the heavy packages among them. With ``--before SRC`` the same commands also run
against another source tree (e.g. ``git archive <commit> src | tar -x -C /tmp/base``), for a
before/after table. ``tests/test_light_imports.py`` checks the module sets; only this script
times anything.

Usage: ``python benchmarks/control_startup.py [--n 5] [--before /tmp/base/src]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HEAVY = ("torch", "botorch", "gpytorch", "prefect", "dask", "mlflow", "matplotlib", "scipy")
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)")


def _commands(store: str) -> dict[str, list[str]]:
    examples = sorted(str(p) for p in (_report.REPO / "examples").glob("*.yaml"))
    validate = f"from coscope.config import load_spec\nfor p in {examples!r}: load_spec(p)"
    cli = ["-m", "coscope.cli"]
    return {
        "`coscope --help`": [*cli, "--help"],
        "`coscope status STORE`": [*cli, "status", store],
        "`coscope status STORE --json`": [*cli, "status", store, "--json"],
        "`coscope intervene STORE --list`": [*cli, "intervene", store, "--list"],
        "`coscope intervene STORE policy name=ucb`": [*cli, "intervene", store]
        + ["policy", "name=ucb"],
        f"`load_spec` of the {len(examples)} examples": ["-c", validate],
    }


def _measure(src: str, args: list[str], store: str, n: int) -> tuple[int, str, float, float]:
    """(modules imported, heavy packages among them, median wall s, median CPU s)."""
    env = {**os.environ, "PYTHONPATH": src}
    err = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env
    ).stderr
    shutil.rmtree(store + ".inbox", ignore_errors=True)
    modules = {m.group(1) for m in map(_IMPORT_LINE.match, err.splitlines()) if m}
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    walls, cpus = [], []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        shutil.rmtree(store + ".inbox", ignore_errors=True)  # what `intervene` posted
    return len(modules), ", ".join(heavy) or "none", _report.median(walls), _report.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--before", help="another source tree to compare with (its src/)")
    parser.add_argument(
        "--before-name", default="another tree", help="what --before is, for the text"
    )
    args = parser.parse_args()
    here = str(_report.REPO / "src")
    trees = [("before", args.before), ("after", here)] if args.before else [("now", here)]
    load = [os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        env = {**os.environ, "PYTHONPATH": here, "PREFECT_HOME": str(Path(tmp) / "prefect")}
        subprocess.run(
            [sys.executable, "-m", "coscope.cli", "demo", "--budget", "12", "--size", "16"]
            + ["--time-scale", "0.01", "--quiet", "--out", str(run)],
            env=env,
            check=True,
            capture_output=True,
        )
        store = str(run / "trace.zarr")
        for name, command in _commands(store).items():
            for label, src in trees:
                modules, heavy, wall, cpu = _measure(src, command, store, args.n)
                rows.append((name, label, modules, heavy, f"{wall:.2f}", f"{cpu:.2f}"))
                print(rows[-1], flush=True)
    load.append(os.getloadavg())
    loads = " and ".join(" / ".join(f"{x:.1f}" for x in la) for la in load)
    _report.publish(
        "control_startup",
        "Control-command start-up (`benchmarks/control_startup.py`)",
        "Each command in a fresh interpreter on the trace of a 12-measurement demo campaign "
        f"(16 x 16 film); median of {args.n} runs; CPU = user + system of the process. "
        f"Load average at the start and the end: {loads} (other work shared the machine, so "
        "read the times as orders of magnitude; the module counts are exact)."
        + (f" Before: {args.before_name}; after: this tree." if args.before else ""),
        "",
        _report.table(("command", "tree", "modules", "heavy packages", "wall s", "CPU s"), rows),
        "",
        "Spec validation used to import torch and botorch (policy and kind names came from "
        "the modules that implement them). The names and parameter rules now live in "
        "`coscope.catalog` as plain data, the registries declare into it, and `coscope.agents` "
        "and `coscope.report` export their names lazily, so `status`, `intervene` and "
        "`--help` read the trace with pydantic, numpy and zarr only.",
    )


if __name__ == "__main__":
    main()
