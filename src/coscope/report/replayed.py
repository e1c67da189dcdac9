"""The campaign's model rebuilt from its trace, and its ``maps.png`` (``report``, dashboard).

Both the HTML report and the live dashboard draw the model a trace leads to: the settings in
force after the last decision, every stored measurement told (:class:`Replayer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coscope.replay.counterfactual import Counterfactual, Replayer
from coscope.report.box_maps import write_learner_maps
from coscope.report.maps import write_space_maps
from coscope.spaces import Box
from coscope.storage import TraceStore
from coscope.types import Location


def rebuilt(store: TraceStore) -> Replayer:
    """A replayer whose agent holds every measurement of ``store`` under the final settings.

    Raises:
        ConfigError: The campaign's model cannot be rebuilt here (multi-objective, several
            targets).
    """
    rp = Replayer(store)
    end = rp.decisions[-1].step + 1 if rp.decisions else 0
    rp.adopt(rp.settings_at(end, Counterfactual()), with_truth=True)
    rp.ingest(rp.measurements)
    return rp


def write_replayed_maps(
    folder: Path, rp: Replayer, title: str, visited: Sequence[Location]
) -> Path:
    """``maps.png`` of the rebuilt model in ``folder``: a box's map or slices, else the space's
    maps (:func:`~coscope.report.maps.write_space_maps`) with ``visited`` drawn on them."""
    learner, single = rp.steered.abilities.points, rp.steered.abilities.single_target
    if isinstance(rp.space, Box) and learner is not None and single is not None:
        target = single.scalar_target
        observed = [target.observe(m) for m in rp.measurements if m.modality == target.modality]
        return write_learner_maps(folder, rp.space, learner, observed, title)
    report = rp.steered.agent.report()
    return write_space_maps(
        folder,
        rp.space,
        structure=rp.sample.structure,
        mean=report.mean,
        std=report.std,
        truth=rp.steered.truth,
        visited=visited,
        title=title,
        value_label=rp.steered.spec.scalarizer.name,
    )
