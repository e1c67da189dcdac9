"""The ``dataset`` sample kind: a recorded dataset replayed by the ordinary instrument stack."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DATASETS

from coscope.errors import ConfigError, InstrumentError
from coscope.infra.compose import sample_from_spec
from coscope.instruments import Instrument, build_instrument, build_sample
from coscope.storage.dataset_readers import import_dataset
from coscope.storage.datasets import Dataset, write_dataset
from coscope.types import Location, MeasurementRequest, ModalityInfo

BEPS = DATASETS / "dtmicroscope-afm" / "BEPS_PTO_50x50.h5"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "beps_twin.yaml"


def _dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    voltage = np.concatenate([np.linspace(0, 5, 5), np.linspace(5, -5, 9)[1:], [-2.5]])
    return Dataset(
        name="rec",
        source="test",
        structure={"pfm": rng.normal(size=(7, 9)), "height": rng.normal(size=(7, 9))},
        modalities={"beps_loop": ModalityInfo("beps_loop", voltage, "voltage", "V", "a.u.")},
        signals={"beps_loop": rng.normal(size=(7, 9, voltage.size))},
        pixel_size_um=0.1,
    )


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Dataset]:
    ds = _dataset()
    return write_dataset(ds, tmp_path / "rec.zarr"), ds


def _request(loc: Location, step: int = 3, modality: str = "beps_loop") -> MeasurementRequest:
    return MeasurementRequest(step, "twin", modality, loc, seed=99)


def test_sample_carries_the_recording(recorded: tuple[Path, Dataset]) -> None:
    path, ds = recorded
    sample = build_sample("dataset", {"path": str(path)}, seed=5)
    assert sample.name == "rec" and sample.shape == (7, 9) and sample.pixel_size_um == 0.1
    np.testing.assert_array_equal(sample.structure, ds.structure["pfm"])  # first channel
    np.testing.assert_array_equal(sample.truth["beps_loop"], ds.signals["beps_loop"])
    other = build_sample("dataset", {"path": str(path), "structure": "height", "name": "x"}, 0)
    assert other.name == "x"
    np.testing.assert_array_equal(other.structure, ds.structure["height"])
    assert not sample.truth["beps_loop"].flags.writeable  # shared from the cache, read-only


def test_twin_satisfies_the_protocol_and_replays(recorded: tuple[Path, Dataset]) -> None:
    path, ds = recorded
    sample = build_sample("dataset", {"path": str(path)}, seed=0)
    exact = build_instrument("twin", sample, cost=2.0)
    noisy = build_instrument("twin", sample, noise=0.01, latency_s=0.001, cost=2.0)
    for inst in (exact, noisy):
        assert isinstance(inst, Instrument) and inst.modalities == ("beps_loop",)
        np.testing.assert_array_equal(inst.info("beps_loop").axis, ds.modalities["beps_loop"].axis)
    loc = Location(4, 6)
    recorded_loop = ds.signals["beps_loop"][4, 6]
    m = exact.measure(_request(loc))
    assert (m.step, m.instrument, m.location, m.cost) == (3, "twin", loc, 2.0)
    np.testing.assert_array_equal(m.signal, recorded_loop)  # noise 0: exactly the recording
    n1, n2 = noisy.measure(_request(loc)), noisy.measure(_request(loc))
    np.testing.assert_array_equal(n1.signal, n2.signal)  # same request seed, same noise
    spread = np.ptp(recorded_loop)
    assert 0 < np.max(np.abs(n1.signal - recorded_loop)) < 0.1 * spread
    assert n1.t_end - n1.t_start >= 0.001
    with pytest.raises(InstrumentError, match="off the sample"):
        exact.measure(_request(Location(7, 0)))
    with pytest.raises(InstrumentError, match="not offered"):
        exact.measure(_request(loc, modality="raman"))


def test_cache_follows_a_rewritten_dataset(recorded: tuple[Path, Dataset]) -> None:
    path, _ = recorded
    first = build_sample("dataset", {"path": str(path)}, seed=0)
    assert (
        build_sample("dataset", {"path": str(path)}, seed=1).truth["beps_loop"]
        is (first.truth["beps_loop"])
    )
    shutil.rmtree(path)
    newer = _dataset(seed=1)
    write_dataset(newer, path)
    again = build_sample("dataset", {"path": str(path)}, seed=0)
    np.testing.assert_array_equal(again.truth["beps_loop"], newer.signals["beps_loop"])


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"path": "nowhere/rec.zarr"}, ["'sample.params'", "nowhere/rec.zarr", "dataset import"]),
        ({"path": "REC", "structure": "topo"}, ["structure='topo'", "'pfm'", "'height'"]),
        ({"path": "REC", "nope": 1}, ["'sample.params'", "valid parameters", "path"]),
    ],
)
def test_bad_params_are_config_errors(
    recorded: tuple[Path, Dataset], params: dict, fragments: list[str]
) -> None:
    path, _ = recorded
    params = {k: (str(path) if v == "REC" else v) for k, v in params.items()}
    with pytest.raises(ConfigError) as error:
        sample_from_spec({"kind": "dataset", "params": params}, seed=0)
    message = str(error.value)
    assert message.startswith("invalid campaign spec: ") and message.endswith(".")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_not_a_dataset_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="not a coscope dataset"):
        sample_from_spec({"kind": "dataset", "params": {"path": str(tmp_path / "plain")}}, 0)


@pytest.mark.skipif(not BEPS.is_file(), reason="shared datasets folder is absent")
def test_beps_twin_example_runs(tmp_path: Path) -> None:
    """examples/beps_twin.yaml on the real BEPS data (imported to tmp), 8 measurements."""
    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.config import load_spec
    from coscope.infra.compose import create_or_open_store, instruments_from_spec, open_context

    data = tmp_path / "beps_pto.zarr"
    import_dataset(BEPS, data)
    spec = load_spec(EXAMPLE, {"run_dir": str(tmp_path / "run"), "time_scale": 0.0})
    assert spec.sample.kind == "dataset"
    sample_spec = {"kind": "dataset", "params": {**spec.sample.params, "path": str(data)}}
    budget = {"max_measurements": 8, "max_cost": spec.budget.max_cost}
    spec = spec.model_copy(
        update={
            "sample": type(spec.sample)(**sample_spec),
            "budget": type(spec.budget)(**budget),
        }
    )
    sample = sample_from_spec(spec.sample, spec.seed)
    assert sample.shape == (50, 50)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    ctx.store.close()
    assert outcome.status == "finished" and outcome.n_measurements == 8
    measured = ctx.store.measurements()
    assert len({m.location for m in measured}) == 8
    for m in measured:  # noise 0 in the example: the recorded loops, exactly
        np.testing.assert_array_equal(
            m.signal, sample.truth["beps_loop"][m.location.row, m.location.col]
        )
