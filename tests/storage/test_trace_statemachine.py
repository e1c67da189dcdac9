"""Hypothesis state machine: TraceStore against a plain list/dict model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from coscope.storage import TraceStore
from coscope.types import FitRecord, Intervention, Measurement

from .conftest import create, make_modalities, measurement, proposal

MODALITIES = make_modalities()
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


class TraceMachine(RuleBasedStateMachine):
    """Appends and reopenings; after every step the readers equal the model."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.store = create(self.tmp / "t.zarr")
        self.decisions: list = []
        self.measurements: dict[int, Measurement] = {}
        self.order: list[int] = []
        self.fits: list[FitRecord] = []
        self.interventions: list[Intervention] = []

    @rule(gap=st.integers(1, 3), modality=st.sampled_from(sorted(MODALITIES)))
    def append_decision(self, gap: int, modality: str) -> None:
        step = (self.decisions[-1].step if self.decisions else -1) + gap
        p = proposal(step, modality)
        self.store.append_decision(p)
        self.decisions.append(p)

    @precondition(lambda self: len(self.decisions) > len(self.measurements))
    @rule(data=st.data())
    def append_measurement(self, data: st.DataObject) -> None:
        pending = [p for p in self.decisions if p.step not in self.measurements]
        p = data.draw(st.sampled_from(pending))
        m = measurement(p, MODALITIES[p.modality].length)
        self.store.append_measurement(m)
        self.measurements[p.step] = m
        self.order.append(p.step)

    @rule(loss=st.floats(allow_nan=False, width=64), name=TEXT)
    def append_fit(self, loss: float, name: str) -> None:
        r = FitRecord(len(self.fits), len(self.order), len(self.order), loss, 0.5, {name: loss})
        self.store.append_fit(r)
        self.fits.append(r)

    @rule(kind=TEXT, who=TEXT, why=TEXT, value=st.integers(-5, 5))
    def append_intervention(self, kind: str, who: str, why: str, value: int) -> None:
        i = Intervention(kind, {"value": value, "text": why}, len(self.decisions), who, why, 1.0)
        self.store.append_intervention(i)
        self.interventions.append(i)

    @rule()
    def close_and_reopen(self) -> None:
        self.store.close()
        self.store = TraceStore.open(self.tmp / "t.zarr", "a")

    @invariant()
    def readers_equal_model(self) -> None:
        s = self.store
        assert s.counts() == {
            "decisions": len(self.decisions),
            "measurements": len(self.order),
            "fits": len(self.fits),
            "interventions": len(self.interventions),
        }
        assert [repr(p) for p in s.decisions()] == [repr(p) for p in self.decisions]
        got = s.measurements()
        assert [m.step for m in got] == self.order
        for m in got:
            want = self.measurements[m.step]
            assert repr(m) == repr(want)
            np.testing.assert_array_equal(m.signal, want.signal)
        assert [repr(r) for r in s.fits()] == [repr(r) for r in self.fits]
        assert s.interventions() == self.interventions
        assert s.measured_steps() == set(self.order)
        assert [p.step for p in s.pending_decisions()] == [
            p.step for p in self.decisions if p.step not in self.measurements
        ]

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


TraceMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None, derandomize=True
)
test_trace_state_machine = pytest.mark.slow(TraceMachine.TestCase)
