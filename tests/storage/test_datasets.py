"""Ground-truth datasets: round trip, every bad input refused whole, real files, plain zarr, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr

from coscope.cli import main
from coscope.errors import DatasetError
from coscope.scalarizers import scalarize
from coscope.storage.dataset_readers import import_dataset, read_arrays, read_beps_h5
from coscope.storage.datasets import Dataset, load_dataset, write_dataset
from coscope.types import ModalityInfo
from tests.conftest import DATASETS

AFM = DATASETS / "dtmicroscope-afm"
needs_data = pytest.mark.skipif(not AFM.is_dir(), reason="shared datasets folder is absent")


def make_dataset(h: int = 6, w: int = 5, length: int = 8, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1.0, 1.0, length)
    return Dataset(
        name="toy",
        source="test",
        structure={"height": rng.normal(size=(h, w)), "phase": rng.normal(size=(h, w))},
        modalities={"raman": ModalityInfo("raman", axis, "wavenumber", "1/cm", "counts")},
        signals={"raman": rng.normal(size=(h, w, length))},
        pixel_size_um=0.25,
        units={"height": "m"},
    )


def assert_one_sentence(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and message.endswith(".")
    for fragment in fragments:
        assert fragment in message, message


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_round_trip_is_exact(tmp_path: Path) -> None:
    ds = make_dataset()
    write_dataset(ds, tmp_path / "toy.zarr")
    back = load_dataset(tmp_path / "toy.zarr")
    assert (back.name, back.source, back.pixel_size_um, back.shape) == ("toy", "test", 0.25, (6, 5))
    assert list(back.structure) == ["height", "phase"]
    for key in ds.structure:
        np.testing.assert_array_equal(back.structure[key], ds.structure[key])
    np.testing.assert_array_equal(back.signals["raman"], ds.signals["raman"])
    info = back.modalities["raman"]
    assert (info.axis_name, info.axis_units, info.signal_units) == ("wavenumber", "1/cm", "counts")
    np.testing.assert_array_equal(info.axis, ds.modalities["raman"].axis)
    assert back.units == {"height": "m", "phase": ""}
    assert leftovers(tmp_path) == ["toy.zarr"]  # no temp folder left beside it


def test_plain_zarr_reads_the_documented_layout(tmp_path: Path) -> None:
    ds = make_dataset()
    write_dataset(ds, tmp_path / "toy.zarr")
    root = zarr.open_group(tmp_path / "toy.zarr", mode="r")
    attrs = dict(root.attrs)
    assert attrs["coscope_dataset"] == 1 and attrs["shape"] == [6, 5]
    assert attrs["structure_channels"] == ["height", "phase"]
    assert attrs["modalities"] == [
        {"name": "raman", "axis_name": "wavenumber", "axis_units": "1/cm", "signal_units": "counts"}
    ]
    signal = root["signals/raman/signal"]
    assert signal.shape == (6, 5, 8) and signal.dtype == np.float64
    assert signal.metadata.dimension_names == ("row", "col", "wavenumber")
    np.testing.assert_array_equal(signal[2, 3], ds.signals["raman"][2, 3])
    np.testing.assert_array_equal(root["signals/raman/wavenumber"][:], np.linspace(-1, 1, 8))
    assert root["structure/height"].shape == (6, 5)
    assert root["structure/height"].attrs["units"] == "m"


BAD = {
    "mismatched channel": lambda d: replace(
        d, structure={**d.structure, "phase": np.zeros((6, 4))}
    ),
    "mismatched signal": lambda d: replace(d, signals={"raman": np.zeros((6, 4, 8))}),
    "axis length": lambda d: replace(
        d, modalities={"raman": replace(d.modalities["raman"], axis=np.arange(7.0))}
    ),
    "nan signal": lambda d: replace(
        d, signals={"raman": np.where(np.eye(6, 5)[..., None] > 0, np.nan, d.signals["raman"])}
    ),
    "inf structure": lambda d: replace(
        d, structure={**d.structure, "height": np.full((6, 5), np.inf)}
    ),
    "no structure": lambda d: replace(d, structure={}),
    "missing signal": lambda d: replace(d, signals={}),
    "slash in name": lambda d: replace(d, structure={"a/b": d.structure["height"]}),
    "pixel size": lambda d: replace(d, pixel_size_um=0.0),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_dataset_is_refused_and_nothing_written(tmp_path: Path, case: str) -> None:
    with pytest.raises(DatasetError) as error:
        write_dataset(BAD[case](make_dataset()), tmp_path / "out" / "toy.zarr")
    assert_one_sentence(error)
    assert leftovers(tmp_path / "out") == []


def test_existing_path_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "toy.zarr").mkdir()
    (tmp_path / "toy.zarr" / "mine.txt").write_text("keep")
    with pytest.raises(DatasetError) as error:
        write_dataset(make_dataset(), tmp_path / "toy.zarr")
    assert_one_sentence(error, "already exists")
    assert leftovers(tmp_path) == ["toy.zarr"]
    assert leftovers(tmp_path / "toy.zarr") == ["mine.txt"]


def test_load_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path / "missing.zarr")
    assert_one_sentence(error, "no dataset at", "coscope dataset import")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path / "empty")
    assert_one_sentence(error, "not a coscope dataset")
    zarr.open_group(tmp_path / "other.zarr", mode="w", zarr_format=3, attributes={"x": 1})
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path / "other.zarr")
    assert_one_sentence(error, "not a coscope dataset")


def test_corrupt_datasets_are_one_sentence(tmp_path: Path) -> None:
    path = write_dataset(make_dataset(), tmp_path / "a.zarr")
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert_one_sentence(error, "corrupt", "zarr.json")

    path = write_dataset(make_dataset(), tmp_path / "b.zarr")
    for chunk in (path / "signals" / "raman" / "signal" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"garbage")
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert_one_sentence(error, "corrupt")

    path = write_dataset(make_dataset(), tmp_path / "c.zarr")
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["structure_channels"] = ["height", "gone"]
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert_one_sentence(error, "corrupt")


def test_npz_import(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image, spectra, axis = rng.normal(size=(4, 7)), rng.normal(size=(4, 7, 12)), np.arange(12.0)
    np.savez(tmp_path / "mine.npz", image=image, spectra=spectra, axis=axis)
    import_dataset(
        tmp_path / "mine.npz", tmp_path / "mine.zarr", modality="pl", axis_name="wavelength"
    )
    ds = load_dataset(tmp_path / "mine.zarr")
    assert ds.name == "mine" and ds.shape == (4, 7) and list(ds.structure) == ["image"]
    np.testing.assert_array_equal(ds.signals["pl"], spectra)
    assert ds.modalities["pl"].axis_name == "wavelength"


@pytest.mark.parametrize(
    ("arrays", "fragments"),
    [
        ({"image": np.zeros((4, 7)), "spectra": np.zeros((4, 6, 3))}, ["'spectra'", "(4, 7, L)"]),
        ({"image": np.zeros((4, 7)), "spectra": np.zeros((4, 7, 3))}, ["'axis' is missing"]),
        (
            {"image": np.zeros((4, 7)), "spectra": np.zeros((4, 7, 3)), "axis": np.arange(4.0)},
            ["'axis'", "(4,)", "(3,)"],
        ),
        ({"image": np.full((4, 7), np.nan)}, ["'image'", "28 NaN"]),
        ({"image": np.zeros(5)}, ["'image'", "(5,)"]),
        ({"spectra": np.zeros((4, 7, 3))}, ["no 'image'"]),
        ({"image": np.zeros((4, 7)), "extra": np.zeros(3)}, ["unexpected", "extra"]),
    ],
)
def test_bad_arrays_are_refused_and_nothing_written(
    tmp_path: Path, arrays: dict, fragments: list[str]
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as error:
        import_dataset(tmp_path / "bad.npz", tmp_path / "out" / "bad.zarr")
    assert_one_sentence(error, *fragments)
    assert leftovers(tmp_path / "out") == []


def test_read_arrays_from_npy_paths(tmp_path: Path) -> None:
    np.save(tmp_path / "img.npy", np.ones((3, 3)))
    ds = read_arrays(image=tmp_path / "img.npy", name="flat")
    assert ds.shape == (3, 3) and ds.modalities == {}
    with pytest.raises(DatasetError) as error:
        read_arrays(image=tmp_path / "nope.npy")
    assert_one_sentence(error, "'image'", "no file")


@needs_data
def test_real_beps_import() -> None:
    ds = read_beps_h5(AFM / "BEPS_PTO_50x50.h5")
    loops, info = ds.signals["beps_loop"], ds.modalities["beps_loop"]
    assert loops.shape == (50, 50, 64) and info.length == 64
    assert (info.axis_name, info.axis_units) == ("voltage", "V")
    assert info.axis.max() == pytest.approx(8.5, abs=0.05)
    assert info.axis.min() == pytest.approx(-8.5, abs=0.05)
    assert info.axis[0] == 0.0 and int(np.argmax(info.axis)) == 16  # 0 → +8.5 → 0 → −8.5 → 0
    assert ds.pixel_size_um == pytest.approx(2.0 / 49)
    assert list(ds.structure) == ["remanent", "loop_mean"]
    for image in ds.structure.values():
        assert image.shape == (50, 50) and np.isfinite(image).all()
    r, c = 17, 31
    expected = scalarize("remanent", loops[r, c], info.axis)
    assert ds.structure["remanent"][r, c] == pytest.approx(expected)


@needs_data
def test_real_pfm_import_with_signal_channels(tmp_path: Path) -> None:
    ds = import_dataset(
        AFM / "PZT_thick0009.h5", tmp_path / "pzt.zarr", signal_channels=["AmplitudeRetrace"]
    )
    back = load_dataset(tmp_path / "pzt.zarr")
    assert back.shape == ds.shape == (256, 128)
    assert list(back.structure)[:2] == ["HeightRetrace", "NapAmplitudeRetrace"]
    assert len(back.structure) == 7 and back.units["HeightRetrace"] == "m"
    amplitude = back.signals["AmplitudeRetrace"]
    assert amplitude.shape == (256, 128, 1) and np.isfinite(amplitude).all()
    assert back.modalities["AmplitudeRetrace"].axis_name == "point"
    assert back.pixel_size_um == pytest.approx(1.0 / 255)


def test_cli_import_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    np.savez(
        tmp_path / "grid.npz",
        image=rng.normal(size=(5, 6)),
        spectra=rng.normal(size=(5, 6, 9)),
        axis=np.linspace(0.0, 4.0, 9),
    )
    out = tmp_path / "grid.zarr"
    argv = ["dataset", "import", str(tmp_path / "grid.npz"), "--out", str(out)]
    assert main([*argv, "--name", "g", "--axis-name", "energy", "--axis-units", "eV"]) == 0
    assert "dataset 'g'" in capsys.readouterr().out
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 x 6 pixels" in text and "spectrum" in text and "L=9" in text
    assert "energy 0 .. 4 eV" in text

    assert main(argv) == 2  # existing --out
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert main(["dataset", "info", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: no dataset at")
    (tmp_path / "x.txt").write_text("x")
    assert main(["dataset", "import", str(tmp_path / "x.txt"), "--out", str(tmp_path / "y")]) == 2
    assert "--format" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@needs_data
def test_cli_imports_real_beps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "beps.zarr"
    assert main(["dataset", "import", str(AFM / "BEPS_PTO_50x50.h5"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "50 x 50 pixels" in text and "beps_loop" in text and "L=64" in text
    assert "voltage -8.5 .. 8.5 V" in text
