"""The approval gate on the local executor: answers from the inbox, timeouts on an injected
clock (no sleeps), resume while a decision waits, replay of approved/modified/rejected steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.approval import APPROVAL, gate_state
from coscope.campaign.approval_checks import AnswerChecks, ApprovalError
from coscope.campaign.inbox import Inbox
from coscope.config import CampaignSpec, parse_spec
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
    space_from_spec,
)
from coscope.replay import Counterfactual, replay
from coscope.storage import TraceStore
from coscope.storage.integrity import check_trace
from coscope.types import Location


def _spec(tmp_path: Path, budget: int = 8, **approval) -> CampaignSpec:
    return parse_spec(
        {
            "name": "gate",
            "seed": 3,
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.0, "noise": 0.02}],
            "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 30},
            "budget": {"max_measurements": budget},
            "time_scale": 0.0,
            "run_dir": str(tmp_path / "run"),
            "approval": {"required": True, **approval},
        }
    )


class Clock:
    """A clock the test moves; the gate's timeouts read it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _loop(spec: CampaignSpec, approver: Callable, clock: Clock | None = None):
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    loop = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample)))
    if clock is not None:
        loop.gate.clock = clock
    loop.approver = lambda step, left: approver(loop, step, left)
    return loop, ctx


def _waiting(loop: CampaignLoop) -> list[int]:
    return sorted(loop.gate.waiting)


def test_every_decision_waits_and_answers_are_recorded(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    answers = iter(
        [
            {"action": "approve"},
            {"action": "approve", "location": [0, 0]},
            {"action": "reject", "reason": "too close to the electrode"},
        ]
    )
    seen: list[int] = []

    def approver(loop, step, left):
        assert not loop.inflight  # nothing measured while it waits
        (waiting,) = _waiting(loop)
        seen.append(waiting)
        payload = next(answers, {"action": "approve"})
        Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, **payload}, why="checked")

    loop, ctx = _loop(spec, approver)
    outcome = loop.run()
    store = ctx.store
    assert outcome.status == "finished" and outcome.n_measurements == 8
    decisions, measured = store.decisions(), {m.step: m for m in store.measurements()}
    assert seen == [d.step for d in decisions]  # every decision waited, one at a time
    assert len(decisions) == 9 and 2 not in measured  # step 2 rejected: never measured
    assert measured[1].location == Location(0, 0) != decisions[1].location  # modified
    assert decisions[2].location not in {d.location for d in decisions[3:]}  # not proposed again
    rows = [i for i in store.interventions() if i.kind == APPROVAL]
    assert [r.payload["answer"] for r in rows[:3]] == ["approved", "modified", "rejected"]
    assert rows[1].payload["location"] == [0, 0] and rows[2].payload["reason"]
    assert all(r.why == "checked" for r in rows)
    state = gate_state(spec, decisions, set(measured), store.interventions())
    assert not state.waiting and [p.step for p in state.dropped] == [2]
    store.close()
    assert check_trace(spec.resolved_store()).ok  # `coscope check` knows the answers
    assert all(r["agree"] for r in replay(spec.resolved_store(), metrics=False).rows)
    # a counterfactual walks the same answered path: 9 decisions, the rejected one pending
    other = replay(spec.resolved_store(), Counterfactual(policy="ucb"), metrics=False)
    assert [r["step"] for r in other.rows] == list(range(9))


def test_skip_timeout_drops_the_proposal_and_the_agent_decides_again(tmp_path: Path) -> None:
    spec = _spec(tmp_path, timeout_s=60.0, on_timeout="skip")
    clock = Clock()
    calls: list[float | None] = []

    def approver(loop, step, left):
        calls.append(left)
        (waiting,) = _waiting(loop)
        if waiting == 1:  # nobody answers step 1: its minute passes
            clock.now += 61.0
        else:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, approver, clock)
    outcome = loop.run()
    store = ctx.store
    assert outcome.status == "finished" and outcome.n_measurements == 8
    assert calls[0] == pytest.approx(60.0)  # the approver is told when the timeout is due
    decisions = store.decisions()
    assert 1 not in store.measured_steps() and len(decisions) == 9
    assert decisions[1].location not in {d.location for d in decisions[2:]}
    (skipped,) = [i for i in store.interventions() if i.payload.get("answer") == "timed_out"]
    assert skipped.payload == {"step": 1, "answer": "timed_out", "on_timeout": "skip"}
    assert skipped.who == "coscope"
    store.close()
    assert all(r["agree"] for r in replay(spec.resolved_store(), metrics=False).rows)


