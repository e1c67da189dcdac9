"""coscope inside Bluesky: a real RunEngine, ophyd.sim motors and a detector on a simulated
sample. The trace equals ``coscope run``'s, the documents validate, and pause, abort and
failing reads leave a campaign that finishes with nothing lost or measured twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from event_model import DocumentNames, schema_validators
from ophyd.sim import SynAxis
from ophyd.status import DeviceStatus
from ophyd.utils import LimitError

import coscope
from coscope.bluesky import SampleDetector, StageMap, coscope_plan
from coscope.config import CampaignSpec
from coscope.errors import BadMeasurement, ConfigError, InstrumentDown, InstrumentTimeout
from coscope.steer_requests import post_intervention
from coscope.storage import TraceStore
from tests.agents.test_multitask_agent import _spec as multitask_spec
from tests.test_api import _loop_trace
from tests.test_api import _spec as api_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


STAGE = {"origin": (100.0, -50.0), "scale": (1e-3, 1e-3)}
"""The stage's set-points: 100 mm + row * pitch, -50 mm + col * pitch (motors in mm)."""


FILM = {"kind": "synthetic_film", "params": {"size": 16, "pixel_size_um": 2.0}}


def _spec(tmp_path: Path, **changes: Any) -> CampaignSpec:
    """The Python API tests' campaign with a noise-free instrument (a detector on the sample
    returns exactly its signals) on a 2 um grid."""
    fields = {
        "name": "bluesky",
        "sample": FILM,
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.0}],
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 30},
        "budget": {"max_measurements": 9},
    }
    return api_spec(tmp_path, **{**fields, **changes})


class Beamline:
    """A RunEngine collecting every document, two motors and a detector on the sample."""

    def __init__(self, campaign: coscope.Campaign, detector: type[SampleDetector] = SampleDetector):
        self.RE = RunEngine({})
        self.docs: list[tuple[str, dict]] = []
        self.RE.subscribe(lambda name, doc: self.docs.append((name, doc)))
        self.y, self.x = SynAxis(name="y"), SynAxis(name="x")
        self.stage = StageMap(campaign.space, **STAGE)
        self.det = detector(
            sample=campaign.sample,
            modality="beps_loop",
            stage=self.stage,
            positioners=[self.y, self.x],
            name="det",
        )

    def plan(self, campaign: coscope.Campaign, **options: Any):
        return coscope_plan(
            campaign,
            [self.y, self.x],
            {"beps_loop": (self.det, "det_spectrum")},
            **{**STAGE, **options},
        )

    def of(self, kind: str) -> list[dict]:
        return [doc for name, doc in self.docs if name == kind]


def _decisions(store: TraceStore) -> list[tuple]:
    return [(d.step, d.instrument, d.modality, d.location, d.n_known) for d in store.decisions()]


def _assert_same_trace(got: TraceStore, expected: TraceStore) -> None:
    assert _decisions(got) == _decisions(expected)
    for a, b in zip(got.measurements(), expected.measurements(), strict=True):
        assert (a.step, a.location, a.cost) == (b.step, b.location, b.cost)
        np.testing.assert_array_equal(a.signal, b.signal)
    assert [f.n_train for f in got.fits()] == [f.n_train for f in expected.fits()]


def _validate(docs: list[tuple[str, dict]]) -> None:
    """Every document against event-model's schema, and the references between them: a
    descriptor of a started run, events of a known descriptor with its keys, numbered 1, 2, …
    per descriptor, one stop per start."""
    starts: set[str] = set()
    keys: dict[str, set[str]] = {}
    numbers: dict[str, int] = {}
    stopped: list[str] = []
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
        if name == "start":
            starts.add(doc["uid"])
        elif name == "descriptor":
            assert doc["run_start"] in starts
            keys[doc["uid"]] = set(doc["data_keys"])
        elif name == "event":
            assert set(doc["data"]) == keys[doc["descriptor"]]
            numbers[doc["descriptor"]] = numbers.get(doc["descriptor"], 0) + 1
            assert doc["seq_num"] == numbers[doc["descriptor"]]
        elif name == "stop":
            stopped.append(doc["run_start"])
    assert sorted(stopped) == sorted(starts)


