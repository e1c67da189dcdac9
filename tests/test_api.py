"""The Python API: the docs page runs, ask/tell leaves the loop's trace, resume, budget, errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import coscope
from coscope.campaign.inbox import Inbox
from coscope.config import CampaignSpec, parse_spec
from coscope.errors import ConfigError, CoscopeError, InstrumentError, ProposalError, StoreError
from coscope.infra.compose import (
    instruments_from_spec,
    sample_from_spec,
)
from coscope.infra.local import run_local
from coscope.storage import TraceStore
from coscope.types import Measurement

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _spec(tmp_path: Path, **changes) -> CampaignSpec:
    data = {
        "name": "api",
        "seed": 4,
        "sample": {"kind": "synthetic_film", "params": {"size": 20}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 50},
        "budget": {"max_measurements": 12},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return parse_spec(data)


def _truth(campaign: coscope.Campaign, proposal) -> np.ndarray:
    return campaign.sample.truth[proposal.modality][proposal.location.row, proposal.location.col]


def _one_sentence(exc: CoscopeError) -> str:
    message = str(exc)
    assert "\n" not in message and message.endswith("."), message
    return message


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/python-api.md, in order, as a user would paste them."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/python-api.md has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "python_api_example"}
    exec(compile("\n".join(blocks), str(DOCS), "exec"), namespace)
    store = TraceStore.open(tmp_path / "runs/python-api/trace.zarr", "r")
    assert store.counts()["decisions"] == store.counts()["measurements"] == 22
    assert store.get_attr("status") == "finished"
    assert "measurement budget is used up" in store.get_attr("finished_reason")
    from mlflow.tracking import MlflowClient  # the same MLflow run across both sessions

    client = MlflowClient(f"sqlite:///{(tmp_path / 'runs/python-api/mlflow.db').resolve()}")
    history = client.get_metric_history(store.get_attr("mlflow_run_id"), "best_so_far")
    assert sorted(int(m.step) for m in history) == list(range(22))
    assert len(client.search_runs([client.get_experiment_by_name("python-api").experiment_id])) == 1


def _loop_trace(spec: CampaignSpec) -> TraceStore:
    return run_local(spec)[1]


def test_trace_equals_the_loop_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Same spec and seed, the user's function returning the simulated instrument's signals,
    closed with a proposal pending and re-opened half-way: the loop's trace."""
    expected = _loop_trace(_spec(tmp_path / "loop"))
    spec = _spec(tmp_path / "api")
    instrument = instruments_from_spec(spec, sample_from_spec(spec.sample, spec.seed))["afm"]

    def measure(campaign: coscope.Campaign, proposal) -> np.ndarray:
        return instrument.measure(campaign.request(proposal)).signal

    campaign = coscope.Campaign.create(spec, track=False)
    for _ in range(6):
        (proposal,) = campaign.ask()
        campaign.tell(proposal, measure(campaign, proposal))
    campaign.ask()
    campaign.close()
    with coscope.Campaign.open(spec.resolved_store(), track=False) as campaign:
        while proposals := campaign.ask():
            for proposal in proposals:
                campaign.tell(proposal, measure(campaign, proposal))
    got = TraceStore.open(spec.resolved_store(), "r")

    def decisions(store: TraceStore) -> list[tuple]:
        return [(d.step, d.instrument, d.modality, d.location, d.policy, d.n_known)
                for d in store.decisions()]  # fmt: skip

    assert decisions(got) == decisions(expected) and len(decisions(got)) == 12
    for a, b in zip(got.measurements(), expected.measurements(), strict=True):
        assert (a.step, a.location, a.cost) == (b.step, b.location, b.cost)
        np.testing.assert_array_equal(a.signal, b.signal)
    assert [f.n_train for f in got.fits()] == [f.n_train for f in expected.fits()]
    from coscope.cli import main

    assert main(["status", str(spec.resolved_store())]) == 0
    assert main(["replay", str(spec.resolved_store())]) == 0
    assert "100% agree" in capsys.readouterr().out