def test_stop_timeout_stops_and_resume_waits_for_the_same_proposal(tmp_path: Path) -> None:
    spec = _spec(tmp_path, timeout_s=30.0, on_timeout="stop")
    clock = Clock()

    def first_run(loop, step, left):
        (waiting,) = _waiting(loop)
        if waiting < 3:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})
        else:
            clock.now += 31.0  # step 3 waits past its timeout

    loop, ctx = _loop(spec, first_run, clock)
    outcome = loop.run()
    assert outcome.status == "stopped" and "step 3 waited 30 s" in outcome.reason
    assert ctx.store.counts()["decisions"] == 4 and ctx.store.measured_steps() == {0, 1, 2}
    waiting_location = ctx.store.decisions()[3].location
    ctx.store.close()

    held: list[list[int]] = []

    def second_run(loop, step, left):
        held.append(_waiting(loop))
        Inbox(loop.ctx.store.path).post(APPROVAL, {"step": held[-1][0], "action": "approve"})

    loop, ctx = _loop(spec, second_run, Clock())
    outcome = loop.run()
    assert outcome.status == "finished" and outcome.n_measurements == 8
    assert held[0] == [3]  # the same proposal, waiting again
    store = ctx.store
    assert store.decisions()[3].location == waiting_location
    assert [m.step for m in store.measurements()] == list(range(8))  # nothing twice
    answers = [i.payload["answer"] for i in store.interventions() if i.kind == APPROVAL]
    assert answers == ["approved"] * 3 + ["timed_out"] + ["approved"] * 5
    store.close()


class Killed(BaseException):
    """The campaign process dies while a decision waits."""


def test_killed_while_waiting_resumes_waiting_and_measures_once(tmp_path: Path) -> None:
    spec = _spec(tmp_path)

    def dies_at_step_4(loop, step, left):
        (waiting,) = _waiting(loop)
        if waiting == 4:
            raise Killed
        Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, dies_at_step_4)
    with pytest.raises(Killed):
        loop.run()
    ctx.store.close()  # what the OS does for a killed process (the lock goes with it)
    # an answer posted while no campaign runs, checked against the trace as it is
    store = TraceStore.open(spec.resolved_store(), "r")
    sample = sample_from_spec(spec.sample, spec.seed)
    checks = AnswerChecks(
        spec,
        sample,
        space_from_spec(spec.sample, sample),
        store.decisions(),
        store.measurements(),
        store.interventions(),
    )
    assert [p.step for p in checks.state.waiting] == [4]
    answer = checks.check({"step": 4, "action": "approve", "location": [15, 15]})
    assert answer.answer == "modified" and answer.location == Location(15, 15)
    Inbox(store.path).post(APPROVAL, {"step": 4, "action": "approve", "location": [15, 15]})

    def approves(loop, step, left):
        (waiting,) = _waiting(loop)
        Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, approves)
    assert loop.run().n_measurements == 8
    measured = {m.step: m for m in ctx.store.measurements()}
    assert sorted(measured) == list(range(8)) and measured[4].location == Location(15, 15)
    assert ctx.store.counts()["decisions"] == 8  # nothing decided twice
    ctx.store.close()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"step": 9, "action": "approve"}, "step 9 does not wait"),
        ({"step": 0, "action": "maybe"}, "action must be approve or reject"),
        ({"step": 0, "action": "approve", "location": [99, 0]}, "off the 16 x 16 sample"),
        ({"step": 0, "action": "approve", "location": "here"}, "location must be [row, col]"),
        ({"step": 0, "action": "approve", "location": [float("inf"), 0]}, "[row, col]"),
        ({"step": 0, "action": "approve", "params": [1]}, "params must be an object"),
        ({"step": True, "action": "approve"}, "--step N"),
        ({"step": 0, "action": "approve", "params": {"volts": 3}}, "volts"),
        ({"step": 0, "action": "reject", "location": [1, 1]}, "a rejection takes a reason"),
        ({"action": "approve"}, "--step N"),
    ],
)
def test_a_bad_answer_is_one_sentence_and_recorded_as_refused(
    tmp_path: Path, payload: dict, words: str
) -> None:
    spec = _spec(tmp_path)
    posted: list[int] = []

    def approver(loop, step, left):
        (waiting,) = _waiting(loop)
        if not posted:  # first the bad answer, then a good one
            posted.append(waiting)
            Inbox(loop.ctx.store.path).post(APPROVAL, payload)
        else:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, approver)
    assert loop.run().n_measurements == 8
    rows = [i for i in ctx.store.interventions() if i.kind == APPROVAL]
    assert "rejected" in rows[0].payload and words in rows[0].payload["rejected"]
    assert "\n" not in rows[0].payload["rejected"]
    assert rows[1].payload == {"step": 0, "answer": "approved"}  # the bad one changed nothing
    assert ctx.store.measurements()[0].location == ctx.store.decisions()[0].location
    ctx.store.close()


