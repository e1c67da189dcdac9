"""Contract tests of TraceStore: round trips, rejected input, open errors, plain readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from coscope.errors import StoreError
from coscope.storage import TraceStore
from coscope.types import SCHEMA_VERSION, FitRecord, Intervention, Location, Measurement

from .conftest import SAMPLE_SHAPE, create, make_modalities, measurement, proposal


def _fill(store: TraceStore, n: int = 6) -> list[Measurement]:
    """Decisions 0..n-1 alternating modalities; measure all but the last."""
    mods = make_modalities()
    out = []
    for k in range(n):
        p = proposal(k, "beps_loop" if k % 3 else "theory:lgd")
        store.append_decision(p)
        if k < n - 1:
            m = measurement(p, mods[p.modality].length)
            store.append_measurement(m)
            out.append(m)
    return out


def _same_measurements(got: list[Measurement], want: list[Measurement]) -> None:
    assert [repr(m) for m in got] == [repr(m) for m in want]
    for g, w in zip(got, want, strict=True):
        assert g.signal.dtype == np.float64
        np.testing.assert_array_equal(g.signal, w.signal)


def test_round_trip_every_record_type(store: TraceStore, tmp_path: Path) -> None:
    measured = _fill(store)
    fit = FitRecord(0, 5, 5, -1.25, 0.3, {"lengthscale": [0.5, 0.7], "noise": np.float32(0.01)})
    iv = Intervention("policy", {"policy": "ucb", "beta": 2.0}, 4, "ana", "explore more", 1.7e9)
    store.append_fit(fit)
    store.append_intervention(iv)
    store.set_attr("status", "running")
    store.close()

    for mode in ("r", "a"):
        with TraceStore.open(tmp_path / "trace.zarr", mode) as s:
            assert [repr(p) for p in s.decisions()] == [
                repr(proposal(k, p.modality)) for k, p in enumerate(s.decisions())
            ]
            _same_measurements(s.measurements(), measured)
            _same_measurements(
                s.measurements("theory:lgd"), [m for m in measured if m.modality == "theory:lgd"]
            )
            (got_fit,) = s.fits()
            assert got_fit.hyperparameters == {
                "lengthscale": [0.5, 0.7],
                "noise": pytest.approx(0.01),
            }
            assert (got_fit.version, got_fit.step, got_fit.loss) == (0, 5, -1.25)
            assert s.interventions() == [iv]
            assert s.counts() == {"decisions": 6, "measurements": 5, "fits": 1, "interventions": 1}
            assert s.measured_steps() == {0, 1, 2, 3, 4}
            assert [p.step for p in s.pending_decisions()] == [5]
            assert s.campaign["spec"] == {"budget": 10.0, "tags": ["a", "b"]}
            assert s.sample_shape == SAMPLE_SHAPE
            assert s.get_attr("status") == "running" and s.get_attr("nope", 3) == 3
            for name, info in make_modalities().items():
                got = s.modalities[name]
                np.testing.assert_array_equal(got.axis, info.axis)
                assert (got.axis_name, got.axis_units, got.signal_units) == (
                    info.axis_name,
                    info.axis_units,
                    info.signal_units,
                )


def test_decisions_round_trip_exactly(store: TraceStore) -> None:
    want = [proposal(k, "theory:lgd" if k == 2 else "beps_loop") for k in (0, 2, 5)]
    for p in want:
        store.append_decision(p)
    assert [repr(p) for p in store.decisions()] == [repr(p) for p in want]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()
    }


@pytest.mark.parametrize(
    "bad",
    [
        "duplicate_step",
        "signal_shape",
        "signal_nan",
        "no_decision",
        "decision_not_increasing",
        "unknown_modality",
        "outside_grid",
        "payload_not_json",
        "signal_2d",
    ],
)
def test_invalid_input_is_rejected_and_changes_nothing(store: TraceStore, bad: str) -> None:
    _fill(store, 3)  # steps 0,1,2 decided; 0,1 measured
    before = _snapshot(store.path)
    mods = make_modalities()
    m2 = measurement(proposal(2, "beps_loop"), 64)
    cases = {
        "duplicate_step": lambda: store.append_measurement(measurement(proposal(1), 64)),
        "signal_shape": lambda: store.append_measurement(
            Measurement(2, "i", "beps_loop", Location(0, 0), np.zeros(63))
        ),
        "signal_2d": lambda: store.append_measurement(
            Measurement(2, "i", "beps_loop", Location(0, 0), np.zeros((64, 1)))
        ),
        "signal_nan": lambda: store.append_measurement(
            Measurement(2, "i", "beps_loop", Location(0, 0), np.r_[np.zeros(63), np.nan])
        ),
        "no_decision": lambda: store.append_measurement(measurement(proposal(9), 64)),
        "decision_not_increasing": lambda: store.append_decision(proposal(2)),
        "unknown_modality": lambda: store.append_decision(proposal(3, "raman")),
        "outside_grid": lambda: store.append_decision(
            proposal(3).__class__(3, "i", "beps_loop", Location(SAMPLE_SHAPE[0], 0), "ei")
        ),
        "payload_not_json": lambda: store.append_intervention(Intervention("x", {"f": object()})),
    }
    with pytest.raises(StoreError):
        cases[bad]()
    assert _snapshot(store.path) == before
    assert store.counts()["measurements"] == 2 and store.counts()["decisions"] == 3
    store.append_measurement(m2)  # the store still works
    assert store.measured_steps() == {0, 1, 2}
    assert len(mods) == 2


def test_read_only_handle_refuses_writes(store: TraceStore) -> None:
    _fill(store, 2)
    reader = TraceStore.open(store.path, "r")
    with pytest.raises(StoreError, match="read-only"):
        reader.append_decision(proposal(5))
    with pytest.raises(StoreError, match="read-only"):
        reader.set_attr("status", "stopped")


def test_create_refuses_existing(tmp_path: Path) -> None:
    create(tmp_path / "t").close()
    with pytest.raises(StoreError, match="already exists"):
        create(tmp_path / "t")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        create(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    # no temp leftovers; t.token: the campaign's owner-only token (docs/faults-and-security.md)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "t", "t.token"]


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no experimental trace at .*coscope run SPEC"):
        TraceStore.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a coscope experimental trace"):
        TraceStore.open(tmp_path / "plain")
    zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=3)
    with pytest.raises(StoreError, match="not a coscope experimental trace"):
        TraceStore.open(tmp_path / "foreign.zarr")


def test_corrupt_metadata_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t"
    with create(path) as s:
        _fill(s, 3)
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt: zarr.json cannot be read"):
        TraceStore.open(path)
    path2 = tmp_path / "t2"
    with create(path2) as s:
        _fill(s, 3)
    (path2 / "measurements" / "cost" / "zarr.json").write_text('{"shape": ')
    with pytest.raises(StoreError, match="corrupt"):
        TraceStore.open(path2, "a")


def test_future_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t"
    create(path).close()
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["schema_version"] = SCHEMA_VERSION + 1
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="newer than this coscope supports"):
        TraceStore.open(path)


def test_single_writer_lock(store: TraceStore) -> None:
    with pytest.raises(StoreError, match="already open for writing"):
        TraceStore.open(store.path, "a")
    TraceStore.open(store.path, "r").counts()  # readers are welcome
    store.close()
    TraceStore.open(store.path, "a").close()


def test_torn_append_is_repaired(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer dying between the rows and the commit leaves nothing visible."""
    measured = _fill(store, 4)
    p = proposal(4)
    store.append_decision(p)
    reader = TraceStore.open(store.path, "r")

    def die(**_: object) -> None:
        raise KeyboardInterrupt  # not an Exception: no in-process rollback, like a kill

    monkeypatch.setattr(store, "_write_root", die)
    with pytest.raises(KeyboardInterrupt):
        store.append_measurement(measurement(p, 64))
    _same_measurements(reader.measurements(), measured)  # a reader sees the committed prefix
    assert zarr.open_group(store.path, mode="r")["measurements/step"].shape[0] > len(measured)
    store._lock.close()  # the "dead" writer's lock goes away with its process
    with TraceStore.open(store.path, "a") as s:
        assert s.counts()["measurements"] == len(measured)
        assert [q.step for q in s.pending_decisions()] == [3, 4]
        s.append_measurement(measurement(p, 64))
        _same_measurements(s.measurements(), [*measured, measurement(p, 64)])
    group = zarr.open_group(store.path, mode="r")
    assert group["measurements/step"].shape == (len(measured) + 1,)


