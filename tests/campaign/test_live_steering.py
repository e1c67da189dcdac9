"""The loop honours a request at the next decision, even one that arrives while deciding."""

from __future__ import annotations

from pathlib import Path

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.inbox import Inbox
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from tests.replay.test_replay import _spec


def _loop(tmp_path: Path):
    spec = _spec(tmp_path, budget={"max_measurements": 9})
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    return ctx, CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample)))


def test_request_arriving_while_deciding_is_honoured_by_that_decision(tmp_path: Path) -> None:
    ctx, loop = _loop(tmp_path)
    inbox = Inbox(ctx.store.path)
    original = ctx.agent.suggest

    def suggest(n, *, step, **kwargs):
        if step == 6 and not inbox.pending() and not ctx.store.interventions():
            inbox.post("policy", {"name": "ucb"}, why="while deciding")
        return original(n, step=step, **kwargs)

    ctx.agent.suggest = suggest
    assert loop.run().status == "finished"
    assert [(i.kind, i.step) for i in ctx.store.interventions()] == [("policy", 6)]
    policies = [d.policy for d in ctx.store.decisions()]
    assert policies[5] == "ei" and policies[6:] == ["ucb"] * 3
    ctx.store.close()


def test_unreadable_request_is_set_aside_not_retried(tmp_path: Path) -> None:
    ctx, loop = _loop(tmp_path)
    inbox = Inbox(ctx.store.path)
    inbox.path.mkdir(parents=True, exist_ok=True)
    (inbox.path / "00000000000000000001-bad.json").write_text("{not json")
    assert loop.run().status == "finished"
    assert inbox.pending() == [] and (inbox.path / "00000000000000000001-bad.unreadable").exists()
    assert ctx.store.counts()["decisions"] == 9 and ctx.store.interventions() == []
    ctx.store.close()
