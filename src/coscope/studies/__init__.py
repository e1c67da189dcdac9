"""Campaign studies: many campaigns of one spec on Dask, compared on the same metrics.

* :func:`~coscope.studies.benchmark.plan_benchmark` — N seeds x policies (``coscope benchmark``).
* :func:`~coscope.studies.seeds.plan_seeds` — one policy over N initial designs, optionally
  with injected seed points (``coscope seeds``).
* :func:`~coscope.studies.study.run_study` — runs a plan's campaigns as Dask tasks, logs MLflow
  parent/child runs, writes ``curves.csv``, ``summary.md`` and plots.
* :mod:`~coscope.studies.metrics` — the one place the per-step metrics are computed.

See ``docs/studies.md``.
"""

from __future__ import annotations

from coscope.studies.benchmark import plan_benchmark
from coscope.studies.seeds import plan_seeds
from coscope.studies.study import StudyPlan, run_study

__all__ = ["StudyPlan", "plan_benchmark", "plan_seeds", "run_study"]