@pytest.fixture(scope="module")
def loop_trace(tmp_path_factory: pytest.TempPathFactory) -> TraceStore:
    """What ``coscope run`` (the loop with the spec's own instrument) leaves for the spec."""
    return _loop_trace(_spec(tmp_path_factory.mktemp("loop")))


def test_trace_and_documents_equal_the_loop_run(tmp_path: Path, loop_trace: TraceStore) -> None:
    """Two runs of the plan (the second on the re-opened trace): coscope run's trace, and
    one valid event per measurement naming its step, location and signal."""
    spec = _spec(tmp_path)
    campaign = coscope.Campaign.create(spec, track=False)
    line = Beamline(campaign)
    (first_uid,) = line.RE(line.plan(campaign, max_measurements=4, md={"operator": "me"}))
    campaign.close()
    campaign = coscope.Campaign.open(spec.resolved_store(), track=False)
    line.RE(line.plan(campaign))
    campaign.close()
    got = TraceStore.open(spec.resolved_store(), "r")
    _assert_same_trace(got, loop_trace)
    assert len(got.decisions()) == 9 and got.get_attr("status") == "finished"

    _validate(line.docs)
    starts, stops = line.of("start"), line.of("stop")
    assert [s["uid"] for s in starts][:1] == [first_uid] and len(starts) == len(stops) == 2
    assert starts[0]["operator"] == "me" and starts[0]["plan_name"] == "coscope_plan"
    assert starts[0]["motors"] == ["y", "x"] and starts[0]["detectors"] == ["det"]
    assert starts[0]["hints"] == {"dimensions": [[["y"], "primary"], [["x"], "primary"]]}
    meta = starts[0]["coscope"]
    assert meta["store"] == str(spec.resolved_store().resolve())
    assert (meta["campaign"], meta["seed"], meta["policy"]) == ("bluesky", 4, "ei")
    assert [s["coscope"]["measured_before"] for s in starts] == [0, 4]
    assert [s["exit_status"] for s in stops] == ["success", "success"]
    assert "max_measurements=4" in stops[0]["reason"]
    assert "measurement budget is used up" in stops[1]["reason"]
    assert [s["num_events"] for s in stops] == [{"primary": 4}, {"primary": 5}]
    events = line.of("event")
    measured = got.measurements()
    assert [e["data"]["coscope_step"] for e in events] == [m.step for m in measured]
    for event, m in zip(events, measured, strict=True):
        data = event["data"]
        assert (data["coscope_row"], data["coscope_col"]) == (m.location.row, m.location.col)
        assert data["coscope_modality"] == "beps_loop" and data["coscope_cost"] == 1.5
        np.testing.assert_array_equal(data["det_spectrum"], m.signal)
        want = line.stage.setpoints(m.location)  # 100 mm + row * 2 um, -50 mm + col * 2 um
        assert want == (100.0 + m.location.row * 2e-3, -50.0 + m.location.col * 2e-3)
        assert (data["y"], data["x"]) == pytest.approx(want)
    descriptor = line.of("descriptor")[0]
    assert descriptor["data_keys"]["det_spectrum"]["shape"] == [measured[0].signal.size]