def test_resume_hands_back_pending_proposals(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    campaign = coscope.Campaign.create(spec, track=False)
    first, second = campaign.ask("afm", n=2)
    campaign.tell(first, _truth(campaign, first))
    assert campaign.ask() == [] and "busy with step 1" in campaign.reason
    campaign.close()
    assert campaign.status()["status"] == "stopped"
    with pytest.raises(StoreError):
        campaign.ask()

    def key(p):  # a stored proposal's identity (its NaN scores compare unequal)
        return (p.step, p.instrument, p.location, p.t_decided, p.n_known)

    campaign = coscope.Campaign.open(spec.resolved_store(), track=False)
    assert [key(p) for p in campaign.pending] == [key(second)]
    (again,) = campaign.ask()
    assert key(again) == key(second)
    assert campaign.request(again).seed == campaign.request(second).seed
    (third,) = campaign.ask("afm")  # more for the same instrument: queued behind it
    assert third.step == 2 and third.location not in (first.location, second.location)
    row = campaign.tell(again.step, _truth(campaign, again), cost=2.0, t_end=5.0)
    assert row["step"] == 1 and row["n_measurements"] == 2 and row["cost_spent"] == 3.5
    campaign.close()
    stored = TraceStore.open(spec.resolved_store(), "r").measurements()
    assert [(m.step, m.cost, m.t_end) for m in stored] == [(0, 1.5, stored[0].t_end), (1, 2.0, 5.0)]
    resumed = _loop_trace(spec)  # what `coscope resume` runs: step 2 measured by the spec's afm
    assert [m.step for m in resumed.measurements()] == list(range(12))
    assert resumed.decisions()[2].location == third.location


def test_budget_end(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 5})
    with coscope.Campaign.create(spec, track=False) as campaign:
        asked = campaign.ask("afm", n=10)
        assert len(asked) == 5 and "measurement budget is used up" in asked.reason
        assert "tell the 5 pending" in asked.reason
        for proposal in asked:
            campaign.tell(proposal, _truth(campaign, proposal))
        empty = campaign.ask()
        assert empty == [] and _one_sentence(ConfigError(empty.reason))
        assert "(5 measured and 0 pending of 5)" in empty.reason
    status = campaign.status()
    assert status["status"] == "finished" and status["measurements"]["total"] == 5

    spec = _spec(tmp_path / "cost", budget={"max_cost": 10.0, "max_measurements": None})
    campaign = coscope.Campaign.create(spec, track=False)
    asked = campaign.ask("afm", n=9)
    assert len(asked) == 6 and "cost budget has no room" in asked.reason  # 6 x 1.5 = 9
    for proposal in asked:
        campaign.tell(proposal, _truth(campaign, proposal))
    summary = campaign.finish()  # as a finished `coscope run`: report, status
    assert summary["status"] == "finished" and summary["cost_spent"] == 9.0
    assert "cost budget" in summary["reason"] and Path(summary["report"]).is_dir()


def test_error_in_the_callers_code_leaves_an_interrupted_campaign(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with pytest.raises(RuntimeError), coscope.Campaign.create(spec, track=False) as campaign:
        (proposal,) = campaign.ask()
        raise RuntimeError("the stage jammed")
    assert campaign.status()["status"] == "interrupted"
    with coscope.Campaign.open(spec.resolved_store(), track=False) as campaign:
        assert [p.step for p in campaign.ask()] == [proposal.step]


def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        (proposal,) = campaign.ask()
        campaign.tell(proposal, _truth(campaign, proposal))
        (pending,) = campaign.ask()
        good = _truth(campaign, pending)
        counts = TraceStore.open(spec.resolved_store(), "r").counts()
        cases = [
            (ProposalError, "never asked", lambda: campaign.tell(99, good)),
            (ProposalError, "not str", lambda: campaign.tell("1", good)),
            (ProposalError, "already told", lambda: campaign.tell(proposal, good)),
            (InstrumentError, "shape (3,)", lambda: campaign.tell(pending, good[:3])),
            (InstrumentError, "NaN", lambda: campaign.tell(pending, np.full_like(good, np.nan))),
            (InstrumentError, "not numeric", lambda: campaign.tell(pending, ["a"] * len(good))),
            (ConfigError, "unknown instrument 'nope'", lambda: campaign.ask("nope")),
            (ConfigError, "n=0", lambda: campaign.ask(n=0)),
            (
                ProposalError,
                "has instrument 'other'",
                lambda: campaign.tell(
                    Measurement(pending.step, "other", pending.modality, pending.location, good)
                ),
            ),
        ]
        for kind, words, call in cases:
            with pytest.raises(kind) as caught:
                call()
            assert words in _one_sentence(caught.value)
        assert TraceStore.open(spec.resolved_store(), "r").counts() == counts
        assert [p.step for p in campaign.pending] == [pending.step]
    with pytest.raises(StoreError, match="no experimental trace"):
        coscope.Campaign.open(tmp_path / "nowhere")
    with pytest.raises(ConfigError):
        coscope.Campaign.create(_spec(tmp_path, seed=5), track=False)  # another campaign there


def test_interventions_between_asks(tmp_path: Path) -> None:
    from coscope.steer_requests import post_intervention

    spec = _spec(tmp_path)
    store = spec.resolved_store()
    with coscope.Campaign.create(spec, track=False) as campaign:
        (first,) = campaign.ask()
        post_intervention(store, "pause", {})
        paused = campaign.ask("afm")
        assert paused == [] and "paused" in paused.reason
        campaign.tell(first, _truth(campaign, first))  # what was asked is still recorded
        post_intervention(store, "resume", {})
        assert len(campaign.ask()) == 1
        Inbox(store).post("stop", why="enough")
        assert campaign.ask("afm") == [] and "stopped" in campaign.reason
    kinds = [i.kind for i in TraceStore.open(store, "r").interventions()]
    assert kinds == ["pause", "resume", "stop"]
    assert campaign.status()["status"] == "stopped"


def test_import_is_light_and_threads_set_at_open(tmp_path: Path) -> None:
    code = "import sys, coscope; print('torch' in sys.modules, 'coscope.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    import torch

    with coscope.Campaign.create(_spec(tmp_path), track=False, threads=2):
        assert torch.get_num_threads() == 2
    with coscope.Campaign.open(_spec(tmp_path).resolved_store(), track=False):
        assert torch.get_num_threads() == 1  # COSCOPE_TORCH_THREADS unset: one
    with pytest.raises(ConfigError, match="from 1 to 64"):
        coscope.Campaign.open(_spec(tmp_path).resolved_store(), track=False, threads=0)


@pytest.mark.slow
def test_run_is_coscope_run(tmp_path: Path, prefect_server: str) -> None:
    """``coscope.run(YAML path)`` in a process of its own (it sets up Prefect's environment)."""
    import json
    import os

    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec(tmp_path, budget={"max_measurements": 6}).to_json_dict()))
    code = f"import json, coscope; print(json.dumps(coscope.run({str(path)!r})))"
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["measurements"] == 6
    with coscope.Campaign.open(summary["store"], track=False) as campaign:
        assert campaign.ask() == [] and "budget is used up" in campaign.reason


