"""Table (CSV) and mask imports, and masks in the spec: good input works, bad input is one
sentence and writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.cli import main
from coscope.config import parse_spec
from coscope.errors import ConfigError, DatasetError
from coscope.infra.compose import sample_from_spec, space_from_spec
from coscope.instruments import build_sample
from coscope.spaces import CandidateTable, MaskedGrid
from coscope.storage.dataset_readers import import_dataset
from coscope.storage.datasets import load_dataset
from coscope.types import Location

CSV = "a,b,c,y1,y2\n0.1,1,10,5,-1\n0.2,2,30,6,-2\n0.3,4,20,7,-3\n"


def _one_sentence(exc: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.endswith("."), message
    for fragment in fragments:
        assert fragment in message, message


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_table_import_round_trip_and_sample(tmp_path: Path) -> None:
    out = tmp_path / "t.zarr"
    argv = ["dataset", "import", str(_write(tmp_path, CSV)), "--format", "table"]
    assert main([*argv, "--features", "a,b,c", "--targets", "y1,y2", "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert ds.shape == (3, 1) and list(ds.structure) == ["a", "b", "c"]
    assert ds.space == {"kind": "table", "features": ["a", "b", "c"], "targets": ["y1", "y2"]}
    np.testing.assert_array_equal(ds.signals["targets"][:, 0, :], [[5, -1], [6, -2], [7, -3]])
    sample = build_sample("dataset", {"path": str(out)}, 0)
    space = space_from_spec({"kind": "dataset", "params": {"path": str(out)}}, sample)
    assert isinstance(space, CandidateTable) and space.names == ("a", "b", "c")
    np.testing.assert_array_equal(space.values[:, 2], [10, 30, 20])
    np.testing.assert_allclose(space.features()[:, 2], [0.0, 1.0, 0.5])
    assert sample.signal("targets", Location(1, 0)).tolist() == [6.0, -2.0]


@pytest.mark.parametrize(
    ("text", "features", "targets", "fragments"),
    [
        (CSV, "a,d", "y1", ("['d']", "its columns are")),  # unknown column
        (CSV.replace("0.2,2,30", "0.2,nan,30"), "a,b", "y1", ("'b' at line 3", "finite")),
        (CSV.replace("0.2,2,30", "0.2,,30"), "a,b", "y1", ("'b' at line 3",)),  # empty cell
        (CSV.replace("0.3,4,20,7,-3", "0.3,4,20,7"), "a", "y1", ("line 4", "fields")),  # ragged
        ("a,b,y\n", "a", "y", ("0 data rows",)),  # header only
        (CSV, "a,a", "y1", ("repeat",)),
        (CSV, "a", "", ("--targets",)),
    ],
)
def test_bad_tables_are_one_sentence_and_write_nothing(
    tmp_path: Path, text: str, features: str, targets: str, fragments: tuple[str, ...]
) -> None:
    out = tmp_path / "out" / "t.zarr"
    with pytest.raises(DatasetError) as exc:
        import_dataset(_write(tmp_path, text), out, fmt="table", features=features, targets=targets)
    _one_sentence(exc, *fragments)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_table_options_on_another_format_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.ones((3, 3)))
    with pytest.raises(DatasetError) as exc:
        import_dataset(tmp_path / "m.npy", tmp_path / "x.zarr", fmt="mask", features="a")
    _one_sentence(exc, "--format table")
    assert not (tmp_path / "x.zarr").exists()


def test_cli_reports_a_bad_table_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, CSV)
    argv = ["dataset", "import", str(src), "--features", "a,zz", "--targets", "y1"]
    assert main([*argv, "--out", str(tmp_path / "t.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "zz" in err and "\n" not in err
    assert not (tmp_path / "t.zarr").exists()


def test_mask_import_npy_png_and_use_in_a_spec(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    mask = np.zeros((12, 12))
    mask[2:9, 3:10] = 1
    np.save(tmp_path / "m.npy", mask)
    mpimg.imsave(tmp_path / "m.png", np.stack([mask] * 3, axis=-1))
    assert main(["dataset", "import", str(tmp_path / "m.npy"), "--format", "mask", "--out",
                 str(tmp_path / "m.zarr")]) == 0  # fmt: skip
    assert load_dataset(tmp_path / "m.zarr").space == {"kind": "mask"}
    for file in ("m.npy", "m.png", "m.zarr"):
        spec = parse_spec(
            {
                "name": "m",
                "sample": {"params": {"size": 12}, "mask": {"file": str(tmp_path / file)}},
            }
        )
        space = space_from_spec(spec.sample, sample_from_spec(spec.sample, 0))
        assert isinstance(space, MaskedGrid) and space.size == 49, file


def test_empty_or_bad_masks_are_one_sentence(tmp_path: Path) -> None:
    np.save(tmp_path / "empty.npy", np.zeros((4, 4)))
    with pytest.raises(DatasetError) as exc:
        import_dataset(tmp_path / "empty.npy", tmp_path / "e.zarr", fmt="mask")
    _one_sentence(exc, "selects no pixel")
    assert not (tmp_path / "e.zarr").exists()
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    with pytest.raises(DatasetError) as exc:
        import_dataset(tmp_path / "cube.npy", tmp_path / "c.zarr", fmt="mask")
    _one_sentence(exc, "2-D")
    sample = build_sample("synthetic_film", {"size": 12}, 0)
    np.save(tmp_path / "empty12.npy", np.zeros((12, 12)))
    for mask, fragment in (
        ({"file": str(tmp_path / "empty12.npy")}, "no pixel"),
        ({"file": str(tmp_path / "nope.npy")}, "no mask file"),
        ({"rect": [0, 0, 20, 5]}, "does not fit"),
        ({"pixels": [[12, 0]]}, "off the 12 x 12"),
    ):
        spec = {"kind": "synthetic_film", "params": {"size": 12}, "mask": mask}
        with pytest.raises(ConfigError) as exc:
            space_from_spec(spec, sample)
        _one_sentence(exc, "sample.mask", fragment)
    np.save(tmp_path / "small.npy", np.ones((4, 4)))
    with pytest.raises(ConfigError) as exc:
        space_from_spec({"params": {"size": 12}, "mask": {"file": str(tmp_path / "small.npy")}},
                        sample)  # fmt: skip
    _one_sentence(exc, "4 x 4", "12 x 12")


def test_spec_mask_takes_exactly_one_form() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_spec({"name": "m", "sample": {"mask": {"rect": [0, 0, 2, 2], "interior": 3}}})
    _one_sentence(exc, "sample.mask", "exactly one")
    with pytest.raises(ConfigError):
        parse_spec({"name": "m", "sample": {"mask": {}}})
    plain = parse_spec({"name": "m"}).to_json_dict()["sample"]
    assert "mask" not in plain  # a spec without a mask is stored as before spaces