def test_a_line_scan_drives_one_motor(tmp_path: Path) -> None:
    """A space whose candidates share a row: ``None`` for that coordinate, one motor moves."""
    line_scan = {**FILM, "mask": {"rect": [5, 0, 6, 16]}}  # row 5 only
    spec = _spec(tmp_path, sample=line_scan)
    expected = _loop_trace(_spec(tmp_path / "loop", sample=line_scan))
    with coscope.Campaign.create(spec, track=False) as campaign:
        x = SynAxis(name="x")
        stage = StageMap(campaign.space)
        det = SampleDetector(
            sample=campaign.sample,
            modality="beps_loop",
            stage=stage,
            positioners=[None, x],
            name="det",
        )
        RE = RunEngine({})
        docs: list[tuple[str, dict]] = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        RE(coscope_plan(campaign, [None, x], {"beps_loop": det}))
    got = TraceStore.open(spec.resolved_store(), "r")
    _assert_same_trace(got, expected)
    assert {m.location.row for m in got.measurements()} == {5}
    start = next(doc for name, doc in docs if name == "start")
    assert start["motors"] == ["x"]
    events = [doc for name, doc in docs if name == "event"]
    assert [e["data"]["x"] for e in events] == [2.0 * m.location.col for m in got.measurements()]
    _validate(docs)


def test_two_modalities_two_streams_and_the_loop_trace(tmp_path: Path) -> None:
    """A multi-task agent choosing between a cheap loop and a costly Raman spectrum on one
    instrument: one reader and one event stream per modality, the loop's trace."""

    def spec(where: Path) -> CampaignSpec:
        """The co-orchestration tests' campaign, its first instrument only (the loop then
        measures one at a time, as the RunEngine does)."""
        scope = multitask_spec(where).instruments[0].model_dump()
        return multitask_spec(
            where,
            sample={"kind": "combinatorial_library", "params": {"members": 16}},
            instruments=[scope],
            budget={"max_measurements": 10},
        )

    expected = _loop_trace(spec(tmp_path / "loop"))
    with coscope.Campaign.create(spec(tmp_path), track=False) as campaign:
        y, x = SynAxis(name="y"), SynAxis(name="x")
        stage = StageMap(campaign.space)
        readers = {
            modality: SampleDetector(
                sample=campaign.sample,
                modality=modality,
                stage=stage,
                positioners=[y, x],
                name=name,
            )
            for modality, name in (("pfm_loop", "pfm"), ("raman", "raman"))
        }
        RE = RunEngine({})
        docs: list[tuple[str, dict]] = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        RE(coscope_plan(campaign, [y, x], readers))
    got = TraceStore.open(campaign.store_path, "r")
    _assert_same_trace(got, expected)
    _validate(docs)
    measured = got.measurements()
    assert {m.modality for m in measured} == {"pfm_loop", "raman"}
    descriptors = {d["uid"]: d["name"] for name, d in docs if name == "descriptor"}
    assert sorted(descriptors.values()) == ["pfm_loop", "raman"]
    events = [doc for name, doc in docs if name == "event"]
    assert [(descriptors[e["descriptor"]], e["data"]["coscope_step"]) for e in events] == [
        (m.modality, m.step) for m in measured
    ]
    for event, m in zip(events, measured, strict=True):
        key = "pfm_spectrum" if m.modality == "pfm_loop" else "raman_spectrum"
        np.testing.assert_array_equal(event["data"][key], m.signal)


class SigintDetector(SampleDetector):
    """Presses Ctrl-C (SIGINT to this process) while its third acquisition runs."""

    def trigger(self) -> DeviceStatus:
        if self.triggered == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return super().trigger()


@pytest.fixture
def main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the RunEngine only in the main thread")


def _steps(store: TraceStore) -> list[int]:
    return [m.step for m in store.measurements()]


