"""Interventions are honoured by resume; votes re-scalarize observations; a switch to DKL."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.inbox import Inbox
from coscope.campaign.voting import ScriptedVoter, similarity_reward, vote_target
from coscope.infra.compose import instruments_from_spec, open_context, sample_from_spec
from coscope.replay import replay, retrace
from tests.replay.test_replay import SCRIPT, _run_scripted, _spec


def _path(store) -> list[tuple[int, int]]:
    return [(d.location.row, d.location.col) for d in store.decisions()]


def test_resume_honours_the_recorded_interventions(tmp_path: Path) -> None:
    full, _ = _run_scripted(_spec(tmp_path / "a"), SCRIPT)
    part, _ = _run_scripted(_spec(tmp_path / "b", budget={"max_measurements": 12}), SCRIPT)
    assert len(part.decisions()) == 12
    part.close()
    resumed, _ = _run_scripted(_spec(tmp_path / "b"), SCRIPT)  # same store, larger budget
    assert _path(resumed) == _path(full)
    assert [d.policy for d in resumed.decisions()] == [d.policy for d in full.decisions()]
    kinds = [(i.kind, i.step) for i in resumed.interventions() if i.kind != "spec"]
    assert kinds == [(i.kind, i.step) for i in full.interventions()]


def test_scripted_votes_make_the_reward_similarity_to_the_target(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 14})
    sample = sample_from_spec(spec.sample, spec.seed)
    from coscope.infra.compose import create_or_open_store

    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    voter = ScriptedVoter(prop="coercive_field", threshold=0.0, every=3)
    axis = sample.info("beps_loop").axis
    inbox = Inbox(ctx.store.path)
    rewards_seen: list[list[float]] = []

    def on_measurement(row: dict) -> None:
        m = ctx.store.measurements()[-1]
        vote = voter.vote(m.step, m.signal, axis)
        if vote is not None:
            inbox.post("vote", vote, why="scripted voter", who="voter")
        rewards_seen.append([o.value for o in ctx.agent.observations])

    ctx.on_measurement = on_measurement
    loop = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample)))
    assert loop.run().status == "finished"
    votes = [i for i in ctx.store.interventions() if i.kind == "vote"]
    assert [v.payload["step"] for v in votes] == [0, 3, 6, 9, 12]
    signals = {m.step: m.signal for m in ctx.store.measurements()}
    target = vote_target([(v.payload["step"], v.payload["score"]) for v in votes], signals)
    reward = similarity_reward(target)
    final = {o.step: o.value for o in ctx.agent.observations}
    assert all(np.isclose(final[s], reward(signals[s])) for s in final)  # re-scalarized
    assert all(-1.0 <= v <= 1.0 for v in final.values())
    assert rewards_seen[4][:3] != rewards_seen[8][:3]  # the target evolved as votes arrived
    ctx.store.close()
    assert all(r["agree"] for r in replay(spec.resolved_store(), metrics=False).rows)


def test_switch_to_dkl_mid_campaign_replays_exactly(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        sample={"kind": "synthetic_film", "params": {"size": 16}},
        budget={"max_measurements": 10},
        policy={"name": "ei", "n_initial": 3, "fit_iterations": 30},
    )
    store, _ = _run_scripted(spec, {5: [("policy", {"model": "dkl", "window": 5})]})
    assert store.fits()[-1].hyperparameters != store.fits()[2].hyperparameters
    assert all(r["agree"] for r in replay(store.path, metrics=False).rows)
    explained = retrace(store.path, top_k=2)
    assert explained.space == "DKL latent" and explained.embedding.shape == (16 * 16, 2)
    assert all(len(r["runners_up"]) == 2 for r in explained.rows[5:])
