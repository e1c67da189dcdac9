"""Crash consistency: a writer process SIGKILLed at arbitrary moments loses nothing committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from coscope.storage import TraceStore

from .conftest import create, make_modalities, measurement, proposal

CHILD = """
import sys
sys.path.insert(0, {tests!r})
from storage.conftest import make_modalities, measurement, proposal
from coscope.storage import TraceStore

mods = make_modalities()
store = TraceStore.open({path!r}, "a")
start = store.counts()["decisions"]
print("ready", flush=True)
for k in range(start, start + 100000):
    p = proposal(k, "beps_loop" if k % 4 else "theory:lgd")
    store.append_decision(p)
    print("D", k, flush=True)
    store.append_measurement(measurement(p, mods[p.modality].length))
    print("M", k, flush=True)
"""


def _run_and_kill(path: Path, *, after_lines: int | None, delay: float | None) -> list[str]:
    """Start a writer, SIGKILL it after ``after_lines`` reported appends or ``delay`` s."""
    code = CHILD.format(tests=str(Path(__file__).parents[1]), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    lines = [child.stdout.readline().strip()]
    assert lines == ["ready"]
    if delay is not None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # a reader in this process meanwhile
            _check_prefix(path)
    else:
        while len(lines) - 1 < (after_lines or 0):
            lines.append(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    return lines[1:] + [line for line in rest.splitlines() if line]


def _check_prefix(path: Path) -> None:
    """A concurrent reader sees a consistent prefix: every measurement intact, decided."""
    mods = make_modalities()
    s = TraceStore.open(path, "r")
    got = s.measurements()
    decided = {p.step for p in s.decisions()}
    assert {m.step for m in got} <= decided
    for m in got:
        np.testing.assert_array_equal(
            m.signal, measurement(proposal(m.step, m.modality), mods[m.modality].length).signal
        )


def _committed(path: Path) -> tuple[set[int], set[int]]:
    with TraceStore.open(path, "r") as s:
        return {p.step for p in s.decisions()}, s.measured_steps()


def _check(path: Path, reported: list[str], before: tuple[set[int], set[int]]) -> None:
    """The reopened store holds what it held ``before`` plus what the child reported."""
    mods = make_modalities()
    decided = before[0] | {int(line.split()[1]) for line in reported if line.startswith("D")}
    measured = before[1] | {int(line.split()[1]) for line in reported if line.startswith("M")}
    with TraceStore.open(path, "a") as s:
        steps = [p.step for p in s.decisions()]
        got = s.measurements()
        got_steps = [m.step for m in got]
        # committed before printed: the store may hold at most one record more than reported
        assert decided <= set(steps) and len(set(steps) - decided) <= 1
        assert measured <= set(got_steps) and len(set(got_steps) - measured) <= 1
        assert len(got_steps) == len(set(got_steps)) and steps == sorted(set(steps))
        assert set(got_steps) <= set(steps)
        for m in got:
            p = proposal(m.step, m.modality)
            want = measurement(p, mods[m.modality].length)
            assert repr(m) == repr(want)
            np.testing.assert_array_equal(m.signal, want.signal)
        counts = s.counts()
        assert counts["decisions"] == len(steps) and counts["measurements"] == len(got)
        # appending continues normally: measure what is pending, then a new decision
        for p in s.pending_decisions():
            s.append_measurement(measurement(p, mods[p.modality].length))
        nxt = proposal(max(steps, default=-1) + 1)
        s.append_decision(nxt)
        s.append_measurement(measurement(nxt, 64))
        n = s.counts()
    group = zarr.open_group(path, mode="r")  # after a clean close: no padding, no torn rows
    assert group["decisions/step"].shape == (n["decisions"],)
    assert group["measurements/step"].shape == (n["measurements"],)
    assert not list(path.rglob("*.partial"))


@pytest.mark.slow
def test_sigkill_at_many_moments_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "t.zarr"
    create(path).close()
    rng = np.random.default_rng(1234)
    for after in (0, 1, 2, 5, 17):
        before = _committed(path)
        _check(path, _run_and_kill(path, after_lines=after, delay=None), before)
    for delay in rng.uniform(0.0, 0.4, size=6):
        before = _committed(path)
        _check(path, _run_and_kill(path, after_lines=None, delay=float(delay)), before)
