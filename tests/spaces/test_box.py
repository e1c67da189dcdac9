"""A continuous box: spec validation, the box agent, and a campaign on the LocalExecutor with
replay, retrace, status, the reports, `coscope check` and a study on its trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.agents.box_agent import BoxAgent
from coscope.agents.protocols import Ask, ScalarTarget, abilities_of
from coscope.config import parse_spec
from coscope.errors import ConfigError, ModelError
from coscope.infra.compose import check_spec_fits_sample, sample_from_spec
from coscope.replay import replay, retrace
from coscope.replay.output import write_retrace
from coscope.report.html import write_html_report
from coscope.report.live_maps import render_maps
from coscope.report.status import campaign_status, format_status
from coscope.spaces import Box, SpaceError
from coscope.storage import TraceStore
from coscope.storage.integrity import check_trace
from coscope.storage.invariants import box_findings
from coscope.studies.runs import run_job
from coscope.types import Location, Measurement, Proposal

BRANIN_BOX = {
    "dimensions": [{"name": "x1", "lo": -5.0, "hi": 10.0}, {"name": "x2", "lo": 0.0, "hi": 15.0}],
    "seed_points": [{"x1": 2.5, "x2": 7.5}],
}


def _spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    base = {
        "name": "box-e2e",
        "seed": 2,
        "sample": {"kind": "box", "params": {"capacity": 64}, "box": BRANIN_BOX},
        "instruments": [
            {
                "name": "fn",
                "kind": "synthetic",
                "modalities": ["value"],
                "latency_s": 0.0,
                "noise": 0.0,
                "options": {"function": "branin", "noise_sd": 0.05},
            }
        ],
        "scalarizer": {"name": "value_at", "modality": "value", "params": {"at": 0}},
        "policy": {"name": "ei", "n_initial": 4, "fit_iterations": 40},
        "budget": {"max_measurements": 9},
        "time_scale": 0.0,
        "store": str(tmp_path / "trace.zarr"),
        "run_dir": str(tmp_path / "run"),
    }
    return {**base, **changes}


def _refused(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        spec = parse_spec(data)
        check_spec_fits_sample(spec, sample_from_spec(spec.sample, spec.seed))
    message = str(exc.value)
    assert "\n" not in message and message.endswith("."), message
    return message


# ---------------------------------------------------------------- validation
def test_a_box_spec_refuses_bad_input_in_one_sentence(tmp_path: Path) -> None:
    def with_box(**box: Any) -> dict[str, Any]:
        data = _spec(tmp_path)
        data["sample"] = {**data["sample"], "box": {**BRANIN_BOX, **box}}
        return data

    dims = BRANIN_BOX["dimensions"]
    assert "lo 10 >= hi 10" in _refused(with_box(dimensions=[{"name": "x1", "lo": 10, "hi": 10}]))
    assert "lo 3 >= hi 1" in _refused(with_box(dimensions=[{"name": "a", "lo": 3, "hi": 1}]))
    assert "finite bounds" in _refused(with_box(dimensions=[{"name": "a", "lo": 0, "hi": "inf"}]))
    assert "repeat" in _refused(with_box(dimensions=[dims[0], dims[0]]))
    unknown = _refused(with_box(seed_points=[{"x1": 0.0, "x3": 1.0}]))
    assert "unknown dimension(s) ['x3']" in unknown and "lacks ['x2']" in unknown
    outside = _refused(with_box(seed_points=[{"x1": 11.0, "x2": 1.0}]))
    assert "x1 = 11, outside [-5, 10]" in outside
    assert "go together" in _refused({**_spec(tmp_path), "sample": {"kind": "box"}})
    assert "does not run on a continuous box" in _refused(
        {**_spec(tmp_path), "policy": {"name": "raster"}}
    )
    assert "remove model: dkl" in _refused({**_spec(tmp_path), "policy": {"model": "dkl"}})
    assert "seed_points are grid pixels" in _refused({**_spec(tmp_path), "seed_points": [[1, 0]]})
    six = {**_spec(tmp_path)}
    six["instruments"] = [{**six["instruments"][0], "options": {"function": "hartmann6"}}]
    assert "6 dimensions but sample.box has 2" in _refused(six)
    grid_kind = {**_spec(tmp_path)}
    grid_kind["instruments"] = [{**grid_kind["instruments"][0], "kind": "simulated"}]
    del grid_kind["instruments"][0]["options"]
    assert "of kind 'simulated' cannot measure points of a box" in _refused(grid_kind)


# ---------------------------------------------------------------- the agent
def _agent(**kwargs: Any) -> BoxAgent:
    box = Box(["a", "b"], [0.0, -1.0], [1.0, 1.0], capacity=50)
    target = ScalarTarget("value", lambda signal: float(signal[0]))
    return BoxAgent(box, scalar_target=target, seed=3, n_initial=3, **kwargs)


def _ask(step: int, pending: tuple[Proposal, ...] = ()) -> Ask:
    return Ask(step, "fn", ("value",), pending, lambda *a: 1.0)


def _tell(agent: BoxAgent, proposal: Proposal) -> None:
    a, b = proposal.params["x"]
    value = -((a - 0.3) ** 2) - (b - 0.2) ** 2
    loc = proposal.location
    agent.ingest_measurements([Measurement(proposal.step, "fn", "value", loc, np.array([value]))])


def test_box_agent_seeds_then_random_then_optimises_the_acquisition_inside_the_box() -> None:
    agent = _agent(seed_points=[[0.5, 0.5]], num_restarts=2, raw_samples=32)
    assert abilities_of(agent).remembers_params is agent and abilities_of(agent).points is agent
    assert abilities_of(agent).steerable is None and abilities_of(agent).policy is None
    proposals = []
    for step in range(7):
        proposal = agent.propose(_ask(step))
        assert proposal is not None and proposal.location == Location(step, 0)
        proposals.append(proposal)
        _tell(agent, proposal)
    assert [p.policy for p in proposals] == ["seed", "random", "random", "ei", "ei", "ei", "ei"]
    assert proposals[0].params == {"x": [0.5, 0.5]}
    points = np.array([p.params["x"] for p in proposals])
    assert (points[:, 0] >= 0).all() and (points[:, 0] <= 1).all() and (points[:, 1] >= -1).all()
    assert np.isfinite([p.predicted_mean for p in proposals[3:]]).all()
    again = _agent(seed_points=[[0.5, 0.5]], num_restarts=2, raw_samples=32)
    for p in proposals:  # rebuilt from the trace: the same decisions
        again.remember_params(p.step, p.params)
    for p in proposals[:6]:
        _tell(again, p)
    replayed = again.propose(_ask(6))
    assert replayed is not None and replayed.params == proposals[6].params
    in_flight = agent.propose(_ask(7, (proposals[6],)))  # a pending point is believed, not
    assert in_flight is not None and in_flight.params != proposals[6].params  # proposed again
    report = agent.report()
    assert report.mean.shape == (50, 1) and np.isfinite(report.mean[:8, 0]).all()
    assert np.isnan(report.mean[8:, 0]).all() and report.best_location is not None
    assert agent.propose(_ask(50)) is None  # past the box's slots


def test_box_agent_refuses_unknown_points_and_bad_params() -> None:
    agent = _agent()
    with pytest.raises(ModelError, match="not a known box point"):
        agent.ingest_measurements([Measurement(0, "fn", "value", Location(0, 0), np.zeros(1))])
    with pytest.raises(SpaceError, match="outside the box"):
        agent.remember_params(0, {"x": [2.0, 0.0]})
    with pytest.raises(SpaceError, match="seed point 0"):
        _agent(seed_points=[[0.5, 5.0]])
    with pytest.raises(ConfigError):
        _agent(policy="nope")
    random = _agent(policy="random")
    for step in range(5):
        proposal = random.propose(_ask(step))
        assert proposal is not None and proposal.policy == "random"
        _tell(random, proposal)


# ---------------------------------------------------------------- a campaign and its trace
@pytest.fixture(scope="module")
def branin_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("box")
    out = run_job({"spec": _spec(tmp), "keys": {"policy": "ei"}})
    assert out["status"] == "finished" and len(out["points"]) == 9
    assert out["rows"][-1]["regret"] is not None and out["rows"][-1]["regret"] >= 0
    assert out["rows"][-1]["rmse"] is None and out["points"][0] == [2.5, 7.5]
    again = tmp / "again"
    assert run_job({"spec": _spec(again), "keys": {}})["points"] == out["points"]  # same seed
    return tmp / "trace.zarr"


def test_the_trace_holds_the_points_and_passes_check(branin_trace: Path) -> None:
    store = TraceStore.open(branin_trace, mode="r")
    decisions = store.decisions()
    assert store.sample_shape == (64, 1) and store.get_attr("space")["kind"] == "box"
    assert [d.location for d in decisions] == [Location(k, 0) for k in range(9)]
    assert all(len(d.params["x"]) == 2 for d in decisions)
    assert check_trace(branin_trace).ok
    space = store.get_attr("space")
    good = {
        "step": np.arange(2),
        "row": np.arange(2),
        "col": np.zeros(2, dtype=int),
        "params": np.array(['{"x": [0.0, 1.0]}', '{"x": [20.0, 1.0]}'], dtype=object),
    }
    assert [f.message.split(" does")[0] for f in box_findings(space, good)] == [
        "box decision step 1"
    ]
    assert box_findings(space, {**good, "params": good["params"][:1].repeat(2)}) == []


def test_status_names_the_best_point_by_its_coordinates(branin_trace: Path) -> None:
    status = campaign_status(branin_trace)
    assert set(status["best"]["point"]) == {"x1", "x2"}
    assert status["space"]["dimensions"][0] == {"name": "x1", "lo": -5.0, "hi": 10.0, "units": ""}
    text = format_status(status)
    assert "box of 2 dimensions: x1 in [-5, 10], x2 in [0, 15]" in text
    assert "best       " in text and "x1 = " in text


def test_replay_reproduces_and_a_counterfactual_reoptimises(branin_trace: Path) -> None:
    from coscope.replay import Counterfactual

    same = replay(branin_trace, metrics=False)
    assert same.agreement == 1.0 and same.first_divergence is None
    assert all(r["distance"] == 0.0 for r in same.rows)
    other = replay(branin_trace, Counterfactual(policy="maxvar"), metrics=False)
    assert other.first_divergence == 4  # the first model-based step (1 seed, 3 random)
    assert max(r["distance"] for r in other.rows) > 0


def test_retrace_and_the_reports_of_a_box(branin_trace: Path, tmp_path: Path) -> None:
    result = retrace(branin_trace)
    assert result.points is not None and result.points.shape == (9, 2)
    model_based = [r for r in result.rows if r["policy"] == "ei"]
    assert model_based and all(1 <= r["rank"] <= 257 for r in model_based)
    write_retrace(result, tmp_path / "retrace")
    assert (tmp_path / "retrace" / "trajectory.png").stat().st_size > 5_000
    page = write_html_report(branin_trace, tmp_path / "html")
    assert page.exists() and (tmp_path / "html" / "maps.png").stat().st_size > 10_000
    report_maps = branin_trace.parent / "run" / "report" / "maps.png"
    assert not report_maps.exists()  # a study run writes no report; the HTML one did above


def test_the_dashboard_draws_a_box_campaign(branin_trace: Path) -> None:
    rendered = render_maps(branin_trace)
    assert rendered.error == "" and rendered.n_measurements == 9
    assert rendered.png.startswith(b"\x89PNG") and len(rendered.png) > 10_000


def test_a_six_dimensional_box_reports_slices(tmp_path: Path) -> None:
    dims = [{"name": f"x{i}", "lo": 0.0, "hi": 1.0} for i in range(6)]
    data = _spec(tmp_path, budget={"max_measurements": 7})
    data["sample"] = {"kind": "box", "params": {"capacity": 16}, "box": {"dimensions": dims}}
    data["instruments"] = [{**data["instruments"][0], "options": {"function": "hartmann6"}}]
    out = run_job({"spec": data, "keys": {}})
    assert out["status"] == "finished" and len(out["points"][0]) == 6
    page = write_html_report(tmp_path / "trace.zarr", tmp_path / "html")
    assert page.exists() and (tmp_path / "html" / "maps.png").stat().st_size > 10_000
    assert json.loads(json.dumps(campaign_status(tmp_path / "trace.zarr")))["best"]["point"]


def test_steering_a_box_refuses_pixels_and_grid_policies_in_one_sentence(tmp_path: Path) -> None:
    from coscope.campaign.adopt import facts_of
    from coscope.campaign.steering import InterventionError, Settings, validate

    spec = parse_spec(_spec(tmp_path))
    facts = facts_of(spec, (64, 1), {})
    settings = Settings.from_spec(spec)
    for kind, payload, words in (
        ("seed_points", {"points": [[1, 0]]}, "seed points name grid pixels"),
        ("exclude", {"pixels": [[1, 0]]}, "continuous box"),
        ("policy", {"name": "raster"}, "does not run on a continuous box"),
        ("policy", {"model": "dkl"}, "remove model: dkl"),
    ):
        with pytest.raises(InterventionError) as exc:
            validate(kind, payload, settings, facts)
        assert words in str(exc.value) and str(exc.value).endswith("."), str(exc.value)
    assert validate("policy", {"name": "ucb"}, settings, facts)["name"] == "ucb"


def test_grid_agents_seed_studies_and_metrics_know_a_box_apart(tmp_path: Path) -> None:
    from coscope.agents import make_agent
    from coscope.studies.metrics import BoxMetrics
    from coscope.studies.seeds import plan_seeds

    with pytest.raises(ConfigError, match="BoxAgent"):
        make_agent("ei", Box(["a"], [0.0], [1.0]))
    with pytest.raises(ConfigError) as exc:
        plan_seeds(parse_spec(_spec(tmp_path)), seed_sets=2, out=tmp_path / "study")
    assert "coscope benchmark --seeds N" in str(exc.value)
    metrics = BoxMetrics(lambda X: -np.sum((X - 0.5) ** 2, axis=1), 0.0)
    assert metrics.row()["best_so_far"] is None
    metrics.add(np.array([0.1, 0.5]), -0.2)
    metrics.add(np.array([0.4, 0.5]), -0.3)  # noisy: observed lower, truly better
    row = metrics.row()
    assert row["best_so_far"] == -0.2 and row["regret"] == pytest.approx(0.16)
    assert row["rmse"] is None and row["top1_fraction"] is None
