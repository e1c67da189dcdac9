"""Per-instrument request queues (``queue_depth``): decided ahead, chained, never overlapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.config import CampaignSpec, load_spec
from coscope.errors import ConfigError, InstrumentError
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.storage import TraceStore
from tests.campaign.test_loop import _spec as loop_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _spec(tmp_path: Path, **changes) -> CampaignSpec:
    """test_loop's one-instrument EI campaign (14 measurements), one request queued."""
    return loop_spec(tmp_path, **{"name": "queue", "queue_depth": 1, **changes})


def _run(spec: CampaignSpec, executor_class=LocalExecutor):
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    executor = executor_class(instruments_from_spec(spec, sample))
    try:
        outcome = CampaignLoop(ctx, executor).run()
    finally:
        ctx.store.close()
    return outcome, TraceStore.open(spec.resolved_store(), "r")


def _trace(store: TraceStore) -> dict:
    """What must agree between an uninterrupted and a resumed run."""
    return {
        "decisions": [
            (d.step, d.location, d.policy, d.n_known, d.model_version) for d in store.decisions()
        ],
        "measurements": [(m.step, m.location, m.cost) for m in store.measurements()],
        "fits": [(f.version, f.n_train, f.step, f.loss) for f in store.fits()],
    }


def test_queued_decisions_see_their_predecessor_as_pending(tmp_path: Path) -> None:
    outcome, store = _run(_spec(tmp_path))
    assert outcome.status == "finished" and outcome.n_measurements == 14
    decisions = store.decisions()
    assert len({d.location for d in decisions}) == 14  # the queued one never repeats
    # decided two at a time, the second while the first was still to be recorded; none
    # queued once what is left would not give the instrument one more after it (12, 13)
    assert [d.n_known for d in decisions] == [k - k % 2 for k in range(12)] + [12, 13]
    assert [m.step for m in store.measurements()] == list(range(14))
    assert store.pending_decisions() == []


def test_depth_zero_is_the_loop_without_queues(tmp_path: Path) -> None:
    _, store = _run(_spec(tmp_path, queue_depth=0, budget={"max_measurements": 8}))
    assert [d.n_known for d in store.decisions()] == list(range(8))


def test_cost_budget_counts_queued_requests(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_cost": 10.0, "max_measurements": None}, queue_depth=2)
    outcome, store = _run(spec)
    assert outcome.cost_spent <= 10.0
    assert outcome.n_measurements == 6  # 6 x 1.5 = 9; a 7th (even queued) would cost 10.5
    assert len(store.decisions()) == 6


def test_stop_lets_the_queued_request_complete(tmp_path: Path) -> None:
    from coscope.campaign.inbox import Inbox

    spec = _spec(tmp_path)
    inbox = Inbox(spec.resolved_store())

    class StopAtFive(LocalExecutor):
        def submit(self, request, after=None):
            if request.step == 5:  # queued behind step 4
                assert after is not None
                inbox.post("stop", why="enough")
            return super().submit(request, after=after)

    outcome, store = _run(spec, StopAtFive)
    assert outcome.status == "stopped"
    assert [m.step for m in store.measurements()] == list(range(6))  # 5 was decided: measured
    assert store.pending_decisions() == []
    assert len(store.decisions()) == 6


class _Crash(BaseException):
    """The process dies (not an instrument error): nothing after it is stored."""


class CrashAtSix(LocalExecutor):
    def result(self, handle):
        if handle.step == 6:
            raise _Crash
        return super().result(handle)


@pytest.mark.parametrize("interruption", ["crash with two pending", "budget", "stop"])
def test_resume_reproduces_the_uninterrupted_trace(tmp_path: Path, interruption: str) -> None:
    _, full = _run(_spec(tmp_path / "full"))
    spec = _spec(tmp_path / "part")
    if interruption == "crash with two pending":
        with pytest.raises(_Crash):
            _run(spec, CrashAtSix)
        with TraceStore.open(spec.resolved_store(), "r") as store:
            assert [p.step for p in store.pending_decisions()] == [6, 7]  # both of one queue
    elif interruption == "budget":
        _run(_spec(tmp_path / "part", budget={"max_measurements": 7}))
    else:
        from coscope.campaign.inbox import Inbox

        inbox = Inbox(spec.resolved_store())

        class StopAtFour(LocalExecutor):
            def submit(self, request, after=None):
                if request.step == 4:  # stop between the two decisions of a pair
                    inbox.post("stop", why="lunch")
                return super().submit(request, after=after)

        outcome, store = _run(spec, StopAtFour)
        assert outcome.status == "stopped" and len(store.decisions()) == 5
    resumed, store = _run(spec)
    assert resumed.status == "finished"
    assert _trace(store) == _trace(full)
    np.testing.assert_array_equal(
        np.stack([m.signal for m in store.measurements()]),
        np.stack([m.signal for m in full.measurements()]),
    )


def test_status_shows_the_queued_request(tmp_path: Path) -> None:
    from coscope.report.status import campaign_status, format_status

    spec = _spec(tmp_path)
    with pytest.raises(_Crash):
        _run(spec, CrashAtSix)
    status = campaign_status(spec.resolved_store())
    assert status["pending"] == 2 and status["pending_by_instrument"] == {"afm": [6, 7]}
    assert "afm: step 6 next, 7 queued" in format_status(status)


def test_failed_instrument_does_not_measure_its_queued_request(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 6})
    measured: list[int] = []

    class FailsAtTwo(LocalExecutor):
        def __init__(self, instruments):
            afm = instruments["afm"]

            class Stuck:
                def __getattr__(self, name):
                    return getattr(afm, name)

                def measure(self, request):
                    measured.append(request.step)
                    if request.step == 2:
                        raise InstrumentError("stage stuck")
                    return afm.measure(request)

            super().__init__({"afm": Stuck()})

    outcome, store = _run(spec, FailsAtTwo)
    assert outcome.status == "failed" and "step 2" in outcome.reason
    assert "stage stuck" in outcome.reason
    assert measured == [0, 1, 2]  # step 3 was queued behind 2: never measured
    assert [p.step for p in store.pending_decisions()] == [2, 3]
    resumed, store = _run(spec)
    assert resumed.status == "finished"
    assert [m.step for m in store.measurements()] == list(range(6))


