"""Theory batches land in the campaign's trace: through the inbox, validated, paid by the batch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from coscope.campaign.inbox import Inbox
from coscope.campaign.theory_intake import absorb_if_idle, record_batch
from coscope.campaign.theory_sidecar import (
    BATCH_POLICY,
    THEORY_BATCH,
    TheoryBatchError,
    read_batch,
    sha256_of,
    write_sidecar,
)
from coscope.config import parse_spec
from coscope.flows.theory_batch import run_theory_batch, theory_batch_flow
from coscope.infra.compose import sample_from_spec
from coscope.report.status import campaign_status, format_status
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, Proposal
from tests.agents.test_conavigation import _run, _spec
from tests.e2e.campaign_process import _coscope, _wait_until


def _batch_waiting(tmp_path: Path, budget: int, n: int) -> tuple[Path, dict, dict]:
    """A finished campaign and a batch posted to its inbox but not yet recorded (the test
    holds the writer lock while the batch runs, as a running campaign would)."""
    ctx, _ = _run(tmp_path, budget)
    ctx.store.close()
    store = ctx.spec.resolved_store()
    with TraceStore.open(store, mode="a") as held:
        counts = held.counts()
        out = run_theory_batch(str(store), n_simulations=n, register=False)
    assert out["recorded_steps"] is None  # the lock was taken: left for the loop
    assert [i.kind for i in Inbox(store).peek()] == [THEORY_BATCH]
    return store, out, counts


def test_running_loop_records_a_batch_between_steps_and_the_agent_learns_it(
    tmp_path: Path,
) -> None:
    store, out, counts = _batch_waiting(tmp_path, 10, 3)
    parked = tmp_path / "parked.json"
    os.replace(out["posted"], parked)  # re-posted mid-run, after the 2nd new measurement
    seen: list[int] = []

    def post_midway(row: dict) -> None:
        seen.append(int(row["step"]))
        if len(seen) == 2:
            os.replace(parked, out["posted"])

    ctx, outcome = _run(tmp_path, 14, on_measurement=post_midway)
    decisions = ctx.store.decisions()
    batch = [d for d in decisions if d.policy == BATCH_POLICY]
    assert len(batch) == 3 and not Inbox(store).pending()
    first = batch[0].step
    assert [d.step for d in batch] == [first, first + 1, first + 2]
    assert counts["decisions"] + 2 <= first < decisions[-1].step  # between steps, mid-run
    sims = np.load(out["folder"] + "/simulations.npz")
    measured = {m.step: m for m in ctx.store.measurements()}
    for k, d in enumerate(batch):
        assert d.instrument == "lgd" and d.modality == "theory_lgd"
        assert d.params["theta"] == json.loads(str(sims["params"][k]))["theta"]
        assert d.params["batch"] == 0 and d.params["who"].startswith("theory-batch")
        assert d.params["batch_cost"] == pytest.approx(0.5)  # the simulator's cost
        m = measured[d.step]
        assert m.cost == 0.0 and m.t_end == 0.0  # paid by the batch; not the campaign's time
        assert d.params["batch_time"] == [sims["t_start"][k], sims["t_end"][k]]
        np.testing.assert_array_equal(m.signal, sims["loops"][k])
        assert d.step in ctx.agent.simulations  # the agent learned it, with its theta
        assert np.all(np.isfinite(ctx.agent.simulations[d.step][1]))
    # the campaign's budget is its own: 14 measurements besides the batch's 3
    assert outcome.n_measurements == 14 and len(measured) == 14 + 3
    (item,) = [i for i in ctx.store.interventions() if i.kind == THEORY_BATCH]
    assert item.payload["steps"] == [first, first + 2] and "rejected" not in item.payload
    assert item.payload["batch_cost"] == pytest.approx(1.5) and item.step == first
    assert item.who.startswith("theory-batch")
    ctx.store.close()


def test_bad_batch_is_refused_in_one_sentence_and_the_trace_is_intact(tmp_path: Path) -> None:
    store, out, counts = _batch_waiting(tmp_path, 8, 2)
    sidecar = Path(out["folder"]) / "simulations.npz"
    sidecar.write_bytes(sidecar.read_bytes() + b"tampered")  # changed after posting
    before = TraceStore.open(store, mode="r")
    old = ([_key(d) for d in before.decisions()], [m.step for m in before.measurements()])
    ctx, outcome = _run(tmp_path, 10)
    (item,) = ctx.store.interventions()
    reason = item.payload["rejected"]
    assert "changed after the batch was posted" in reason and reason.count(". ") == 0
    assert not [d for d in ctx.store.decisions() if d.policy == BATCH_POLICY]
    kept = [_key(d) for d in ctx.store.decisions()[: counts["decisions"]]]
    assert kept == old[0]  # nothing stored damaged
    assert [m.step for m in ctx.store.measurements()][: len(old[1])] == old[1]
    assert outcome.n_measurements == 10
    ctx.store.close()


class Crashing:
    """A trace whose process dies (an exception) at the ``n+1``-th measurement append."""

    def __init__(self, store: TraceStore, n: int) -> None:
        self.store, self.left = store, n

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def append_measurement(self, m) -> None:
        if self.left == 0:
            raise RuntimeError("killed")
        self.left -= 1
        self.store.append_measurement(m)


def test_a_batch_cut_short_by_a_crash_is_completed_from_its_sidecar_on_resume(
    tmp_path: Path,
) -> None:
    store, out, counts = _batch_waiting(tmp_path, 8, 3)
    spec = parse_spec(_spec(tmp_path, 8))
    with TraceStore.open(store, mode="a") as writer:
        (item,) = Inbox(store).take(8)
        with pytest.raises(RuntimeError, match="killed"):
            record_batch(item, 8, Crashing(writer, 1), spec)
        assert writer.counts()["decisions"] == 10 and len(writer.pending_decisions()) == 1
    ctx, outcome = _run(tmp_path, 10)  # resume: the loop's restore completes the batch
    sims = np.load(out["folder"] + "/simulations.npz")
    measured = {m.step: m for m in ctx.store.measurements()}
    batch = [d for d in ctx.store.decisions() if d.policy == BATCH_POLICY]
    assert [d.step for d in batch] == [8, 9, 10]
    for k, d in enumerate(batch):  # from the sidecar, not simulated again, not charged
        m = measured[d.step]
        assert m.cost == 0.0 and d.params["batch_time"][0] == sims["t_start"][k]
        np.testing.assert_array_equal(m.signal, sims["loops"][k])
        assert d.step in ctx.agent.simulations
    assert outcome.n_measurements == 10 and len(measured) == 13
    assert not ctx.store.pending_decisions()
    ctx.store.close()


def _key(d: Proposal) -> tuple:
    return (d.step, d.instrument, d.location, d.policy, d.t_decided, json.dumps(d.params))


def _sidecar(tmp_path: Path, **change) -> tuple[dict, Path]:
    loc = Location(1, 2)
    prop = Proposal(0, "lgd", "theory_lgd", loc, "conav-design", params={"theta": {"pinning": 0.3}})
    meas = Measurement(0, "lgd", "theory_lgd", loc, np.zeros(change.pop("length", 64)), 0.5)
    prop = Proposal(**{**prop.__dict__, **change.pop("proposal", {})})
    meas = Measurement(**{**meas.__dict__, **change.pop("measurement", {})})
    path = write_sidecar(tmp_path, [prop], [meas])
    payload = {"batch": 0, "file": str(path), "sha256": sha256_of(path), "n": 1}
    payload.update(instrument="lgd", modality="theory_lgd")
    payload.update(change)
    return payload, path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instrument": "afm"}, "is not a theory simulator of this campaign"),
        ({"n": 2}, "inconsistent row counts"),
        ({"file": "/nonexistent/simulations.npz"}, "does not exist"),
        ({"sha256": "0" * 64}, "changed after the batch was posted"),
        ({"length": 5}, "finite signals of length"),
        ({"measurement": {"location": Location(99, 0)}}, "on the 14 x 14 grid"),
        ({"measurement": {"cost": float("nan")}}, "costs must be finite"),
        ({"proposal": {"params": {"theta": {"pinning": "x"}}}}, "no finite theta"),
    ],
)
def test_read_batch_names_what_is_wrong(tmp_path: Path, change: dict, message: str) -> None:
    spec = parse_spec(_spec(tmp_path))
    sample = sample_from_spec(spec.sample, spec.seed)
    length = sample.modalities["theory_lgd"].length
    change.setdefault("length", length)
    payload, _ = _sidecar(tmp_path, **change)
    with TraceStore.create(
        tmp_path / "t.zarr",
        campaign=spec.to_json_dict(),
        modalities=sample.modalities,
        sample_shape=sample.shape,
    ) as store:
        with pytest.raises(TheoryBatchError, match=message) as info:
            read_batch(payload, store, spec)
        assert "\n" not in str(info.value)
        grid = spec.model_copy(update={"policy": spec.policy.model_copy(update={"name": "ei"})})
        with pytest.raises(TheoryBatchError, match="does not co-navigate"):
            read_batch(payload, store, grid)


def test_idle_campaign_takes_the_batch_itself_once(tmp_path: Path) -> None:
    ctx, _ = _run(tmp_path, 8)
    ctx.store.close()
    store = ctx.spec.resolved_store()
    out = run_theory_batch(str(store), n_simulations=2, register=False)
    assert out["recorded_steps"] == [8, 9] and not Inbox(store).pending()
    # the same batch posted again is refused as already recorded
    item = next(i for i in TraceStore.open(store).interventions() if i.kind == THEORY_BATCH)
    Inbox(store).post(THEORY_BATCH, {k: v for k, v in item.payload.items() if k != "steps"})
    assert absorb_if_idle(store) == []
    last = TraceStore.open(store).interventions()[-1]
    assert "already in the trace (steps 8-9)" in last.payload["rejected"]
    status = campaign_status(store)  # status sees the batch, and that the batch paid for it
    assert status["measurements"]["total"] == 10 and status["budget_used"] == pytest.approx(1.0)
    assert status["theory_batches"] == {
        "recorded": 1,
        "refused": 1,
        "simulations": 2,
        "cost": pytest.approx(1.0),
    }
    assert "1 batches in the trace (2 simulations" in format_status(status)
    assert "8/8 measurements" in format_status(status)
    # resume: the agent rebuilt from the trace knows the batch's simulations
    ctx, outcome = _run(tmp_path, 10)
    assert {8, 9} <= set(ctx.agent.simulations) and outcome.n_measurements == 10
    ctx.store.close()


@pytest.mark.slow  # `coscope run` on Dask + Prefect in a subprocess, a theory-batch flow run
@pytest.mark.xdist_group("engines")
def test_a_scheduled_batch_lands_in_a_campaign_running_on_dask(
    tmp_path: Path, prefect_server: str
) -> None:
    data = _spec(tmp_path / "run", 20)
    data["instruments"][0]["latency_s"] = 0.6  # the campaign runs long enough to post into
    data.update(time_scale=1.0, dask_workers=1)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    store = parse_spec(data).resolved_store()
    proc = _coscope("run", str(spec_path), api_url=prefect_server)
    try:
        _wait_until(store, proc, lambda counts: counts["measurements"] >= 4, timeout=600)
        with temporary_settings({PREFECT_API_URL: prefect_server}):
            out = theory_batch_flow(str(store), n_simulations=2, register_twin=False)
        assert out["recorded_steps"] is None  # the running campaign holds the writer role
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    trace = TraceStore.open(store, mode="r")
    batch = [d for d in trace.decisions() if d.policy == BATCH_POLICY]
    assert len(batch) == 2 and all("flow run" in d.params["who"] for d in batch)
    measured = {m.step for m in trace.measurements()}
    assert {d.step for d in batch} <= measured and len(measured) == 20 + 2
    assert not Inbox(store).pending()
    fits = trace.fits()
    assert fits and {f.hyperparameters["role"] for f in fits} >= {"theory", "experiment"}
    assert all(f.hyperparameters["where"].startswith("tcp://") for f in fits), [
        f.hyperparameters["where"] for f in fits
    ]


def test_resume_with_queues_keeps_theory_batch_rows_apart_from_the_campaigns(
    tmp_path: Path,
) -> None:
    ctx, _ = _run(tmp_path, 8, queue_depth=1)
    ctx.store.close()
    store = ctx.spec.resolved_store()
    with TraceStore.open(store, mode="a"):  # a campaign holds the writer role: left for it
        run_theory_batch(str(store), n_simulations=3, register=False)
    ctx, outcome = _run(tmp_path, 12, queue_depth=1)  # takes the batch, then 4 more of its own
    ctx.store.close()
    ctx, outcome = _run(tmp_path, 14, queue_depth=1)  # resumed with batch rows inside the trace
    measured = [m.step for m in ctx.store.measurements()]
    decisions = ctx.store.decisions()
    batch = [d.step for d in decisions if d.policy == BATCH_POLICY]
    assert len(batch) == 3 and outcome.n_measurements == 14
    assert len(measured) == len(set(measured)) == 14 + 3  # nothing measured twice or lost
    assert {d.step for d in decisions} == set(measured)
    assert set(batch) <= set(ctx.agent.simulations)  # the rebuilt agent knows the batch
    assert len(ctx.agent.simulations) + len(ctx.agent.experiments) == 17
    ctx.store.close()
