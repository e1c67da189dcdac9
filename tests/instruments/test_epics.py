"""The ``epics`` instrument kind against a real Channel Access IOC (caproto, on loopback).

Each test starts the simulator IOC (coscope.instruments.epics_ioc) as a subprocess on its
own port: it replays a sample behind motor and waveform PVs with motor moves and
acquisitions that take time. The kind passes the instrument contract; a campaign on it
measures exactly what the twin measures; a NaN, a short waveform, a hung acquisition and a
killed IOC end in a recorded failure and a campaign that resumes to the twin's trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.campaign.test_loop import _run, _spec
from tests.conftest import DATASETS
from tests.epics_support import epics_instrument, simulator, twin_instrument
from tests.instruments.test_plugin_kinds import _coscope_run

from coscope.campaign.failures import FAILED_MEASUREMENT
from coscope.config import load_spec, parse_spec
from coscope.errors import ConfigError, InstrumentTimeout
from coscope.infra.compose import check_spec_fits_sample
from coscope.instruments import build_instrument, build_sample
from coscope.instruments.contract import CHECKS, ContractCase
from coscope.instruments.epics_ioc import free_ca_port, spec_options
from coscope.spaces import PixelGrid
from coscope.storage import TraceStore
from coscope.storage.dataset_readers import import_dataset
from coscope.types import Location, MeasurementRequest

ROOT = Path(__file__).resolve().parents[2]
FILM = {"kind": "synthetic_film", "params": {"size": 12, "n_voltage": 16}}
BEPS = DATASETS / "dtmicroscope-afm" / "BEPS_PTO_50x50.h5"


def _options(**changes):
    return {**spec_options("X:", ["beps_loop"]), **changes}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"positioners": [{"setpoint": "A", "readback": "B"}]}, "one per space coordinate"),
        ({"trigger": "AC QUIRE"}, "PV name"),
        ({"signals": {"raman": {"waveform": "R", "axis": "RA"}}}, "no waveform for"),
        ({"settle_s": -1}, "settle_s"),
        ({"move_timeout_s": 0}, "move_timeout_s"),
        ({"speed": 3}, "invalid options"),
    ],
)
def test_bad_options_are_one_sentence(changes, words) -> None:
    sample = build_sample(FILM["kind"], FILM["params"], 0)
    with pytest.raises(ConfigError, match=words) as caught:
        build_instrument(
            "afm", sample, kind="epics", modalities=["beps_loop"], options=_options(**changes)
        )
    assert "\n" not in str(caught.value) and str(caught.value).endswith(".")


def test_building_does_not_connect() -> None:
    """Constructors are side-effect free: no IOC needed to build (or price) the instrument."""
    sample = build_sample(FILM["kind"], FILM["params"], 0)
    inst = build_instrument("afm", sample, kind="epics", options=_options())
    assert inst.name == "afm" and inst.modalities == ("beps_loop",)


def test_a_pv_that_does_not_connect_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    port = free_ca_port()  # nothing serves here
    options = {**_options(), "connect_timeout_s": 1.0}
    spec = {
        "name": "no-ioc",
        "sample": FILM,
        "instruments": [{"name": "afm", "kind": "epics", "options": options}],
        "run_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "spec.yaml"
    path.write_text(parse_spec(spec).model_dump_json())  # JSON is YAML
    ca = {"EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO"}
    done = _coscope_run(tmp_path, path, env={**ca, "EPICS_CA_SERVER_PORT": str(port)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "X:ROW_RBV" in done.stderr and "did not connect" in done.stderr
    assert not (tmp_path / "run" / "trace.zarr").exists()


@pytest.mark.slow
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_epics_kind_passes_the_contract(check: str) -> None:
    sample = build_sample(FILM["kind"], FILM["params"], 3)
    with simulator(FILM, seed=3) as ioc:
        spec = epics_instrument(ioc)

        def make():
            return build_instrument(
                "afm",
                sample,
                kind="epics",
                modalities=["beps_loop"],
                cost=2.0,
                noise=0.02,
                options=spec["options"],
                travel_cost_per_um=0.5,
            )

        requests = [
            MeasurementRequest(4, "afm", "beps_loop", Location(5, 7), seed=12),
            MeasurementRequest(5, "afm", "beps_loop", Location(11, 0), seed=13),
            MeasurementRequest(6, "afm", "beps_loop", Location(0, 11), 14, {"stage_from": [0, 0]}),
        ]
        CHECKS[check](ContractCase(make, requests, sample.shape))


@pytest.mark.slow
def test_it_measures_what_the_twin_measures_and_moves_take_time() -> None:
    sample = build_sample(FILM["kind"], FILM["params"], 3)
    twin = build_instrument("afm", sample, noise=0.02)
    with simulator(FILM, seed=3, options=["--speed", "20", "--acquire-s", "0.1"]) as ioc:
        options = {**epics_instrument(ioc)["options"], "settle_s": 0.05}
        inst = build_instrument("afm", sample, kind="epics", noise=0.02, options=options)
        check_spec_fits_sample(
            parse_spec({"sample": FILM, "instruments": [epics_instrument(ioc)]}), sample
        )
        for step, (row, col) in enumerate([(0, 0), (11, 11), (3, 8)]):
            request = MeasurementRequest(step, "afm", "beps_loop", Location(row, col), seed=step)
            measured, expected = inst.measure(request), twin.measure(request)
            np.testing.assert_array_equal(measured.signal, expected.signal)
            assert measured.t_end - measured.t_start >= 0.15  # at least settling + acquiring
    grid = PixelGrid(sample.shape, sample.pixel_size_um)
    assert grid.coordinates()[-1].tolist() == [11 * sample.pixel_size_um] * 2  # µm


@pytest.mark.slow
def test_a_stuck_motor_times_out_in_one_sentence() -> None:
    sample = build_sample(FILM["kind"], FILM["params"], 3)
    with simulator(FILM, seed=3, options=["--speed", "0.001"]) as ioc:
        options = {**epics_instrument(ioc)["options"], "move_timeout_s": 0.5}
        inst = build_instrument("afm", sample, kind="epics", options=options)
        request = MeasurementRequest(0, "afm", "beps_loop", Location(11, 11), seed=0)
        with pytest.raises(InstrumentTimeout, match="move_timeout_s") as caught:
            inst.measure(request)
    assert "\n" not in str(caught.value) and caught.value.failure_class == "transient"


def _campaign(tmp_path: Path, instrument: dict, name: str, **changes):
    return _spec(
        tmp_path / name,
        seed=5,
        sample=FILM,
        instruments=[instrument],
        budget={"max_measurements": 8},
        policy={"name": "ei", "n_initial": 3, "fit_iterations": 30},
        **changes,
    )


def _same_trace(a: TraceStore, b: TraceStore) -> None:
    assert [(d.step, d.location) for d in a.decisions()] == [
        (d.step, d.location) for d in b.decisions()
    ]
    ma, mb = a.measurements(), b.measurements()
    assert [m.step for m in ma] == [m.step for m in mb]
    for x, y in zip(ma, mb, strict=True):
        np.testing.assert_array_equal(x.signal, y.signal)


def _failures(store: TraceStore) -> list[dict]:
    return [i.payload for i in store.interventions() if i.kind == FAILED_MEASUREMENT]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "failure_class", "words"),
    [
        ("nan", "bad_measurement", "non-finite"),
        ("short", "bad_measurement", "shape (15,)"),
        ("hang", "transient", "acquire_timeout_s"),
    ],
)
def test_garbage_and_timeouts_are_recorded_and_the_campaign_resumes(
    tmp_path: Path, fault: str, failure_class: str, words: str
) -> None:
    _, twin = _run(_campaign(tmp_path, twin_instrument(), "twin"))
    port = free_ca_port()
    with simulator(
        FILM, seed=5, port=port, options=["--fault", fault, "--fault-after", "4"]
    ) as ioc:
        spec = _campaign(
            tmp_path, epics_instrument(ioc, options={"acquire_timeout_s": 1.0}), "epics"
        )
        outcome, ctx = _run(spec)
    assert outcome.status == "failed" and words in outcome.reason
    store = TraceStore.open(spec.resolved_store(), "r")
    assert store.counts()["measurements"] == 4  # nothing measured is lost
    [failure] = _failures(store)
    assert failure["failure_class"] == failure_class and failure["step"] == 4
    with simulator(FILM, seed=5, port=port):  # the IOC fixed and restarted
        outcome, _ = _run(spec)
    assert outcome.status == "finished"
    _same_trace(TraceStore.open(spec.resolved_store(), "r"), twin.store)


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT / "src")}
    full.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", *args, "--quiet"],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


BEPS_SPEC = """
name: beps-epics
seed: 2
sample: {{kind: dataset, params: {{path: {data}, structure: remanent}}}}
instruments: [{instrument}]
scalarizer: {{name: loop_area, modality: beps_loop}}
policy: {{name: ei, n_initial: 3, fit_iterations: 30}}
budget: {{max_measurements: 10}}
dask_workers: 1
run_dir: {run_dir}
"""


@pytest.fixture(scope="module")
def beps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The BEPS dataset imported once, and the twin campaign on it through `coscope run`."""
    if not BEPS.is_file():
        pytest.skip("shared datasets folder is absent")
    folder = tmp_path_factory.mktemp("beps")
    import_dataset(BEPS, folder / "beps.zarr")
    _write(folder, "twin", twin_instrument())
    proc = _cli("run", str(folder / "twin.yaml"), env={}, cwd=folder)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return folder


