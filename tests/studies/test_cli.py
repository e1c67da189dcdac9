"""`coscope benchmark` / `coscope seeds` refuse bad input with one sentence, exit 2, no files."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.cli import main

SPEC = """\
name: tiny
sample: {kind: synthetic_film, params: {size: 16}}
policy: {name: ei, n_initial: 3, fit_iterations: 20}
budget: {max_measurements: 8}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["benchmark", "--policies", "ei,bogus"], "--policies entry 'bogus'"),
        (["benchmark", "--policies", "thompson"], "--policies entry 'thompson'"),
        (["benchmark", "--policies", "ei,ei"], "twice"),
        (["benchmark", "--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["seeds", "--seed-sets", "0"], "--seed-sets must be at least 1"),
        (["seeds", "--inject-at", "3"], "--inject-at and --inject go together"),
        (["seeds", "--inject-at", "8", "--inject", "2"], "--inject-at 8 is not before the end"),
        (["seeds", "--initial", "999"], "--initial 999 exceeds the 256 pixels"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_nothing_written(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "out"
    code = main([args[0], str(spec), *args[1:], "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_non_empty_out_folder_is_refused(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "curves.csv").write_text("keep me")
    assert main(["benchmark", str(spec), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["curves.csv"]