def test_fail_records_a_failed_measurement_and_keeps_the_proposal(tmp_path: Path) -> None:
    from coscope.errors import InstrumentDown

    spec = _spec(tmp_path)
    with coscope.Campaign.create(spec, track=False) as campaign:
        assert campaign.offered == {"afm": ["beps_loop"]} and not campaign.paused
        assert campaign.space.layout == (20, 20) and campaign.space.units == "um"
        (proposal,) = campaign.ask()
        campaign.fail(proposal, InstrumentDown("the detector does not answer"))
        assert [p.step for p in campaign.pending] == [proposal.step]
        with pytest.raises(ProposalError, match="never asked"):
            campaign.fail(5, InstrumentDown("nope"))
        campaign.tell(proposal, _truth(campaign, proposal))  # measured again, told once
        with pytest.raises(ProposalError, match="already told"):
            campaign.fail(proposal, InstrumentDown("too late"))
    store = TraceStore.open(spec.resolved_store(), "r")
    (failed,) = [i for i in store.interventions() if i.kind == "failed_measurement"]
    assert failed.payload["step"] == proposal.step
    assert failed.payload["failure_class"] == "instrument_down"
    assert [m.step for m in store.measurements()] == [proposal.step]


def test_approval_gate_from_python(tmp_path: Path) -> None:
    from coscope.campaign.approval_checks import ApprovalError

    spec = _spec(tmp_path, approval={"required": True}, budget={"max_measurements": 4})
    with coscope.Campaign.create(spec, track=False) as campaign:
        (first,) = campaign.ask()
        assert campaign.waiting == [first] and campaign.pending == [first]
        with pytest.raises(ProposalError, match="waits for approval"):
            campaign.tell(first, _truth(campaign, first))
        with pytest.raises(ApprovalError) as info:
            campaign.approve(first, location=(20, 0))
        assert "off the 20 x 20 sample" in _one_sentence(info.value)
        assert campaign.waiting == [first]  # the bad answer changed nothing
        moved = campaign.approve(first, location=(2, 3), why="cleaner spot")
        assert moved.step == first.step and (moved.location.row, moved.location.col) == (2, 3)
        campaign.tell(moved, _truth(campaign, moved))
        (second,) = campaign.ask()
        campaign.reject(second, "scratch there")
        (third,) = campaign.ask()
        assert third.location != second.location and third.step == second.step + 1
        assert campaign.ask().reason  # third waits: nothing more for the busy instrument
        campaign.tell(campaign.approve(third.step), _truth(campaign, third))
    store = TraceStore.open(spec.resolved_store(), "r")
    answers = [i.payload.get("answer") for i in store.interventions() if i.kind == "approval"]
    assert answers == ["modified", "rejected", "approved"]
    assert {m.step for m in store.measurements()} == {0, 2}


def test_answers_posted_elsewhere_reach_ask_and_tell(tmp_path: Path) -> None:
    """An answer posted as ``coscope approve`` or the dashboard posts it is taken by the next
    ``ask()`` (no instrument named) while the instrument's only proposal waits, and the
    proposal comes back as answered; ``tell`` takes a posted answer too."""
    from coscope.approve_requests import post_answer

    spec = _spec(tmp_path, approval={"required": True}, budget={"max_measurements": 4})
    with coscope.Campaign.create(spec, track=False) as campaign:
        (first,) = campaign.ask()
        post_answer(campaign.store_path, {"step": first.step, "action": "approve",
                                          "location": [2, 3]}, why="moved by hand")  # fmt: skip
        (moved,) = campaign.ask()
        assert moved.step == first.step and (moved.location.row, moved.location.col) == (2, 3)
        assert campaign.waiting == []
        campaign.tell(moved, _truth(campaign, moved))
        (second,) = campaign.ask()
        post_answer(campaign.store_path, {"step": second.step, "action": "approve"})
        campaign.tell(second, _truth(campaign, second))  # tell takes the answer first
    store = TraceStore.open(spec.resolved_store(), "r")
    answers = [i.payload.get("answer") for i in store.interventions() if i.kind == "approval"]
    assert answers == ["modified", "approved"]
    assert {m.step for m in store.measurements()} == {first.step, second.step}
