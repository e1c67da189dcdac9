"""Corruption suite: every reader gives one sentence, `coscope check` finds each case, and
nothing committed is ever cut (issue 17)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from coscope.cli import main
from coscope.errors import StoreError
from coscope.storage import TraceStore
from coscope.storage.integrity import check_trace
from coscope.types import FitRecord, Intervention

from .conftest import create, make_modalities, measurement, proposal

N = 30


def _build(path: Path) -> Path:
    """A closed trace: N decisions and measurements over two modalities, fits, interventions."""
    lengths = {name: info.length for name, info in make_modalities().items()}
    with create(path) as store:
        for step in range(N):
            p = proposal(step, "beps_loop" if step % 3 else "theory:lgd")
            store.append_decision(p)
            store.append_measurement(measurement(p, lengths[p.modality]))
            if step % 10 == 0:
                store.append_fit(FitRecord(step // 10, step, step, -0.5, 0.1, {"noise": 0.01}))
        store.append_intervention(Intervention("pause", {}, 12, "me", "look", 1.7e9))
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("pristine") / "trace.zarr")


@pytest.fixture
def trace(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "trace.zarr"
    shutil.copytree(pristine, copy)
    return copy


def _edit_root(path: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads((path / "zarr.json").read_text())
    edit(doc["attributes"])
    (path / "zarr.json").write_text(json.dumps(doc))


def _flip(path: Path, chunk: str, offset: int) -> None:
    f = path / chunk
    data = bytearray(f.read_bytes())
    data[offset] ^= 0xFF
    f.write_bytes(bytes(data))


def _counts_down(path: Path) -> None:
    _edit_root(path, lambda a: a["counts"].update(decisions=25))


def _measurements_rolled_back(path: Path) -> None:
    def edit(a: dict) -> None:
        a["counts"]["measurements"] = 20
        a["counts"]["signals"] = {"beps_loop": 13, "theory:lgd": 7}

    _edit_root(path, edit)


def _counts_up(path: Path) -> None:
    _edit_root(path, lambda a: a["counts"].update(decisions=35))


def _signal_byte(path: Path) -> None:
    _flip(path, "signals/beps_loop/signal/c/0/0", 8 * 64 * 3 + 5)


def _location_byte(path: Path) -> None:
    _flip(path, "decisions/row/c/0", 8 * 4)  # row of decision 4 becomes huge


def _sample_shape(path: Path) -> None:
    _edit_root(path, lambda a: a.update(sample_shape=[4, 4]))


def _deleted_chunk(path: Path) -> None:
    (path / "decisions/step/c/0").unlink()


def _truncated_chunk(path: Path) -> None:
    f = path / "measurements/cost/c/0"
    f.write_bytes(f.read_bytes()[:13])


CORRUPTIONS = {
    "decision count edited down": (_counts_down, True),
    "measurement counts rolled back": (_measurements_rolled_back, True),
    "decision count edited up": (_counts_up, True),
    "flipped signal byte": (_signal_byte, False),
    "flipped location byte": (_location_byte, False),
    "sample shape changed": (_sample_shape, False),
    "deleted chunk": (_deleted_chunk, False),
    "truncated chunk": (_truncated_chunk, False),
}


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_pristine_trace_is_intact(trace: Path) -> None:
    report = check_trace(trace)
    assert report.ok and report.findings == []


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_check_finds_every_corruption_and_no_writer_cuts_committed_rows(
    trace: Path, name: str
) -> None:
    corrupt, repairable = CORRUPTIONS[name]
    corrupt(trace)
    before = _files(trace)
    report = check_trace(trace)
    assert not report.ok, name
    errors = [f for f in report.findings if f.severity == "error"]
    assert all(f.message and "\n" not in f.message for f in errors)
    assert any(f.repair for f in errors) == repairable
    with pytest.raises(StoreError, match="coscope check"):
        TraceStore.open(trace, mode="a")  # a resume refuses instead of cutting rows
    del before[".coscope-writer.lock"]
    after = _files(trace)
    after.pop(".coscope-writer.lock", None)
    assert after == before  # checking and the refused open changed nothing


@pytest.mark.parametrize("name", [n for n, (_, ok) in CORRUPTIONS.items() if ok])
def test_repair_restores_the_committed_rows(trace: Path, pristine: Path, name: str) -> None:
    CORRUPTIONS[name][0](trace)
    report = check_trace(trace, repair=True)
    assert report.repaired
    assert check_trace(trace).ok
    with TraceStore.open(trace, mode="a") as store:  # resumable again
        assert store.counts() == TraceStore.open(pristine).counts()
        assert [m.step for m in store.measurements()] == list(range(N))
        assert len(store.decisions()) == N


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_readers_say_one_sentence(
    trace: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    CORRUPTIONS[name][0](trace)
    for argv in (["status", str(trace)], ["status", str(trace), "--json"], ["check", str(trace)]):
        code = main(argv)  # any exception but a CoscopeError fails the test
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err
    assert main(["check", str(trace)]) == 1


def test_torn_append_is_a_warning_and_the_writer_cuts_it(trace: Path) -> None:
    with TraceStore.open(trace, mode="a") as store:
        columns = store._columns["decisions"]  # an append killed before its commit
        columns["step"].append(99)
        columns["row"].append(1)
    (trace / "decisions" / "x.partial").write_bytes(b"junk")
    report = check_trace(trace)
    assert report.ok
    assert {f.severity for f in report.findings} == {"warning"}
    with TraceStore.open(trace, mode="a") as store:
        assert store.counts()["decisions"] == N
    assert check_trace(trace).findings == []


def test_a_trace_without_digests_gets_them(trace: Path) -> None:
    def strip(a: dict) -> None:
        del a["digests"], a["header"]

    _edit_root(trace, strip)
    report = check_trace(trace)
    assert report.ok and report.findings[0].repair == "write them"
    check_trace(trace, repair=True)
    assert check_trace(trace).findings == []
    _counts_down(trace)  # protected from now on
    assert not check_trace(trace).ok


def _answered(path: Path, *answers: dict) -> Path:
    """A trace of 3 decisions, steps 0 and 1 measured, with the given approval rows."""
    lengths = {name: info.length for name, info in make_modalities().items()}
    with create(path) as store:
        for step in range(3):
            store.append_decision(proposal(step))
        for step in (0, 1):
            store.append_measurement(measurement(proposal(step), lengths["beps_loop"]))
        for payload in answers:
            store.append_intervention(Intervention("approval", payload, 3, "me", "", 1.7e9))
    return path


def test_check_knows_the_approval_gate(tmp_path: Path) -> None:
    at1 = [proposal(1).location.row, proposal(1).location.col]
    sound = _answered(
        tmp_path / "sound.zarr",
        {"step": 0, "answer": "approved"},
        {"step": 1, "answer": "modified", "location": at1},
        {"step": 2, "answer": "timed_out", "on_timeout": "stop"},  # decides nothing
        {"step": 2, "answer": "rejected", "reason": "no"},
        {"step": 2, "action": "approve", "rejected": "step 2 does not wait"},  # refused
    )
    assert check_trace(sound).ok, check_trace(sound).findings
    broken = _answered(
        tmp_path / "broken.zarr",
        {"step": 0, "answer": "rejected"},  # but measured
        {"step": 1, "answer": "modified", "location": [0, 0]},  # measured elsewhere
        {"step": 1, "answer": "approved"},  # twice
        {"step": 7, "answer": "approved"},  # no such decision
    )
    messages = [f.message for f in check_trace(broken).findings]
    assert any("step 0 was rejected but is measured" in m for m in messages)
    assert any("not where it was modified" in m for m in messages)
    assert any("step 1 is answered twice" in m for m in messages)
    assert any("names no decision" in m for m in messages)