@pytest.mark.parametrize("depth", [-1, 5, "one"])
def test_bad_queue_depth_is_one_sentence(tmp_path: Path, depth) -> None:
    with pytest.raises(ConfigError) as err:
        _spec(tmp_path, queue_depth=depth)
    message = str(err.value)
    assert message.startswith("invalid campaign spec: 'queue_depth'")
    assert message.count(". ") == 0 and message.endswith(".")


def test_queue_depth_may_change_on_resume(tmp_path: Path) -> None:
    _run(_spec(tmp_path, queue_depth=0, budget={"max_measurements": 5}))
    outcome, store = _run(_spec(tmp_path, queue_depth=1, budget={"max_measurements": 9}))
    assert outcome.status == "finished" and outcome.n_measurements == 9
    assert len({d.location for d in store.decisions()}) == 9
    changed = [i.payload for i in store.interventions() if i.kind == "spec"]
    assert any(c.get("queue_depth") == 1 for c in changed)  # recorded as a changed setting


def test_modality_chooser_with_queues_never_duplicates(tmp_path: Path) -> None:
    """Two instruments, a multi-task agent choosing the modality, one request queued each."""
    spec = load_spec(
        EXAMPLES / "co_orchestration.yaml",
        {"run_dir": str(tmp_path / "run"), "time_scale": 0.0, "queue_depth": 1},
    )
    policy = spec.policy.model_copy(update={"params": {**spec.policy.params, "background_fit": 0}})
    budget = type(spec.budget)(max_measurements=12, max_cost=None)
    spec = spec.model_copy(update={"policy": policy, "budget": budget})
    outcome, store = _run(spec)
    assert outcome.status == "finished" and outcome.n_measurements == 12
    decisions = store.decisions()
    assert len({(d.modality, d.location) for d in decisions}) == 12
    per = {name: [d for d in decisions if d.instrument == name] for name in ("scope", "raman2")}
    assert all(len(ds) >= 2 for ds in per.values())
    # each instrument's second request was decided before its first was recorded
    assert all(ds[1].n_known == ds[0].n_known for ds in per.values())


def _two_speeds(tmp_path: Path, **changes) -> CampaignSpec:
    instruments = [
        {"name": "fast", "latency_s": 0.002, "cost": 1.0, "noise": 0.02},
        {"name": "slow", "latency_s": 0.01, "cost": 5.0, "noise": 0.02},
    ]
    return _spec(tmp_path, **{"instruments": instruments, "time_scale": 1.0, **changes})


