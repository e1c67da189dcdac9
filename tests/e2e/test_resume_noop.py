"""A resume of a finished campaign with nothing to do leaves the store byte-for-byte alone."""

from __future__ import annotations

from pathlib import Path

from coscope.cli import main
from coscope.storage import TraceStore
from tests.campaign.test_loop import _run, _spec
from tests.fuzz.test_fuzz_inputs import tree_hash


def test_resume_of_a_finished_campaign_changes_nothing(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 4})
    _run(spec)
    path = spec.resolved_store()
    with TraceStore.open(path, "a") as store:  # as finish_campaign leaves it
        store.set_attr("status", "finished")
        store.set_attr("finished_reason", "measurement budget reached (4 of 4)")
    before = tree_hash(path)
    assert main(["resume", str(path), "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert tree_hash(path) == before
    moved = tmp_path / "moved.zarr"  # a moved store: still the same campaign
    path.rename(moved)
    before = tree_hash(moved)
    assert main(["resume", str(moved), "--quiet"]) == 0
    assert tree_hash(moved) == before
