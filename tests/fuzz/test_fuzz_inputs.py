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
from hypothesis import HealthCheck, event, given, settings
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
        # as written: `--out` would replace a bad run_dir and make the spec valid
        code, err = _cli(["run", str(path), "--quiet"])
        assert code == EXIT_USER_ERROR and "Traceback" not in err and err.count("\n") == 1


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


NUMBER = st.floats(-20, 20, allow_nan=False) | st.integers(-30, 30)
PLAUSIBLE = st.one_of(
    st.tuples(
        st.just("scalarizer"),
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["window_integral", "peak_position", "mean", "loop_area"]),
                "params": st.dictionaries(st.sampled_from(["lo", "hi"]), NUMBER, max_size=2),
            }
        ),
    ),
    st.tuples(
        st.just("policy"),
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["ucb", "ei", "maxvar"]),
                "params": st.dictionaries(st.just("beta"), NUMBER, max_size=1),
            }
        ),
    ),
    st.tuples(st.just("costs"), st.fixed_dictionaries({"afm": NUMBER})),
    st.tuples(
        st.sampled_from(["exclude", "include", "seed_points"]),
        st.fixed_dictionaries(
            {"pixels": st.lists(st.tuples(st.integers(-2, 26), st.integers(-2, 26)), max_size=3)}
        ),
    ),
    st.tuples(
        st.just("vote"),
        st.fixed_dictionaries({"step": st.integers(-1, 7), "score": NUMBER}),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=PLAUSIBLE | st.tuples(st.sampled_from(intervention_kinds()), PAYLOADS))
def test_what_intervene_accepts_the_loop_adopts(
    finished_store: Path, tmp_path_factory, request: tuple
) -> None:
    """Never bricked: a request `coscope intervene` posts is applied (or refused) by the loop
    without an error, and the campaign still resumes with it in the trace."""
    from coscope.campaign.live import LiveSteering
    from coscope.infra.compose import open_context

    kind, payload = request
    if kind == "seed_points" and set(payload) == {"pixels"}:  # PLAUSIBLE's region form
        payload = {"points": payload["pixels"]}
    try:
        text = json.dumps(payload)
    except ValueError:
        return
    copy = tmp_path_factory.mktemp("copy") / "trace.zarr"
    shutil.copytree(finished_store, copy)
    shutil.copy(finished_store.with_name("trace.zarr.token"), copy.with_name("trace.zarr.token"))
    code, _ = _cli(["intervene", str(copy), kind, "--json", text])
    event("refused by intervene" if code else f"accepted {kind}")
    if code != 0:
        return
    ctx, _ = open_context(copy, track=False)
    try:
        LiveSteering(ctx).take(Inbox(copy).take(6), 6)
        LiveSteering(ctx).start()  # what a resume folds: no error either
    finally:
        ctx.store.close()


def test_an_accepted_window_is_adopted(finished_store: Path, tmp_path: Path) -> None:
    """The adoption fuzz's success path, once explicitly."""
    from coscope.campaign.live import LiveSteering
    from coscope.infra.compose import open_context

    copy = tmp_path / "trace.zarr"
    shutil.copytree(finished_store, copy)
    shutil.copy(finished_store.with_name("trace.zarr.token"), copy.with_name("trace.zarr.token"))
    window = '{"name": "window_integral", "params": {"lo": -2, "hi": 2}}'
    assert _cli(["intervene", str(copy), "scalarizer", "--json", window])[0] == 0
    ctx, _ = open_context(copy, track=False)
    steering = LiveSteering(ctx)
    assert steering.take(Inbox(copy).take(6), 6)  # the agent was rebuilt
    assert ctx.spec.scalarizer.name == "window_integral"
    ctx.store.close()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"seed": True}, "'seed' is true; give a number"),
        ({"budget": {"max_measurements": False}}, "'max_measurements' is false"),
        ({"instruments": [{"name": ""}]}, "non-empty, without spaces"),
        ({"instruments": [{"name": "a fm"}]}, "non-empty, without spaces"),
    ],
)
def test_nonsense_specs_are_refused(data: dict, words: str) -> None:
    with pytest.raises(CoscopeError, match=words):
        parse_spec(data)


def test_a_vote_on_a_fractional_step_is_refused(finished_store: Path) -> None:
    code, err = _cli(["intervene", str(finished_store), "vote", "step=3.5", "label=good"])
    assert code == EXIT_USER_ERROR and "measured step it rates" in err
    assert _cli(["intervene", str(finished_store), "vote", "step=3.0", "label=good"])[0] == 0
    shutil.rmtree(Inbox(finished_store).path, ignore_errors=True)