def _write(folder: Path, name: str, instrument: dict) -> Path:
    text = BEPS_SPEC.format(
        data=folder / "beps.zarr", instrument=json.dumps(instrument), run_dir=folder / name
    )
    (folder / f"{name}.yaml").write_text(text)
    return folder / name / "trace.zarr"


def _beps_sample(folder: Path) -> dict:
    return {"kind": "dataset", "params": {"path": str(folder / "beps.zarr")}}


@pytest.mark.slow
@pytest.mark.xdist_group("engines")
def test_coscope_run_on_the_ioc_equals_the_twin_campaign(beps: Path) -> None:
    with simulator(_beps_sample(beps)) as ioc:
        store = _write(beps, "epics", epics_instrument(ioc))
        proc = _cli("run", str(beps / "epics.yaml"), env=ioc.env, cwd=beps)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    epics = TraceStore.open(store, "r")
    assert epics.get_attr("status") == "finished" and epics.counts()["measurements"] == 10
    _same_trace(epics, TraceStore.open(beps / "twin" / "trace.zarr", "r"))


@pytest.mark.slow
def test_the_beps_epics_example_runs_as_it_is(beps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/beps_epics.yaml (budget cut to 8) against the simulator it names (SIM:)."""
    spec = load_spec(ROOT / "examples" / "beps_epics.yaml", {"run_dir": str(beps / "example")})
    sample = {**spec.sample.params, "path": str(beps / "beps.zarr")}
    spec = spec.model_copy(
        update={
            "sample": type(spec.sample)(kind="dataset", params=sample),
            "budget": type(spec.budget)(max_measurements=8),
        }
    )
    with simulator({"kind": "dataset", "params": sample}, prefix="SIM:"):
        outcome, ctx = _run(spec)
    assert outcome.status == "finished" and outcome.n_measurements == 8
    truth = ctx.sample.truth["beps_loop"]
    for m in ctx.store.measurements():  # noise 0: the recorded loops, exactly
        np.testing.assert_array_equal(m.signal, truth[m.location.row, m.location.col])


@pytest.mark.slow
@pytest.mark.xdist_group("engines")
def test_a_killed_ioc_fails_the_campaign_and_resume_finishes_it(beps: Path) -> None:
    port = free_ca_port()
    slow = ["--acquire-s", "0.3"]
    with simulator(_beps_sample(beps), port=port, options=slow) as ioc:
        store = _write(beps, "killed", epics_instrument(ioc))
        proc = _cli("run", str(beps / "killed.yaml"), env=ioc.env, cwd=beps)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                if TraceStore.open(store, "r").counts()["measurements"] >= 3:
                    break
            except Exception:  # noqa: BLE001 - not created yet
                pass
            time.sleep(0.05)
        ioc.process.kill()  # the IOC dies mid-campaign
        _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0 or "failed" in err
    killed = TraceStore.open(store, "r")
    assert killed.get_attr("status") == "failed"
    measured = killed.counts()["measurements"]
    assert 3 <= measured < 10
    assert [f["failure_class"] for f in _failures(killed)] == ["instrument_down"]
    with simulator(_beps_sample(beps), port=port, options=slow) as ioc:  # restarted
        proc = _cli("resume", str(store), env=ioc.env, cwd=beps)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    resumed = TraceStore.open(store, "r")
    assert resumed.get_attr("status") == "finished" and resumed.counts()["measurements"] == 10
    _same_trace(resumed, TraceStore.open(beps / "twin" / "trace.zarr", "r"))