def test_plain_zarr_and_xarray_read_the_documented_layout(store: TraceStore) -> None:
    measured = _fill(store, 7)
    store.append_intervention(Intervention("pause", {"why": "lunch"}, 3, "bo"))
    decisions = store.decisions()
    store.close()
    root = zarr.open_group(store.path, mode="r")
    assert root.attrs["schema_version"] == SCHEMA_VERSION
    assert root.attrs["counts"]["measurements"] == len(measured)
    np.testing.assert_array_equal(root["decisions/step"][:], [p.step for p in decisions])
    assert list(root["decisions/policy"][:]) == [p.policy for p in decisions]
    np.testing.assert_array_equal(root["decisions/score"][:], [p.score for p in decisions])
    assert json.loads(str(root["interventions/payload"][:][0])) == {"why": "lunch"}
    assert root["measurements/step"].metadata.dimension_names == ("measurement",)

    ds = xr.open_zarr(store.path, group="measurements", consolidated=False, decode_times=False)
    assert list(ds.modality.values) == [m.modality for m in measured]
    np.testing.assert_array_equal(ds.step.values, [m.step for m in measured])
    np.testing.assert_array_equal(ds.t_end.values, [m.t_end for m in measured])
    times = xr.open_zarr(store.path, group="measurements", consolidated=False).t_start.values
    assert times.dtype.kind == "M"  # CF units: xarray decodes Unix seconds to datetimes
    sig = xr.open_zarr(store.path, group="signals/beps_loop", consolidated=False)
    beps = [m for m in measured if m.modality == "beps_loop"]
    assert sig.signal.dims == ("step", "voltage") and sig.signal.attrs["units"] == "a.u."
    np.testing.assert_array_equal(sig.step.values, [m.step for m in beps])
    np.testing.assert_array_equal(sig.voltage.values, make_modalities()["beps_loop"].axis)
    for m in beps:
        np.testing.assert_array_equal(sig.signal.sel(step=m.step).values, m.signal)


