"""The command line on bad input: one sentence, exit status 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coscope.cli import EXIT_USER_ERROR, main


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("name: x\npolicy: {name: greedy}\n", "'policy.name' (got 'greedy')"),
        ("name: x\nbudget: {max_cost: -3}\n", "'budget.max_cost' (got -3)"),
        ("name: x\nseed_points: [[99, 3]]\n", "seed_points entry (99, 3) is off the sample"),
        (
            "name: x\nsample: {kind: synthetic_film, params: {size: 3}}\n",
            "'sample.params': size=3 is invalid",
        ),
        (
            "name: x\nsample: {kind: synthetic_film, params: {colour: 1}}\n",
            "'sample.params': unknown synthetic_film parameter(s) ['colour']",
        ),
        ("name: x\npolicy: [\n", "not valid YAML"),
        ("name: x\ntracking_uri: http://127.0.0.1:9\n", "cannot use the MLflow tracking URI"),
    ],
)
def test_bad_spec_is_one_sentence_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, fragment: str
) -> None:
    path = _write(tmp_path / "spec.yaml", spec)
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--out", str(run_dir), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR
    assert err.startswith("error: ") and fragment in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (run_dir / "trace.zarr").exists()


def test_status_of_missing_store_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path / "nope.zarr")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_resume_of_a_folder_that_is_not_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "t.zarr"
    folder.mkdir()
    (folder / "zarr.json").write_text("{not json")
    assert main(["resume", str(folder), "--quiet"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert (folder / "zarr.json").read_text() == "{not json"  # untouched


def test_status_json_is_stable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.campaign.test_loop import _run, _spec

    spec = _spec(tmp_path, budget={"max_measurements": 6})
    _run(spec)
    assert main(["status", str(spec.resolved_store()), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert set(status) == {
        "status_version",
        "store",
        "campaign",
        "status",
        "finished",
        "finished_reason",
        "runner_alive",
        "measurements",
        "decisions",
        "pending",
        "fits",
        "cost_spent",
        "budget",
        "budget_used",
        "best",
        "last_decision",
        "mlflow_run_id",
        "steering",
        "utilisation",  # added by issue 4 (keys are only ever added)
        "theory_batches",  # added by issue 5
        "pending_by_instrument",  # added by issue 4, request queues
        "space",  # added by issue 11, candidate spaces
        "failures",  # added by issue 15, the failure policy
        "approval",  # added by issue 12, the approval gate
        "model",  # added by issue 14, the latest fit (a structured GP's law parameters)
        "pareto",  # added by issue 13, multi-objective campaigns
        "hypotheses",  # added by issue 14, hypothesis learning's verdict
        "constraints",  # added by issue 13, outcome constraints and learned feasibility
        "stopping",  # added by issue 13, the stopping rule
    }
    assert status["hypotheses"] is None
    assert status["constraints"] is None and status["stopping"] is None
    assert status["approval"]["required"] is False and status["approval"]["waiting"] == []
    assert status["model"] == {"kind": "gp", "version": 5, "n_train": 6}
    assert status["pending_by_instrument"] == {}
    assert status["failures"] == {"failed": 0, "by_class": {}, "retired": []}
    assert status["space"] == {"kind": "pixel_grid", "candidates": 576, "layout": [24, 24]}
    assert set(status["utilisation"]) == {"afm"} and 0.0 <= status["utilisation"]["afm"] <= 1.0
    assert status["measurements"] == {"total": 6, "by_modality": {"beps_loop": 6}}
    assert status["decisions"] == 6 and status["pending"] == 0
    assert status["cost_spent"] == pytest.approx(9.0)
    assert status["budget_used"] == pytest.approx(1.0)
    assert status["last_decision"]["step"] == 5
    assert status["best"]["value"] > 0
    assert main(["status", str(spec.resolved_store())]) == 0
    text = capsys.readouterr().out
    assert "6/6 measurements" in text and "beps_loop: 6" in text


def test_a_second_run_on_a_busy_run_folder_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs on one folder used to race on its Prefect database; the second now stops."""
    import fcntl
    import os

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = _write(tmp_path / "spec.yaml", "name: busy\nbudget: {max_measurements: 3}\n")
    holder = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)  # what a running campaign holds
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["run", str(spec), "--out", str(run_dir), "--quiet"])
    finally:
        os.close(holder)
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR
    assert "campaign 'busy' is already running from" in err and len(err.splitlines()) == 1
    assert list(run_dir.iterdir()) == []  # no Prefect database, no store
