"""Replay follows the recorded path: with the recorded settings it reproduces every decision,
also across policy, scalarizer, cost, seed-point, exclusion and vote interventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.campaign.inbox import Inbox
from coscope.campaign.steering import REJECTED, InterventionError
from coscope.config import CampaignSpec, parse_spec
from coscope.infra.local import open_local
from coscope.replay import Counterfactual, replay, retrace, write_replay, write_retrace
from coscope.storage import TraceStore

SCRIPT = {  # n measurements recorded -> requests posted, applied before decision step n
    5: [("policy", {"name": "ucb", "params": {"beta": 3.0}})],
    7: [("exclude", {"rect": [0, 0, 5, 5]}), ("policy", {"name": "nope"})],
    8: [("seed_points", {"points": [[12, 3], [2, 20]]}), ("costs", {"afm": 2.5})],
    11: [("scalarizer", {"name": "coercive_field"})],
    13: [("vote", {"step": 3, "label": "good"}), ("vote", {"step": 6, "score": -0.5})],
    15: [("include", {"rect": [0, 0, 2, 2]}), ("pause", {})],
}


def _spec(tmp_path: Path, **changes) -> CampaignSpec:
    data = {
        "name": "steer",
        "seed": 3,
        "sample": {"kind": "synthetic_film", "params": {"size": 24}},
        "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.0, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 40},
        "budget": {"max_measurements": 19},
        "time_scale": 0.0,
        "run_dir": str(tmp_path / "run"),
    }
    data.update(changes)
    return parse_spec(data)


def _run_scripted(spec: CampaignSpec, script: dict) -> tuple[TraceStore, list[int]]:
    loop, _ = open_local(spec)
    ctx = loop.ctx
    inbox = Inbox(ctx.store.path)
    paused_at: list[int] = []

    def on_measurement(row: dict) -> None:
        for kind, payload in script.get(int(row["n_measurements"]), []):
            inbox.post(kind, payload, why="test script")

    def pauser(step: int) -> None:  # the scientist looks, then resumes
        assert not loop.inflight
        paused_at.append(step)
        inbox.post("resume", why="looked at it")

    ctx.on_measurement = on_measurement
    loop.pauser = pauser
    outcome = loop.run()
    assert outcome.status == "finished"
    ctx.store.close()
    return TraceStore.open(spec.resolved_store(), "r"), paused_at


@pytest.fixture(scope="module")
def steered(tmp_path_factory: pytest.TempPathFactory) -> tuple[TraceStore, list[int]]:
    return _run_scripted(_spec(tmp_path_factory.mktemp("steer")), SCRIPT)


def test_interventions_are_recorded_and_honoured(steered) -> None:
    store, paused_at = steered
    items = store.interventions()
    kinds = [(i.kind, i.step) for i in items]
    assert ("policy", 5) in kinds and ("pause", 15) in kinds and ("resume", 15) in kinds
    rejected = [i for i in items if REJECTED in i.payload]
    assert [i.kind for i in rejected] == ["policy"] and "nope" in rejected[0].payload[REJECTED]
    assert all(i.who and i.why for i in items)
    decisions = store.decisions()
    assert [d.policy for d in decisions[4:7]] == ["ei", "ucb", "ucb"]
    assert [(d.location.row, d.location.col) for d in decisions[8:10]] == [(12, 3), (2, 20)]
    assert all(d.policy == "seed" for d in decisions[8:10])
    later = [(d.location.row, d.location.col) for d in decisions[7:15]]
    assert not any(r <= 5 and c <= 5 for r, c in later)  # excluded region never proposed
    costs = {m.step: m.cost for m in store.measurements()}
    assert costs[7] == 1.0 and costs[8] == 2.5  # re-priced from the next decision on
    assert paused_at == [15]  # paused with nothing in flight, before decision 15
    assert len(decisions) == 19


def test_replay_with_recorded_settings_reproduces_every_decision(steered) -> None:
    store, _ = steered
    result = replay(store.path)
    assert [r["agree"] for r in result.rows] == [True] * 19
    assert result.first_divergence is None
    assert [r["policy"] for r in result.rows] == [d.policy for d in store.decisions()]
    assert result.rows[-1]["n_obs"] == 18 and result.final["n_obs"] == 19
    # the replayed agent is told the live prices, the costs intervention at 8 included
    assert [r["cost"] for r in result.rows] == [r["recorded_cost"] for r in result.rows]
    assert result.rows[8]["cost"] == 2.5
    assert np.isfinite(result.rows[-1]["nrmse"])


def test_counterfactual_scalarizer_diverges_and_never_writes(steered, tmp_path: Path) -> None:
    store, _ = steered
    before = (store.path / "zarr.json").read_bytes()
    result = replay(store.path, Counterfactual(scalarizer="loop_height"))
    assert (store.path / "zarr.json").read_bytes() == before
    assert result.first_divergence is not None and result.first_divergence >= 4
    assert all(r["agree"] for r in result.rows[: result.first_divergence])
    write_replay(result, tmp_path / "out")
    assert (tmp_path / "out" / "curves.png").stat().st_size > 5000
    assert "first divergence" in result.summary()
    with pytest.raises(InterventionError, match="scalarizer"):
        replay(store.path, Counterfactual(scalarizer="no_such"))


def test_replay_prices_stage_travel_as_the_live_loop_did(tmp_path: Path) -> None:
    afm = {"name": "afm", "latency_s": 0.0, "cost": 1.0, "travel_cost_per_um": 0.05}
    spec = _spec(tmp_path, instruments=[afm], budget={"max_measurements": 9})
    store, _ = _run_scripted(spec, {})
    recorded = [d.expected_cost for d in store.decisions()]
    assert len(set(recorded)) > 2  # travel made the prices differ from step to step
    result = replay(store.path)
    assert all(r["agree"] for r in result.rows)
    assert [r["cost"] for r in result.rows] == recorded


def test_retrace_explains_each_step(steered, tmp_path: Path) -> None:
    store, _ = steered
    result = retrace(store.path, top_k=3)
    assert len(result.rows) == 19 and result.acquisition.shape == (19, 24, 24)
    model_rows = [r for r in result.rows if r["rank"] > 0]
    assert len(model_rows) >= 10
    assert all(len(r["runners_up"]) == 3 for r in model_rows)
    assert all([r["row"], r["col"]] not in r["runners_up"] for r in model_rows)
    assert np.isnan(result.mean[0]).all() and np.isfinite(result.mean[-1]).all()
    assert result.embedding.shape == (24 * 24, 2) and result.space == "patch PCA"
    write_retrace(result, tmp_path / "rt", panels=4)
    for name in ("steps.png", "trajectory.png", "retrace.csv", "retrace.npz"):
        assert (tmp_path / "rt" / name).stat().st_size > 100


def test_two_instruments_replay_exactly(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        instruments=[
            {"name": "afm", "latency_s": 0.0, "cost": 1.0},
            {"name": "afm2", "latency_s": 0.0, "cost": 2.0},
        ],
        budget={"max_measurements": 12},
    )
    store, _ = _run_scripted(spec, {6: [("policy", {"name": "maxvar"})]})
    known = [d.n_known for d in store.decisions()]
    assert len(known) == 12 and known == sorted(known) and 0 <= min(known) and max(known) < 12
    result = replay(store.path, metrics=False)
    assert all(r["agree"] for r in result.rows)


def test_cli_replay_retrace_report_are_offline_and_read_only(
    steered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from coscope.cli import main

    store, _ = steered
    before = (store.path / "zarr.json").read_bytes()
    assert (
        main(
            [
                "replay",
                str(store.path),
                "--scalarizer",
                "loop_height",
                "--out",
                str(tmp_path / "rp"),
            ]
        )
        == 0
    )
    assert (tmp_path / "rp" / "replay.csv").read_text().count("\n") == 20
    assert main(["retrace", str(store.path), "--out", str(tmp_path / "rt")]) == 0
    out = tmp_path / "report"
    assert (
        main(["report", str(store.path), "--out", str(out), "--counterfactual", "loop_height"]) == 0
    )
    err = capsys.readouterr().err  # progress: first and last decision of each job at least
    for job in ("replay scalarizer=loop_height", "retrace", "report: replay recorded settings"):
        assert f"{job} 1/19 decisions" in err and f"{job} 19/19 decisions" in err, err
    assert "report: replay scalarizer=loop_height 19/19" in err and "report: retrace 19/19" in err
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for name in ("maps.png", "timeline.png", "counterfactual.png", "retrace/steps.png"):
        assert f'src="{name}"' in page and (out / name).stat().st_size > 5000
    assert "rejected: invalid policy intervention" in page and "looked at it" in page
    assert (store.path / "zarr.json").read_bytes() == before
    assert main(["replay", str(store.path), "--params", "{bad"]) == 2
    assert main(["replay", str(store.path), "--policy", "nope"]) == 2
    assert main(["replay", str(store.path), "--policy", "maxvar"]) == 0
