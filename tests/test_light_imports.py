"""Control commands and spec validation start without torch, botorch, gpytorch or Prefect.

Each command runs in a fresh interpreter (``python -X importtime -m coscope.cli …``); the
modules it imported are read from the import-time report. The test asserts the module set,
never a timing (docs/benchmarks.md, "Control-command start-up", has the figures).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "torch",
    "botorch",
    "gpytorch",
    "linear_operator",
    "prefect",
    "dask",
    "distributed",
    "mlflow",
    "matplotlib",
    "ophyd",
    "caproto",
)
"""Top-level packages no control command may import."""
SUBCOMMANDS = (
    "demo",
    "run",
    "resume",
    "status",
    "dataset",
    "benchmark",
    "seeds",
    "serve",
    "intervene",
    "approve",
    "reject",
    "replay",
    "retrace",
    "report",
    "dashboard",
)
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def _environment() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime ARGS``; the process and the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=300,
    )
    modules = {m.group(1) for m in map(_IMPORT_LINE.match, done.stderr.splitlines()) if m}
    return done, modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small finished campaign's trace (6 measurements)."""
    from tests.campaign.test_loop import _run, _spec

    spec = _spec(tmp_path_factory.mktemp("light"), budget={"max_measurements": 6})
    _run(spec)
    return str(spec.resolved_store())


@pytest.mark.parametrize(
    "argv",
    [["--help"], *([name, "--help"] for name in SUBCOMMANDS), ["dataset", "import", "--help"]],
    ids=lambda argv: " ".join(argv),
)
def test_help_is_light(argv: list[str]) -> None:
    done, modules = _imported("-m", "coscope.cli", *argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: coscope") and "coscope" in modules
    assert _heavy(modules) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "{store}"],
        ["status", "{store}", "--json"],
        ["intervene", "{store}", "--list"],
        ["intervene", "{store}", "policy", "name=ucb", 'params={"beta": 2}'],
        ["intervene", "{store}", "costs", "afm=2"],
        ["intervene", "{store}", "pause"],
        ["intervene", "{store}", "stop"],
        ["approve", "{store}"],
    ],
    ids=lambda argv: " ".join(a for a in argv if a != "{store}"),
)
def test_control_commands_are_light(store: str, argv: list[str]) -> None:
    done, modules = _imported("-m", "coscope.cli", *(store if a == "{store}" else a for a in argv))
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"coscope.config", "coscope.storage.trace"} <= modules  # it did read the trace
    assert _heavy(modules) == []
    if argv == ["status", "{store}", "--json"]:
        assert json.loads(done.stdout)["measurements"]["total"] == 6


def test_spec_validation_is_light() -> None:
    code = (
        "import sys\n"
        "from coscope.config import load_spec\n"
        f"for path in {[str(p) for p in EXAMPLES]!r}:\n"
        "    load_spec(path)\n"
    )
    done, modules = _imported("-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "coscope.catalog" in modules and "pydantic" in modules
    assert _heavy(modules) == []


def test_an_invalid_spec_is_refused_without_torch(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\npolicy: {name: gain_per_cost, params: {boundaries: 9}}\n")
    done, modules = _imported("-m", "coscope.cli", "run", str(spec))
    assert done.returncode == 2
    assert "integer 0..4" in done.stderr and _heavy(modules) == []
