"""The Pareto front of a multi-objective campaign's measurements, step by step.

:class:`FrontBook` keeps the objective values of every measurement of the objectives'
modality (told in step order, as the agent is) and gives the hypervolume the tracker logs
per measurement (``hypervolume``, ``pareto_size``). Its reference point is the spec's, else
the default rule of :func:`coscope.pareto.default_ref_point` on what was measured so far:
that point only moves down as data arrive, so the logged hypervolume never falls.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from coscope.agents.protocols import Objectives
from coscope.pareto import hypervolume, pareto_mask
from coscope.types import Measurement


class FrontBook:
    """Objective values by step and the front they make (see the module docstring)."""

    def __init__(self, objectives: Objectives) -> None:
        self.objectives = objectives
        self._values: dict[int, np.ndarray] = {}

    def add(self, measurements: Iterable[Measurement]) -> None:
        """Keep the objective values of the measurements of the objectives' modality."""
        for m in measurements:
            if m.modality == self.objectives.modality:
                self._values[m.step] = self.objectives.of(m.signal)

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

    def metrics(self) -> dict[str, float]:
        """``hypervolume`` and ``pareto_size`` of what was measured so far."""
        steps, _, volume = self.front()
        return {"hypervolume": volume, "pareto_size": float(len(steps))}