def test_ctrl_c_pauses_between_measurements_and_abort_resumes(
    tmp_path: Path, loop_trace: TraceStore, main_thread: None
) -> None:
    """Ctrl-C: a deferred pause at the next checkpoint (before a decision); RE.abort() ends
    the run as aborted with nothing pending; a re-opened campaign finishes the loop's trace."""
    spec = _spec(tmp_path)
    campaign = coscope.Campaign.create(spec, track=False)
    line = Beamline(campaign, SigintDetector)
    with pytest.raises(RunEngineInterrupted):
        line.RE(line.plan(campaign))
    assert line.RE.state == "paused"
    measured = campaign.status()["measurements"]["total"]
    assert 3 <= measured < 9 and campaign.pending == []  # paused before the next ask
    line.RE.abort("enough for today")
    stop = line.of("stop")[-1]
    assert stop["exit_status"] == "abort" and "0 pending" in stop["reason"]
    assert stop["num_events"] == {"primary": measured}
    campaign.close()
    with coscope.Campaign.open(spec.resolved_store(), track=False) as campaign:
        line.RE(line.plan(campaign))
    got = TraceStore.open(spec.resolved_store(), "r")
    assert _steps(got) == list(range(9))
    _assert_same_trace(got, loop_trace)
    _validate(line.docs)


def test_ctrl_c_then_resume_continues_the_same_run(
    tmp_path: Path, loop_trace: TraceStore, main_thread: None
) -> None:
    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        line = Beamline(campaign, SigintDetector)
        with pytest.raises(RunEngineInterrupted):
            line.RE(line.plan(campaign))
        line.RE.resume()
    assert len(line.of("start")) == 1 and line.of("stop")[0]["exit_status"] == "success"
    assert len(line.of("event")) == 9
    _assert_same_trace(TraceStore.open(spec.resolved_store(), "r"), loop_trace)


class HangingDetector(SampleDetector):
    """Its third acquisition hangs while :meth:`meanwhile` runs in another thread, and ends
    only once the RunEngine is in state :attr:`until`: what happens lands inside it."""

    engine: RunEngine
    until = "paused"

    def meanwhile(self) -> None:
        """What someone does while the detector acquires."""

    def trigger(self) -> DeviceStatus:
        if self.triggered != 2:
            return super().trigger()
        self.triggered += 1
        status = DeviceStatus(self)

        def hang() -> None:
            self.meanwhile()
            deadline = time.monotonic() + 600
            while self.engine.state != self.until and time.monotonic() < deadline:
                time.sleep(0.05)
            status.set_finished()

        threading.Thread(target=hang, daemon=True).start()
        return status