def test_a_request_is_queued_only_if_it_starts_before_the_budget_runs_out(tmp_path: Path) -> None:
    from coscope.campaign.queues import starts_in_time

    spec = _two_speeds(tmp_path, budget={"max_measurements": 20})
    cost = {"fast": 1.0, "slow": 5.0}.get
    both = ["fast", "slow"]
    # all busy: 1/0.002 + 1/0.01 = 600 measurements/s; slow starts in 0.01 s: needs R >= 6
    assert starts_in_time(spec, "slow", 1, both, cost, 13, 0.0)  # R = 6
    assert not starts_in_time(spec, "slow", 1, both, cost, 14, 0.0)  # R = 5
    assert starts_in_time(spec, "fast", 1, both, cost, 17, 0.0)  # R = 2: 0.0033 s >= 0.002
    assert not starts_in_time(spec, "fast", 1, both, cost, 18, 0.0)  # R = 1
    by_cost = _two_speeds(tmp_path, budget={"max_cost": 20.0, "max_measurements": None})
    # spending 1/0.002 + 5/0.01 = 1000 per s; slow (cost 5) needs 10 left after it
    assert starts_in_time(by_cost, "slow", 1, both, cost, 0, 5.0)
    assert not starts_in_time(by_cost, "slow", 1, both, cost, 0, 5.5)
    dry = _two_speeds(tmp_path, time_scale=0.0)
    assert starts_in_time(dry, "slow", 4, both, cost, 19, 0.0)  # no latencies: no horizon


def test_slow_instrument_stops_queueing_first(tmp_path: Path) -> None:
    spec = _two_speeds(tmp_path, budget={"max_measurements": 20})
    outcome, store = _run(spec)
    assert outcome.status == "finished" and outcome.n_measurements == 20
    order = [m.step for m in store.measurements()]
    queued = {"fast": [], "slow": []}
    last: dict[str, int] = {}
    for d in store.decisions():  # queued: its instrument's previous one was not yet recorded
        before = last.get(d.instrument)
        if before is not None and order.index(before) >= d.n_known:
            queued[d.instrument].append(d.step)
        last[d.instrument] = d.step
    assert queued["slow"] and queued["fast"]
    assert all(20 - step - 1 >= 6 for step in queued["slow"])  # the rule above, in the loop
    assert max(queued["fast"]) > max(queued["slow"])


def test_pause_lets_the_queue_drain_then_resumes(tmp_path: Path) -> None:
    from coscope.campaign.inbox import Inbox

    spec = _spec(tmp_path)
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    inbox = Inbox(spec.resolved_store())
    paused_with: list[int] = []

    class PauseAtFive(LocalExecutor):
        def submit(self, request, after=None):
            if request.step == 5:  # queued behind step 4
                inbox.post("pause", why="look")
            return super().submit(request, after=after)

    ctx, _ = open_context(spec.resolved_store(), track=False)
    loop = CampaignLoop(ctx, PauseAtFive(instruments_from_spec(spec, sample)))

    def pauser(step: int) -> None:
        paused_with.append(sum(len(q) for q in loop.inflight.values()))
        paused_with.append(ctx.store.counts()["measurements"])
        inbox.post("resume", why="looked")

    loop.pauser = pauser
    outcome = loop.run()
    ctx.store.close()
    assert paused_with == [0, 6]  # nothing in flight or queued while paused; step 5 measured
    assert outcome.status == "finished" and outcome.n_measurements == 14


def test_resumed_agent_with_queues_records_each_of_its_fits_once(tmp_path: Path) -> None:
    """The co-navigation agent refits after every result and hands its fits over
    (``take_fits``); resumed with stored measurements still to replay, the refits of the
    replay reproduce stored fits and are not recorded a second time."""
    from tests.agents.test_conavigation import _run as conav_run

    full, _ = conav_run(tmp_path / "full", 12, queue_depth=1)
    once = [(f.n_train, f.step, f.hyperparameters["role"]) for f in full.store.fits()]
    full.store.close()
    part, _ = conav_run(tmp_path / "part", 8, queue_depth=1)
    assert part.store.decisions()[-1].n_known < 8  # resume has stored ones to replay
    part.store.close()
    resumed, _ = conav_run(tmp_path / "part", 12, queue_depth=1)
    fits = [(f.n_train, f.step, f.hyperparameters["role"]) for f in resumed.store.fits()]
    resumed.store.close()
    assert sorted(fits) == sorted(once)  # each model once, as in the uninterrupted run
