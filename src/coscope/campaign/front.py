"""The Pareto front of a multi-objective campaign's measurements, step by step.

:class:`FrontBook` keeps the objective values of every measurement of the objectives'
modality (told in step order, as the agent is) and gives the hypervolume the tracker logs
per measurement (``hypervolume``, ``pareto_size``). Its reference point is the spec's, else
the default rule of :func:`coscope.pareto.default_ref_point` on what was measured so far:
that point only moves down as data arrive, so the logged hypervolume never falls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from coscope.agents.protocols import Objectives, reducers_of
from coscope.config import CampaignSpec
from coscope.pareto import hypervolume, pareto_mask
from coscope.types import Measurement


def objectives_of(spec: CampaignSpec, axis_of: Callable[[str], np.ndarray]) -> Objectives | None:
    """The spec's objectives (``None`` for a single-objective campaign); ``axis_of`` gives
    a modality's signal axis (the sample's, or the trace's)."""
    if not spec.objectives:
        return None
    modality, names, values = reducers_of(spec.objectives, axis_of)
    return Objectives(
        modality=modality,
        names=names,
        values=values,
        signs=tuple(o.sign for o in spec.objectives),
        ref_points=tuple(o.ref_point for o in spec.objectives),
    )


class FrontBook:
    """Objective values by step and the front they make (see the module docstring)."""

    def __init__(self, objectives: Objectives) -> None:
        self.objectives = objectives
        self._values: dict[int, np.ndarray] = {}
        self._where: dict[int, list[int]] = {}

    def add(self, measurements: Iterable[Measurement]) -> None:
        """Keep the objective values of the measurements of the objectives' modality."""
        for m in measurements:
            if m.modality == self.objectives.modality:
                self._values[m.step] = self.objectives.of(m.signal)
                self._where[m.step] = [m.location.row, m.location.col]

    def measured(self) -> np.ndarray:
        """Objective values of every measurement kept, ``n x m``, objective units, by step."""
        m = len(self.objectives.names)
        return np.array([self._values[s] for s in sorted(self._values)]).reshape(-1, m)

    def front(self) -> tuple[list[int], np.ndarray, float]:
        """Steps of the non-dominated measurements, their values (``k x m``, objective
        units) and the hypervolume of all measured points (maximisation convention)."""
        steps = sorted(self._values)
        if not steps:
            return [], np.zeros((0, len(self.objectives.names))), 0.0
        Y = np.array([self._values[s] for s in steps])
        Y_max = self.objectives.maximised(Y)
        keep = pareto_mask(Y_max)
        volume = hypervolume(Y_max, self.objectives.ref_point(Y))
        return [s for s, k in zip(steps, keep, strict=True) if k], Y[keep], volume

    def summary(self) -> dict[str, Any]:
        """The front as plain data (``coscope status``'s ``pareto``): objective names and
        goals, the non-dominated steps with their locations and values, the hypervolume
        and its reference point (objective units)."""
        steps, values, volume = self.front()
        objectives = self.objectives
        Y = self.measured()
        ref = objectives.ref_point(Y) * np.asarray(objectives.signs) if len(Y) else None
        return {
            "objectives": [
                {"name": n, "goal": "max" if s > 0 else "min"}
                for n, s in zip(objectives.names, objectives.signs, strict=True)
            ],
            "points": [
                {"step": s, "location": self._where[s], "values": [float(v) for v in row]}
                for s, row in zip(steps, values, strict=True)
            ],
            "hypervolume": volume,
            "ref_point": None if ref is None else [float(r) for r in ref],
        }

    def metrics(self) -> dict[str, float]:
        """``hypervolume`` and ``pareto_size`` of what was measured so far."""
        steps, _, volume = self.front()
        return {"hypervolume": volume, "pareto_size": float(len(steps))}