class HardPauseDetector(HangingDetector):
    """Ctrl-C twice (an immediate pause) while it acquires."""

    def meanwhile(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # the RunEngine counts presses at least 0.1 s apart
        os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_twice_inside_a_measurement_rewinds_it(
    tmp_path: Path, loop_trace: TraceStore, main_thread: None
) -> None:
    """An immediate pause while the detector acquires: the step stays pending; on resume the
    RunEngine moves, triggers and reads it again, and it is told once."""
    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        line = Beamline(campaign, HardPauseDetector)
        line.det.engine = line.RE
        with pytest.raises(RunEngineInterrupted):
            line.RE(line.plan(campaign))
        assert [p.step for p in campaign.pending] == [2]
        line.RE.resume()
        assert line.det.triggered == 10  # 9 measurements, the interrupted one triggered twice
    assert len(line.of("event")) == 9 and line.of("stop")[0]["exit_status"] == "success"
    got = TraceStore.open(spec.resolved_store(), "r")
    _assert_same_trace(got, loop_trace)
    for event, m in zip(line.of("event"), got.measurements(), strict=True):
        np.testing.assert_array_equal(event["data"]["det_spectrum"], m.signal)
    _validate(line.docs)


class PausingDetector(SampleDetector):
    """At its third acquisition, someone types ``coscope intervene STORE pause``; once the
    plan waits for it, ``resume``."""

    campaign: coscope.Campaign

    def trigger(self) -> DeviceStatus:
        if self.triggered == 2:
            store = self.campaign.store_path
            post_intervention(store, "pause", {}, why="refill the cryostat")

            def resume_when_waiting() -> None:
                deadline = time.monotonic() + 600
                while "paused" not in self.campaign.reason and time.monotonic() < deadline:
                    time.sleep(0.05)
                post_intervention(store, "resume", {})

            threading.Thread(target=resume_when_waiting, daemon=True).start()
        return super().trigger()


def test_a_paused_campaign_waits_in_the_run_until_resumed(
    tmp_path: Path, loop_trace: TraceStore
) -> None:
    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        line = Beamline(campaign, PausingDetector)
        line.det.campaign = campaign
        line.RE(line.plan(campaign, wait_when_paused=0.1))
    assert len(line.of("start")) == 1 and len(line.of("event")) == 9
    got = TraceStore.open(spec.resolved_store(), "r")
    assert [i.kind for i in got.interventions()] == ["pause", "resume"]
    _assert_same_trace(got, loop_trace)
    with coscope.Campaign.open(spec.resolved_store(), track=False) as campaign:
        post_intervention(campaign.store_path, "pause", {})
        line.RE(line.plan(campaign, wait_when_paused=None))  # ends the run instead
    assert "paused by an intervention" in line.of("stop")[-1]["reason"]


class InterruptedDetector(HangingDetector):
    """:attr:`interrupt` (``RE.abort`` or ``RE.stop``) called from another thread while it
    acquires: the RunEngine is running, not paused."""

    until = "idle"
    interrupt: Callable[[], object]

    def meanwhile(self) -> None:
        time.sleep(0.2)
        self.interrupt()


@pytest.mark.parametrize(("how", "exit_status"), [("abort", "abort"), ("stop", "success")])
def test_abort_or_stop_while_measuring_leaves_the_step_pending(
    tmp_path: Path, loop_trace: TraceStore, how: str, exit_status: str
) -> None:
    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        line = Beamline(campaign, InterruptedDetector)
        line.det.engine = line.RE
        line.det.interrupt = line.RE.abort if how == "abort" else line.RE.stop
        with pytest.raises(RunEngineInterrupted):
            line.RE(line.plan(campaign))
        assert [p.step for p in campaign.pending] == [2]
        stop = line.of("stop")[-1]
        assert stop["exit_status"] == exit_status and "1 pending" in stop["reason"]
        assert stop["num_events"] == {"primary": 2}
        line.RE(line.plan(campaign))  # the same session, again: step 2 first
    got = TraceStore.open(spec.resolved_store(), "r")
    assert _steps(got) == list(range(9))
    _assert_same_trace(got, loop_trace)
    _validate(line.docs)


class FailingDetector(SampleDetector):
    """Fails its third acquisition with the error :attr:`failure` (a failed ophyd status)."""

    failure: Exception = RuntimeError("CA channel det:spectrum disconnected")

    def trigger(self) -> DeviceStatus:
        if self.triggered == 2:
            self.triggered += 1
            status = DeviceStatus(self)
            status.set_exception(self.failure)
            return status
        return super().trigger()


class TimingOut(FailingDetector):
    failure = TimeoutError("no answer in 5 s")


class NaNDetector(SampleDetector):
    """Returns a spectrum with a NaN at its third acquisition (garbage from the PV)."""

    def measure(self) -> np.ndarray:
        signal = super().measure()
        if self.triggered == 3:
            signal[0] = np.nan
        return signal


@pytest.mark.parametrize(
    ("detector", "error", "failure_class"),
    [
        (FailingDetector, InstrumentDown, "instrument_down"),
        (TimingOut, InstrumentTimeout, "transient"),
        (NaNDetector, BadMeasurement, "bad_measurement"),
    ],
)
def test_a_failing_read_is_recorded_and_the_step_measured_on_the_next_run(
    tmp_path: Path, loop_trace: TraceStore, detector, error, failure_class
) -> None:
    spec = _spec(tmp_path)
    campaign = coscope.Campaign.create(spec, track=False)
    line = Beamline(campaign, detector)
    with pytest.raises(error) as caught:
        line.RE(line.plan(campaign))
    message = str(caught.value)
    assert "\n" not in message and "step 2" in message, message
    assert [p.step for p in campaign.pending] == [2]  # the failed proposal stays pending
    stop = line.of("stop")[-1]
    assert stop["exit_status"] == "fail" and "step 2" in stop["reason"]
    assert stop["num_events"] == {"primary": 2}  # no event for the failed read
    store = TraceStore.open(spec.resolved_store(), "r")
    (failed,) = [i for i in store.interventions() if i.kind == "failed_measurement"]
    assert failed.payload["step"] == 2 and failed.payload["failure_class"] == failure_class
    assert _steps(store) == [0, 1]
    line.RE(line.plan(campaign))  # the same session: the pending step first
    campaign.close()
    got = TraceStore.open(spec.resolved_store(), "r")
    assert _steps(got) == list(range(9))
    _assert_same_trace(got, loop_trace)
    _validate(line.docs)


class LimitedAxis(SynAxis):
    """A motor that refuses set-points above 100.01 (ophyd's ``Checkable``)."""

    def check_value(self, value: float) -> None:
        if value > 100.01:
            raise LimitError(f"{value} is above the high limit 100.01")


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[coscope.Campaign]:
    with coscope.Campaign.create(_spec(tmp_path), track=False) as opened:
        yield opened


def test_bad_devices_are_one_sentence_before_anything_moves(campaign: coscope.Campaign) -> None:
    line = Beamline(campaign)
    good = (line.det, "det_spectrum")
    short = SynAxis(name="short")  # a scalar reading: no key of shape (L,)
    cases = [
        ("2 coordinates (um) but 1 positioner", [line.y], {"beps_loop": good}, {}),
        ("not a readable ophyd Movable", [line.y, object()], {"beps_loop": good}, {}),
        ("repeat a name", [line.y, line.y], {"beps_loop": good}, {}),
        ("coordinate 0 of the space varies", [None, line.x], {"beps_loop": good}, {}),
        ("refuses set-point 100.03", [LimitedAxis(name="ly"), line.x], {"beps_loop": good}, {}),
        ("no reader for modality 'beps_loop'", [line.y, line.x], {}, {}),
        ("never proposes", [line.y, line.x], {"beps_loop": good, "raman": good}, {}),
        ("no data key 'det_loop'", [line.y, line.x], {"beps_loop": (line.det, "det_loop")}, {}),
        ("describes shape []", [line.y, line.x], {"beps_loop": (short, "short")}, {}),
        ("describes 0 keys of shape", [line.y, line.x], {"beps_loop": short}, {}),
        ("not an ophyd Readable", [line.y, line.x], {"beps_loop": (object(), "k")}, {}),
        ("origin [1.0] does not fit", [line.y, line.x], {"beps_loop": good}, {"origin": [1.0]}),
        ("scale of 0", [line.y, line.x], {"beps_loop": good}, {"scale": [0.0, 1.0]}),
        ("measures nothing", [line.y, line.x], {"beps_loop": good}, {"max_measurements": 0}),
        ("no interval", [line.y, line.x], {"beps_loop": good}, {"wait_when_paused": 0}),
    ]
    counts = TraceStore.open(campaign.store_path, "r").counts()
    for words, positioners, readers, options in cases:
        try:
            coscope_plan(campaign, positioners, readers, **{**STAGE, **options})
        except ConfigError as exc:
            message = str(exc)
        else:
            pytest.fail(f"no ConfigError for: {words}")
        assert words in message and "\n" not in message and message.endswith("."), message
    assert line.det.triggered == 0 and (line.y.position, line.x.position) == (0.0, 0.0)
    assert TraceStore.open(campaign.store_path, "r").counts() == counts and line.docs == []
    (single,) = line.det.describe()  # a bare device with one key of the right shape is enough
    assert coscope_plan(campaign, [line.y, line.x], {"beps_loop": line.det}) is not None


@pytest.mark.slow
def test_core_packages_do_not_import_bluesky() -> None:
    code = (
        "import sys, coscope, coscope.api, coscope.campaign, coscope.instruments, coscope.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'bluesky', 'ophyd', "
        "'event_model', 'caproto'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
