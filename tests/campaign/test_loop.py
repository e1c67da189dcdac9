"""The campaign loop on the local executor: budget, no repeats, durable order, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.config import CampaignSpec, parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.infra.local import open_local
from coscope.storage import TraceStore
from coscope.types import MeasurementRequest


def _spec(tmp_path: Path, **changes) -> CampaignSpec:
    data = {
        "name": "loop",
        "seed": 4,
        "sample": {"kind": "synthetic_film", "params": {"size": 24}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 50},
        "budget": {"max_measurements": 14},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return parse_spec(data)


def _run(spec: CampaignSpec):
    loop, _ = open_local(spec)
    outcome = loop.run()
    loop.ctx.store.close()
    return outcome, loop.ctx


def _path(store: TraceStore) -> list[tuple[int, int]]:
    return [(d.location.row, d.location.col) for d in store.decisions()]


def test_runs_to_budget_without_repeats(tmp_path: Path) -> None:
    outcome, ctx = _run(_spec(tmp_path))
    assert outcome.status == "finished" and "measurement budget" in outcome.reason
    decisions, measurements = ctx.store.decisions(), ctx.store.measurements()
    assert len(decisions) == len(measurements) == 14
    assert [d.step for d in decisions] == [m.step for m in measurements] == list(range(14))
    assert len(set(_path(ctx.store))) == 14
    assert [d.policy for d in decisions[:4]] == ["random"] * 4 or decisions[0].policy != "ei"
    assert all(d.policy == "ei" for d in decisions[4:])
    assert all(np.isfinite(d.predicted_std) for d in decisions[4:])
    assert outcome.cost_spent == pytest.approx(14 * 1.5)
    assert [f.n_train for f in ctx.store.fits()] == list(range(1, 15))  # one fit per new datum
    assert outcome.history[-1]["rmse"] < outcome.history[4]["rmse"] * 1.5


def test_metrics_every_spaces_the_map_error_and_a_random_scan_fits_only_then(
    tmp_path: Path,
) -> None:
    """`metrics_every`: the map error (a surrogate fit) after the 1st, 5th, 9th … measurement,
    so a long model-free scan (a soak, a raster) does not refit a growing GP at every step."""
    spec = _spec(
        tmp_path, policy={"name": "random"}, metrics_every=4, budget={"max_measurements": 10}
    )
    outcome, ctx = _run(spec)
    assert [k for k, row in enumerate(outcome.history) if "rmse" in row] == [0, 4, 8]
    assert ctx.store.counts()["measurements"] == 10


def test_cost_budget_is_never_exceeded(tmp_path: Path) -> None:
    outcome, _ = _run(_spec(tmp_path, budget={"max_cost": 10.0, "max_measurements": None}))
    assert outcome.cost_spent <= 10.0
    assert outcome.n_measurements == 6  # 6 x 1.5 = 9; a 7th would cost 10.5


def test_resume_after_stop_matches_uninterrupted(tmp_path: Path) -> None:
    full, full_ctx = _run(_spec(tmp_path / "a"))
    part, _ = _run(_spec(tmp_path / "b", budget={"max_measurements": 7}))
    assert part.n_measurements == 7
    resumed, resumed_ctx = _run(_spec(tmp_path / "b"))  # same store, larger budget
    assert resumed.n_measurements == 14
    assert _path(resumed_ctx.store) == _path(full_ctx.store)
    full_signals = [m.signal for m in full_ctx.store.measurements()]
    resumed_signals = [m.signal for m in resumed_ctx.store.measurements()]
    np.testing.assert_array_equal(np.stack(full_signals), np.stack(resumed_signals))


def test_decision_without_measurement_is_reissued_once(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 5})
    _, ctx = _run(spec)
    # Simulate a crash between "decision stored" and "measurement stored".
    sample = sample_from_spec(spec.sample, spec.seed)
    from dataclasses import replace

    last = ctx.store.decisions()[-1]
    orphan = replace(last, step=last.step + 1, location=type(last.location)(0, 0))
    with TraceStore.open(spec.resolved_store(), mode="a") as store:
        store.append_decision(orphan)
        assert [p.step for p in store.pending_decisions()] == [orphan.step]
    resumed, resumed_ctx = _run(_spec(tmp_path, budget={"max_measurements": 8}))
    measured = resumed_ctx.store.measurements()
    assert [m.step for m in measured] == list(range(8))
    assert measured[5].location == orphan.location
    instrument = instruments_from_spec(spec, sample)["afm"]
    expected = instrument.measure(MeasurementRequest.from_proposal(orphan, spec.seed))
    np.testing.assert_array_equal(measured[5].signal, expected.signal)
    assert resumed_ctx.store.pending_decisions() == []


def test_other_campaign_in_store_is_refused_untouched(tmp_path: Path) -> None:
    _, ctx = _run(_spec(tmp_path, budget={"max_measurements": 5}))
    before = _path(ctx.store)
    with pytest.raises(ConfigError, match="holds a different campaign .*seed"):
        _run(_spec(tmp_path, seed=99))
    assert _path(TraceStore.open(_spec(tmp_path).resolved_store())) == before


@pytest.mark.parametrize("policy", ["random", "raster", "ucb", "maxvar"])
def test_every_policy_completes(tmp_path: Path, policy: str) -> None:
    outcome, ctx = _run(
        _spec(
            tmp_path,
            policy={"name": policy, "n_initial": 3, "fit_iterations": 30},
            budget={"max_measurements": 8},
        )
    )
    assert outcome.n_measurements == 8
    assert len(set(_path(ctx.store))) == 8


def test_stop_request_in_inbox_stops_after_in_flight(tmp_path: Path) -> None:
    from coscope.campaign.inbox import Inbox

    spec = _spec(tmp_path)
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    inbox = Inbox(spec.resolved_store())
    inbox.post("stop", why="left over")  # before the run: recorded, not applied

    class StopAtFive(LocalExecutor):
        def submit(self, request):
            if request.step == 5:
                inbox.post("stop", why="enough")
            return super().submit(request)

    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, StopAtFive(instruments_from_spec(spec, sample))).run()
    assert outcome.status == "stopped"
    assert outcome.n_measurements == 6  # step 5 was in flight and is kept
    assert ctx.store.pending_decisions() == []
    kinds = [(i.kind, i.why) for i in ctx.store.interventions()]
    assert kinds[0][0] == "stop" and "not applied" in kinds[0][1]
    assert kinds[1] == ("stop", "enough") and ctx.store.interventions()[1].step == 6
    assert inbox.pending() == []
    ctx.store.close()


# Examples on an imported dataset run where their data is made: beps_twin.yaml in
# tests/instruments/test_dataset_twin.py, beps_masked.yaml and process_table.yaml in
# tests/spaces/test_campaigns.py. Examples of instruments that are not coscope's run with
# theirs: acme_afm.yaml (a plug-in package) in tests/instruments/test_plugin_kinds.py,
# beps_epics.yaml (an EPICS IOC) in tests/instruments/test_epics.py.
ELSEWHERE = ("beps_twin.yaml", "beps_masked.yaml", "process_table.yaml")
ELSEWHERE += ("acme_afm.yaml", "beps_epics.yaml")
EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")
    if p.name not in ELSEWHERE
)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run_as_they_are(tmp_path: Path, path: Path) -> None:
    """Every example spec runs (budget cut to 8, no latency) and respects its budget."""
    from coscope.config import load_spec

    spec = load_spec(path, {"run_dir": str(tmp_path / "run"), "time_scale": 0.0})
    budget = {"max_measurements": 8, "max_cost": spec.budget.max_cost}
    spec = spec.model_copy(update={"budget": type(spec.budget)(**budget)})
    outcome, ctx = _run(spec)
    assert outcome.status == "finished"
    assert 0 < outcome.n_measurements <= 8
    used = {m.instrument for m in ctx.store.measurements()}
    assert used == {i.name for i in spec.instruments}  # every instrument got work
    # nothing asked twice (a simulation at a measured pixel, or at another theta, is new)
    asked = {
        (d.modality, d.location, repr(sorted(d.params.items()))) for d in ctx.store.decisions()
    }
    failed = sum(i.kind == "failed_measurement" for i in ctx.store.interventions())
    assert len(asked) == outcome.n_measurements + failed  # a failed decision is retired


def test_instrument_failure_stops_and_resume_retries(tmp_path: Path) -> None:
    from coscope.errors import InstrumentError

    spec = _spec(tmp_path, budget={"max_measurements": 6})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()

    class FailsAtThree(LocalExecutor):
        def submit(self, request):
            if request.step == 3:
                future = super().submit(request)
                future._result, future._exception = None, InstrumentError("stage stuck")
                return future
            return super().submit(request)

    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, FailsAtThree(instruments_from_spec(spec, sample))).run()
    assert (
        outcome.status == "failed"
        and "step 3" in outcome.reason
        and "stage stuck" in outcome.reason
    )
    assert [p.step for p in ctx.store.pending_decisions()] == [3]
    ctx.store.close()
    resumed, resumed_ctx = _run(spec)
    assert resumed.status == "finished"
    assert [m.step for m in resumed_ctx.store.measurements()] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("policy", ["ei", "thompson"])
def test_dkl_campaign_on_structure_patches(tmp_path: Path, policy: str) -> None:
    """model: dkl fits on the executor like the GP, stores its fits, and resumes the same."""
    changes = {
        "policy": {
            "name": policy,
            "model": "dkl",
            "window": 5,
            "n_initial": 4,
            "fit_iterations": 30,
        },
        "budget": {"max_measurements": 9},
    }
    full, full_ctx = _run(_spec(tmp_path / "a", **changes))
    assert full.n_measurements == 9 and len(set(_path(full_ctx.store))) == 9
    assert [d.policy for d in full_ctx.store.decisions()[4:]] == [policy] * 5
    fits = full_ctx.store.fits()
    assert len(fits) == 9 and all(np.isfinite(f.loss) for f in fits)
    part_changes = {**changes, "budget": {"max_measurements": 6}}
    _run(_spec(tmp_path / "b", **part_changes))
    _, resumed_ctx = _run(_spec(tmp_path / "b", **changes))
    assert _path(resumed_ctx.store) == _path(full_ctx.store)


def test_dkl_embedding_of_every_pixel_is_kept_per_model_version(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = _spec(
        tmp_path,
        policy={"name": "ei", "model": "dkl", "window": 5, "n_initial": 3, "fit_iterations": 20},
        budget={"max_measurements": 5},
    )
    loop, _ = open_local(spec, track=True)  # real MLflow, sqlite in tmp
    loop.run()
    ctx = loop.ctx
    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    files = [a.path for a in client.list_artifacts(ctx.tracker.run_id, "embeddings")]
    assert files == [f"embeddings/v{v:04d}.npy" for v in range(5)]
    local = client.download_artifacts(ctx.tracker.run_id, files[-1], str(tmp_path))
    assert np.load(local).shape == (24 * 24, 2)
    ctx.store.close()
