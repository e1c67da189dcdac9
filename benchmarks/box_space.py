"""A continuous box (docs/spaces.md): GP + EI with botorch's optimize_acqf vs uniform random.

Functions (``coscope.instruments.synthetic``, stated as maximisations): ``branin`` (2-D,
``x1 in [-5, 10], x2 in [0, 15]``) and ``hartmann6`` (6-D, ``[0, 1]^6``), noise-free.
Each campaign is the :class:`~coscope.agents.box_agent.BoxAgent` a box spec builds
(``infra.compose.box_agent_from_spec``: seed 0..S-1, ``n_initial`` uniform random points,
then EI maximised by ``optimize_acqf`` with 8 restarts from 256 raw samples), or the same
agent with policy ``random`` (uniform in the box throughout), asked and told in process
through the agent contract (``Ask`` / ``ingest_measurements``) with the ``synthetic``
instrument measuring each point — the decisions a ``coscope run`` of the same spec makes,
without the engines (their overhead is measured in "Orchestration overhead").

Reported: simple regret ``f* - f(best observed point)`` at a few budgets, mean ± standard
deviation over the seeds, and the CPU seconds of the whole run.

Usage: ``python benchmarks/box_space.py [--seeds 5]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

_report.set_environment()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from coscope.agents.protocols import Ask  # noqa: E402
from coscope.config import parse_spec  # noqa: E402
from coscope.infra.compose import (  # noqa: E402
    agent_from_spec,
    box_truth,
    instruments_from_spec,
    sample_from_spec,
)
from coscope.types import MeasurementRequest  # noqa: E402

PROBLEMS: dict[str, dict[str, Any]] = {
    "branin": {
        "dims": [("x1", -5.0, 10.0), ("x2", 0.0, 15.0)],
        "n_initial": 5,
        "checkpoints": (10, 20),
    },
    "hartmann6": {
        "dims": [(f"x{i + 1}", 0.0, 1.0) for i in range(6)],
        "n_initial": 8,
        "checkpoints": (15, 30),
    },
}
POLICIES = ("ei", "random")


def _spec(function: str, policy: str, seed: int) -> dict[str, Any]:
    problem = PROBLEMS[function]
    return {
        "name": f"box-{function}-{policy}",
        "seed": seed,
        "sample": {
            "kind": "box",
            "params": {"capacity": 64},
            "box": {"dimensions": [{"name": n, "lo": a, "hi": b} for n, a, b in problem["dims"]]},
        },
        "instruments": [
            {
                "name": "fn",
                "kind": "synthetic",
                "modalities": ["value"],
                "latency_s": 0.0,
                "noise": 0.0,
                "options": {"function": function},
            }
        ],
        "scalarizer": {"name": "value_at", "modality": "value", "params": {"at": 0}},
        "policy": {"name": policy, "n_initial": problem["n_initial"]},
        "budget": {"max_measurements": max(problem["checkpoints"])},
    }


def run_campaign(function: str, policy: str, seed: int) -> list[float]:
    """Simple regret after each measurement of one campaign."""
    spec = parse_spec(_spec(function, policy, seed))
    sample = sample_from_spec(spec.sample, spec.seed)
    agent = agent_from_spec(spec, sample)
    instrument = instruments_from_spec(spec, sample)["fn"]
    truth = box_truth(spec, sample)
    assert truth is not None
    regrets, best_value, best_point = [], -np.inf, None
    for step in range(max(PROBLEMS[function]["checkpoints"])):
        proposal = agent.propose(Ask(step, "fn", ("value",), (), lambda *a: 1.0))
        assert proposal is not None
        measured = instrument.measure(MeasurementRequest.from_proposal(proposal, spec.seed))
        agent.ingest_measurements([measured])
        if measured.signal[0] > best_value:
            best_value, best_point = float(measured.signal[0]), np.array(proposal.params["x"])
        regrets.append(float(truth.maximum - truth.value(best_point[None, :])[0]))
    return regrets


def _cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3g} ± {spread:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rows, final = [], {}
    load_start = os.getloadavg()[0]
    for function, problem in PROBLEMS.items():
        for policy in POLICIES:
            curves = [run_campaign(function, policy, s) for s in range(args.seeds)]
            final[function, policy] = statistics.mean(c[-1] for c in curves)
            at = [[c[k - 1] for c in curves] for k in problem["checkpoints"]]
            label = "GP + EI (optimize_acqf)" if policy == "ei" else "random (uniform)"
            rows.append(
                [
                    f"`{function}` ({len(problem['dims'])}-D)",
                    label,
                    *(f"@{k}: {_cell(v)}" for k, v in zip(problem["checkpoints"], at, strict=True)),
                    ", ".join(f"{c[-1]:.3g}" for c in curves),
                ]
            )
            print(rows[-1], flush=True)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    _report.publish(
        "box_space",
        "A continuous box: GP + EI with optimize_acqf vs random (`benchmarks/box_space.py`)",
        f"Simple regret `f* - f(best observed point)` (lower is better; noise-free functions "
        f"stated as maximisations: minus Branin, f* = -0.397887; minus Hartmann-6, f* = "
        f"3.32237), mean ± standard deviation over {args.seeds} seeds (campaign seeds "
        f"0..{args.seeds - 1}: the initial random points and the optimiser's raw samples "
        "change). GP + EI: the `BoxAgent` of a box spec — `n_initial` uniform points (5 for "
        "Branin, 8 for Hartmann-6), then log-EI on a GP fitted to the points normalised to "
        "[0, 1]^d, maximised by `optimize_acqf` (8 restarts, 256 raw samples); random: the "
        "same agent with policy `random`. In process through the agent contract with the "
        "`synthetic` instrument (no engines).",
        "",
        _report.table(
            [
                "function",
                "policy",
                "regret, mid budget",
                "regret, full budget",
                "per seed at the end",
            ],
            rows,
        ),
        "",
        f"Whole run: {cpu:.0f} CPU seconds, {wall:.0f} s wall, one thread.",
        "",
        "Mean regret of random / GP + EI at the full budget: "
        + ", ".join(f"{f} {final[f, 'random'] / max(final[f, 'ei'], 1e-12):.1f}x" for f in PROBLEMS)
        + f". `uptime` load {load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "of the run (2 cores shared with other sessions): regrets do not depend on timing, "
        "CPU and wall times do.",
    )


if __name__ == "__main__":
    main()
