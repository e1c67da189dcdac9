"""The failure policy: stop at the first failure, or tolerate a rate, retire what always fails.

A location whose measurement always fails must not hold a campaign up: its decision is
retired after ``retire_after`` failures (recorded, never re-issued, its location taken), also
under the default policy across resumes; a tolerant policy retires transient and bad
measurements at once and goes on until the failure rate is exceeded; an instrument that goes
down stops alone. Everything is judged from the trace, so the verdicts survive a resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.failures import FAILED_MEASUREMENT
from coscope.config import CampaignSpec, parse_spec
from coscope.errors import BadMeasurement, ConfigError, InstrumentDown
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.instruments import Instrument
from coscope.instruments.wrappers import InstrumentWrapper
from coscope.report.status import campaign_status, format_status
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, MeasurementRequest

BAD = Location(3, 4)


class FailsAt(InstrumentWrapper):
    """Every measurement at one of ``places`` is unusable; from ``down_at`` on: disconnected."""

    def __init__(
        self, inner: Instrument, places: set[Location], down_at: int | None = None
    ) -> None:
        super().__init__(inner)
        self.places, self.down_at = places, down_at

    def measure(self, request: MeasurementRequest) -> Measurement:
        if self.down_at is not None and request.step >= self.down_at:
            raise InstrumentDown(f"'{self.name}' does not answer.")
        if request.location in self.places:
            raise BadMeasurement(f"the signal at {request.location} is all NaN.")
        return self._inner_measure(request)


def _spec(tmp_path: Path, failures: dict[str, Any] | None = None, **changes: Any) -> CampaignSpec:
    data: dict[str, Any] = {
        "name": "faulty",
        "seed": 4,
        "sample": {"kind": "synthetic_film", "params": {"size": 10}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.0}],
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 20},
        "seed_points": [[3, 4]],
        "budget": {"max_measurements": 8},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    if failures is not None:
        data["failures"] = failures
    data.update(changes)
    return parse_spec(data)


def _run(spec: CampaignSpec, wrap: dict[str, Any]) -> tuple[Any, TraceStore]:
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    instruments = {
        name: FailsAt(inst, **wrap[name]) if name in wrap else inst
        for name, inst in instruments_from_spec(spec, sample).items()
    }
    outcome = CampaignLoop(ctx, LocalExecutor(instruments)).run()
    ctx.store.close()
    return outcome, TraceStore.open(spec.resolved_store(), "r")


def _failures(store: TraceStore) -> list[dict[str, Any]]:
    return [i.payload for i in store.interventions() if i.kind == FAILED_MEASUREMENT]


def test_a_location_that_always_fails_is_retired_after_three_tries(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    wrap = {"afm": {"places": {BAD}}}
    for attempt in range(3):  # the default policy: stop, resume re-issues the decision
        outcome, store = _run(spec, wrap)
        assert outcome.status == "failed" and "step 0" in outcome.reason
        records = _failures(store)
        assert [r["retired"] for r in records] == [False] * attempt + [attempt == 2]
        assert store.counts()["measurements"] == 0
        store.close()
    outcome, store = _run(spec, wrap)  # the way forward: the retired decision stays done
    assert outcome.status == "finished" and outcome.n_measurements == 8
    decisions = store.decisions()
    assert decisions[0].location == BAD and store.pending_decisions() == []
    assert [d.location for d in decisions].count(BAD) == 1  # never proposed again
    assert {m.step for m in store.measurements()} == {d.step for d in decisions[1:]}
    assert len(_failures(store)) == 3
    store.close()
    status = campaign_status(spec.resolved_store())
    assert status["failures"] == {"failed": 3, "by_class": {"bad_measurement": 3}, "retired": [0]}
    assert status["pending"] == 0 and "retired step(s) 0" in format_status(status)


def test_a_tolerant_policy_retires_bad_measurements_and_goes_on(tmp_path: Path) -> None:
    places = {BAD, Location(0, 0)}
    spec = _spec(
        tmp_path,
        {"max_rate": 0.7, "min_failures": 2},  # 2 of 3 attempts failed: under 70 %
        seed_points=[[5, 5], [3, 4], [0, 0]],
    )
    outcome, store = _run(spec, {"afm": {"places": places}})
    assert outcome.status == "finished" and outcome.n_measurements == 8
    records = _failures(store)
    assert records and all(
        r["retired"] and r["failure_class"] == "bad_measurement" for r in records
    )
    measured = {(m.location.row, m.location.col) for m in store.measurements()}
    failed = {tuple(r["location"]) for r in records}
    assert not measured & failed and (3, 4) in failed and (0, 0) in failed
    locations = [d.location for d in store.decisions()]
    assert len(set(locations)) == len(locations)  # a retired location is never proposed again
    assert store.pending_decisions() == []
    assert outcome.cost_spent == 8.0  # a failed measurement is not charged
    store.close()


def test_the_rate_stops_a_campaign_that_mostly_fails(tmp_path: Path) -> None:
    everywhere = {Location(r, c) for r in range(10) for c in range(10)} - {Location(5, 5)}
    spec = _spec(tmp_path, {"max_rate": 0.3, "min_failures": 3}, seed_points=[[5, 5]])
    outcome, store = _run(spec, {"afm": {"places": everywhere}})
    assert outcome.status == "failed"
    records = _failures(store)
    assert len(records) == 3  # 3 failures of 4 attempts > 30 %: stops at the third
    assert [r["retired"] for r in records] == [True, True, False]
    assert [p.step for p in store.pending_decisions()] == [records[-1]["step"]]
    store.close()


def test_an_instrument_that_goes_down_stops_alone(tmp_path: Path) -> None:
    instruments = [
        {"name": "afm", "latency_s": 0.0, "cost": 1.0},
        {"name": "afm2", "latency_s": 0.0, "cost": 1.0},
    ]
    spec = _spec(
        tmp_path,
        {"max_rate": 0.5},
        instruments=instruments,
        seed_points=[],
        budget={"max_measurements": 10},
    )
    outcome, store = _run(spec, {"afm2": {"places": set(), "down_at": 4}})
    assert outcome.status == "finished" and outcome.n_measurements == 10
    assert "afm2 went down" in outcome.reason
    records = _failures(store)
    assert [r["failure_class"] for r in records] == ["instrument_down"]
    later = [d.instrument for d in store.decisions() if d.step > records[0]["step"]]
    assert later and set(later) == {"afm"}
    assert [p.instrument for p in store.pending_decisions()] == ["afm2"]  # resume re-issues
    store.close()


def test_with_queues_requests_chained_behind_a_failure_run_again(tmp_path: Path) -> None:
    spec = _spec(tmp_path, {"max_rate": 0.5, "min_failures": 2}, queue_depth=2)
    outcome, store = _run(spec, {"afm": {"places": {BAD}}})
    assert outcome.status == "finished" and outcome.n_measurements == 8
    records = _failures(store)
    assert len(records) == 1 and records[0]["location"] == [3, 4]  # none for the chained ones
    assert store.pending_decisions() == []
    steps = [m.step for m in store.measurements()]
    assert len(steps) == len(set(steps)) == 8
    store.close()


def test_a_tolerant_campaign_is_reproducible(tmp_path: Path) -> None:
    places = {BAD, Location(1, 1), Location(8, 2)}
    runs = []
    for name in ("a", "b"):
        spec = _spec(tmp_path / name, {"max_rate": 0.5}, seed_points=[[3, 4], [1, 1]])
        outcome, store = _run(spec, {"afm": {"places": places}})
        runs.append(([(d.step, d.location) for d in store.decisions()], _failures(store)))
        assert np.isfinite(outcome.cost_spent)
        store.close()
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("failures", "words"),
    [
        ({"max_rate": 1.0}, "max_rate"),
        ({"max_rate": -0.1}, "max_rate"),
        ({"retire_after": 0}, "retire_after"),
        ({"tolerate": 1}, "tolerate"),
    ],
)
def test_a_bad_failure_policy_is_one_sentence(tmp_path: Path, failures: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        _spec(tmp_path, failures)
    assert "\n" not in str(info.value)
