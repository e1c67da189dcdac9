"""Planning a benchmark study (no campaign is run)."""

from __future__ import annotations

from pathlib import Path

from coscope.config import parse_spec
from coscope.studies import plan_benchmark
from coscope.studies.benchmark import policy_entry


def test_a_warm_started_dkl_spec_is_benchmarked_beside_gp_baselines(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "policy": {"name": "ei", "model": "dkl", "window": 16, "warm_start": True},
            "budget": {"max_measurements": 8},
        }
    )
    plan = plan_benchmark(spec, seeds=1, policies=["dkl:ei", "ei", "random"], out=tmp_path / "s")
    warm = {j["keys"]["policy"]: j["spec"]["policy"]["warm_start"] for j in plan.jobs}
    assert warm == {"dkl:ei": True, "ei": False, "random": False}


def test_a_structured_spec_is_benchmarked_beside_the_plain_gp(tmp_path: Path) -> None:
    mean = {"law": "domain_wall", "priors": {}}
    spec = parse_spec(
        {
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "policy": {"name": "ei", "model": "structured", "mean": mean},
            "budget": {"max_measurements": 8},
        }
    )
    assert policy_entry(spec.policy) == "structured:ei"
    plan = plan_benchmark(spec, seeds=1, policies=["structured:ei", "ei"], out=tmp_path / "s")
    policies = {j["keys"]["policy"]: j["spec"]["policy"] for j in plan.jobs}
    assert policies["structured:ei"]["mean"] == mean
    assert policies["ei"]["model"] == "gp" and policies["ei"]["mean"] is None


def test_paths_travel_to_the_workers_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # `coscope benchmark … --out runs/bench` from here
    spec = parse_spec(
        {
            "sample": {"kind": "synthetic_film", "params": {"size": 8}},
            "budget": {"max_measurements": 4},
        }
    )
    plan = plan_benchmark(spec, seeds=2, policies=["ei"], out=Path("runs/bench"))
    for job in plan.jobs:
        store, run_dir = Path(job["spec"]["store"]), Path(job["spec"]["run_dir"])
        assert store.is_absolute() and run_dir.is_absolute()
        assert store.is_relative_to(tmp_path / "runs" / "bench")