def test_decision_params_round_trip_into_the_request(store: TraceStore) -> None:
    from dataclasses import replace

    from coscope.types import MeasurementRequest

    theta = {"theta": {"alpha": -1.5, "gamma": 0.2}, "fidelity": 64}
    store.append_decision(replace(proposal(0), params=theta))
    store.append_decision(proposal(1))
    first, second = store.decisions()
    assert first.params == theta and second.params == {}
    assert MeasurementRequest.from_proposal(first, campaign_seed=3).params == theta
    with pytest.raises(StoreError, match="Proposal.params must be a dict"):
        store.append_decision(replace(proposal(2), params=[1, 2]))  # type: ignore[arg-type]
    assert store.counts()["decisions"] == 2


def test_version_1_trace_reads_and_upgrades_in_place(tmp_path: Path) -> None:
    import json
    import shutil

    path = tmp_path / "old.zarr"
    with create(path) as store:
        for step in range(3):
            store.append_decision(proposal(step))
    # make it a version-1 trace: no decisions/params column, schema_version 1
    shutil.rmtree(path / "decisions" / "params")
    root = json.loads((path / "zarr.json").read_text())
    root["attributes"]["schema_version"] = 1
    (path / "zarr.json").write_text(json.dumps(root))

    reader = TraceStore.open(path, mode="r")
    assert [p.step for p in reader.decisions()] == [0, 1, 2]
    assert all(p.params == {} for p in reader.decisions())
    with TraceStore.open(path, mode="a") as writer:  # upgrades, keeps every row
        assert [p.step for p in writer.decisions()] == [0, 1, 2]
        writer.append_decision(proposal(3))
    upgraded = TraceStore.open(path, mode="r")
    assert json.loads((path / "zarr.json").read_text())["attributes"]["schema_version"] == 3
    assert [p.step for p in upgraded.decisions()] == [0, 1, 2, 3]
    assert upgraded.decisions()[1] == proposal(1)  # (step 0 has a NaN score)


def test_effective_campaign_applies_the_overrides_of_later_runs(store: TraceStore) -> None:
    created = store.campaign
    assert store.effective_campaign() == created
    store.set_attr("overrides", {"budget": {"max_measurements": 99}})
    assert store.effective_campaign() == {**created, "budget": {"max_measurements": 99}}
    assert store.campaign == created  # the description given at creation is kept
