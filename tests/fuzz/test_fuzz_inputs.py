"""Fuzzing what a user types: interventions and specs get one sentence, never a traceback,
and a refused intervention leaves the store byte-for-byte as it was."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coscope.campaign.inbox import Inbox
from coscope.campaign.steering import intervention_kinds
from coscope.cli import EXIT_USER_ERROR, main
from coscope.config import CampaignSpec, load_spec, parse_spec
from coscope.errors import CoscopeError
from tests.campaign.test_loop import _run, _spec


def tree_hash(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (relative name -> digest)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = _spec(tmp_path_factory.mktemp("fuzz"), budget={"max_measurements": 6})
    _run(spec)
    return spec.resolved_store()


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["ucb", "ei", "loop_area", "window_integral", "beps_loop", "afm", "good"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "name",
        "params",
        "modality",
        "points",
        "rect",
        "pixels",
        "step",
        "score",
        "label",
        "afm",
        "beta",
        "lo",
        "hi",
        "model",
        "window",
        "n_initial",
        "refit_every",
        "x",
    ]
)
PAYLOADS = st.dictionaries(KEYS, VALUES, max_size=4) | st.fixed_dictionaries(
    {
        "name": st.sampled_from(["window_integral", "peak_position", "ucb"]),
        "params": st.dictionaries(st.sampled_from(["lo", "hi", "beta"]), st.floats(), max_size=2),
    }
)
KIND = st.sampled_from([*intervention_kinds(), "spec", "refusal", "teleport", ""])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=KIND, payload=PAYLOADS)
def test_fuzzed_interventions_are_one_sentence_and_leave_the_store_alone(
    finished_store: Path, kind: str, payload: dict
) -> None:
    before = tree_hash(finished_store)
    try:
        text = json.dumps(payload)
    except ValueError:
        return
    code, err = _cli(["intervene", str(finished_store), kind or "pause", "--json", text])
    assert "Traceback" not in err
    if code == EXIT_USER_ERROR:
        assert err.startswith("error: ") and err.count("\n") == 1, err
    else:
        assert code == 0, err
    assert tree_hash(finished_store) == before
    shutil.rmtree(Inbox(finished_store).path, ignore_errors=True)


FIELDS = st.sampled_from(list(CampaignSpec.model_fields))
SPECS = st.dictionaries(FIELDS, VALUES, max_size=5)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=SPECS)
def test_fuzzed_specs_are_a_spec_or_one_sentence(data: dict) -> None:
    try:
        parse_spec(data)
    except CoscopeError as exc:
        assert str(exc).count("\n") == 0


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=200) | SPECS.map(lambda d: yaml.safe_dump(d)))
def test_fuzzed_spec_files_are_a_spec_or_one_sentence(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_spec(path)
    except CoscopeError as exc:
        assert str(exc).count("\n") == 0
        code, err = _cli(["run", str(path), "--out", str(path.parent / "run"), "--quiet"])
        assert code == EXIT_USER_ERROR and "Traceback" not in err and err.count("\n") == 1
        assert not (path.parent / "run" / "trace.zarr").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=SPECS)
def test_fuzzed_runs_on_an_existing_store_leave_it_alone(
    finished_store: Path, tmp_path_factory, data: dict
) -> None:
    from coscope.infra.compose import _differences, effective_campaign
    from coscope.storage import TraceStore

    folder = tmp_path_factory.mktemp("run")
    data = {**data, "store": str(finished_store), "run_dir": str(folder)}
    try:
        new = parse_spec(data).to_json_dict()
    except CoscopeError:
        new = None
    if new is not None and not _differences(
        effective_campaign(TraceStore.open(finished_store)), new
    ):
        return  # the stored campaign itself: that would run it
    path = folder / "spec.yaml"
    path.write_text(json.dumps(data, default=str))
    before = tree_hash(finished_store)
    code, err = _cli(["run", str(path), "--quiet"])
    assert code == EXIT_USER_ERROR and "Traceback" not in err and err.count("\n") == 1, err
    assert tree_hash(finished_store) == before