def _stopped_waiting(tmp_path: Path) -> CampaignSpec:
    """A campaign stopped (stop timeout) with step 2 waiting."""
    spec = _spec(tmp_path, timeout_s=5.0, on_timeout="stop")
    clock = Clock()

    def approver(loop, step, left):
        (waiting,) = _waiting(loop)
        if waiting < 2:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})
        else:
            clock.now += 10.0

    loop, ctx = _loop(spec, approver, clock)
    assert loop.run().status == "stopped"
    ctx.store.close()
    return spec


def test_cli_lists_validates_and_posts_answers(tmp_path: Path, capsys) -> None:
    from coscope.cli import main

    spec = _stopped_waiting(tmp_path)
    store = str(spec.resolved_store())
    inbox = Inbox(spec.resolved_store())
    assert main(["approve", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("step    2  afm") and "price 1" in out[0]
    assert "[ei score " in out[0] or "[random" in out[0]  # the agent's reason
    for argv, words in [
        (["approve", store, "--step", "1"], "step 1 does not wait"),
        (["approve", store, "--step", "2", "--location", "16,0"], "off the 16 x 16 sample"),
        (["approve", store, "--step", "2", "--location", "x"], "is not ROW,COL"),
        (["approve", store, "--step", "2", "--params", "volts=3"], "volts"),
        (["approve", store, "--location", "1,1"], "--step N"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and "\n" not in err
    assert inbox.pending() == []  # nothing posted
    measured = {(m.location.row, m.location.col) for m in TraceStore.open(store).measurements()}
    taken = ",".join(str(v) for v in sorted(measured)[0])
    assert main(["approve", store, "--step", "2", "--location", taken]) == 2
    assert "measured or pending already" in capsys.readouterr().err
    assert main(["approve", store, "--step", "2", "--location", "7,9", "--why", "nicer"]) == 0
    err = capsys.readouterr().err
    assert "modified at (7, 9)" in err and "coscope resume" in err
    assert main(["reject", store, "--step", "2"]) == 2  # answered already (in the inbox)
    assert "in the inbox already" in capsys.readouterr().err
    assert main(["status", store]) == 0
    status = capsys.readouterr().out
    assert "waiting    step 2 on afm" in status and "approval   answers: approved 2" in status

    def approves(loop, step, left):
        (waiting,) = _waiting(loop)
        Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(_spec(tmp_path, timeout_s=5.0, on_timeout="stop"), approves)
    assert loop.run().status == "finished"
    measured_at = {m.step: m.location for m in ctx.store.measurements()}
    assert measured_at[2] == Location(7, 9)
    row = next(i for i in ctx.store.interventions() if i.payload.get("answer") == "modified")
    assert row.why == "nicer" and row.payload["step"] == 2
    ctx.store.close()
    assert main(["status", store, "--json"]) == 0
    import json

    block = json.loads(capsys.readouterr().out)["approval"]
    assert block["waiting"] == [] and block["answers"]["modified"] == 1
    assert block["answers"]["timed_out"] == 1 and block["dropped"] == []


def test_a_rejection_at_the_end_gives_its_budget_back(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget=3)
    rejected: list[int] = []

    def approver(loop, step, left):
        (waiting,) = _waiting(loop)
        if waiting == 2 and not rejected:  # the last one the budget allows: rejected
            rejected.append(waiting)
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": 2, "action": "reject"})
        else:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, approver)
    outcome = loop.run()
    assert outcome.n_measurements == 3 and "measurement budget reached (3 of 3)" in outcome.reason
    assert ctx.store.measured_steps() == {0, 1, 3}
    ctx.store.close()


def test_params_modification_on_a_gated_simulator_only(tmp_path: Path) -> None:
    """Only the lattice simulator is gated; its fidelity-8 requests are modified to 4 and
    priced again; the microscope's requests run without waiting."""
    from tests.agents.test_conavigation import _spec as conav_spec

    data = conav_spec(tmp_path, 14)
    data["instruments"][1].update(
        {
            "kind": "theory_lattice",
            "cost": 2.0,
            "options": {
                "sizes": [4, 8],
                "theta": {"disorder": 0.3, "kappa": 0.5},
                "calibrate": {"coercive_field": [1.0, 5.0], "imprint_gain": [-1.0, 1.0]},
            },
        }
    )
    data["approval"] = {"required": True, "instruments": ["lgd"]}
    spec = parse_spec(data)
    held: list[str] = []

    def approver(loop, step, left):
        posted = {i.payload.get("step") for i in loop.inbox.peek()}
        for proposal in loop.gate.waiting.values():
            if proposal.step in posted:
                continue
            held.append(proposal.instrument)
            answer = {"step": proposal.step, "action": "approve"}
            if proposal.params.get("fidelity") == 8:
                answer["params"] = {"fidelity": 4}
            Inbox(loop.ctx.store.path).post(APPROVAL, answer)

    loop, ctx = _loop(spec, approver)
    # a person answering while the microscope measures: after each of its measurements
    ctx.on_measurement = lambda row: approver(loop, None, None)
    loop.run()
    store = ctx.store
    decisions = {d.step: d for d in store.decisions()}
    sims = [m for m in store.measurements() if m.instrument == "lgd"]
    assert sims and set(held) == {"lgd"}  # the microscope never waited
    modified = {
        i.payload["step"]: i.payload
        for i in store.interventions()
        if i.payload.get("answer") == "modified"
    }
    assert modified  # some fidelity-8 requests came, and were modified
    for m in sims:
        if m.step in modified:
            assert decisions[m.step].params["fidelity"] == 8
            assert modified[m.step]["params"]["fidelity"] == 4
            assert modified[m.step]["expected"] == pytest.approx(2.0 * (4 / 8) ** 2)
            assert m.cost == pytest.approx(0.5)  # measured at fidelity 4
    store.close()


def test_a_modification_must_fit_the_cost_budget(tmp_path: Path) -> None:
    """With stage travel priced, a far location costs more than the budget has left."""
    data = _spec(tmp_path, timeout_s=5.0, on_timeout="stop").to_json_dict()
    data["instruments"][0]["travel_cost_per_um"] = 20.0  # pixels are 0.05 um
    data["budget"] = {"max_cost": 12.0, "max_measurements": None}
    spec = parse_spec(data)
    clock = Clock()

    def approver(loop, step, left):
        (waiting,) = _waiting(loop)
        if waiting < 1:
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})
        else:
            clock.now += 10.0  # step 1 waits: the campaign stops

    loop, ctx = _loop(spec, approver, clock)
    assert loop.run().status == "stopped"
    ctx.store.close()
    store = TraceStore.open(spec.resolved_store(), "r")
    sample = sample_from_spec(spec.sample, spec.seed)
    checks = AnswerChecks(
        spec, sample, None, store.decisions(), store.measurements(), store.interventions()
    )
    start = store.decisions()[0].location
    far = Location(15 if start.row < 8 else 0, 15 if start.col < 8 else 0)
    with pytest.raises(ApprovalError, match="exceeds the cost budget 12") as info:
        checks.check({"step": 1, "action": "approve", "location": [far.row, far.col]})
    assert "\n" not in str(info.value)
    near = Location(start.row, start.col + (1 if start.col < 15 else -1))
    answer = checks.check({"step": 1, "action": "approve", "location": [near.row, near.col]})
    travel = 20.0 * sample.pixel_size_um  # one pixel from the stage's position after step 0
    assert answer.expected_cost == pytest.approx(1.0 + travel, rel=1e-6)


def test_queued_decisions_wait_too(tmp_path: Path) -> None:
    """With queue_depth 1 the decision queued behind the one waiting waits as well."""
    data = _spec(tmp_path).to_json_dict()
    data["queue_depth"] = 1
    spec = parse_spec(data)
    most: list[int] = []

    def approver(loop, step, left):
        most.append(len(loop.gate.waiting))
        for waiting in _waiting(loop):
            Inbox(loop.ctx.store.path).post(APPROVAL, {"step": waiting, "action": "approve"})

    loop, ctx = _loop(spec, approver)
    assert loop.run().n_measurements == 8
    assert max(most) == 2  # two decisions waited at once
    assert [m.step for m in ctx.store.measurements()] == list(range(8))
    ctx.store.close()
    assert all(r["agree"] for r in replay(spec.resolved_store(), metrics=False).rows)
