from __future__ import annotations

import numpy as np

from coscope.agents import RandomAgent, RasterAgent
from coscope.types import Location, Observation


def _drain(agent, n_per_step=1, pending=()):
    out, step = [], 0
    while props := agent.suggest(
        n_per_step, step=step, instrument="i", modality="m", pending=pending
    ):
        for p in props:
            agent.ingest([Observation(p.step, "m", p.location, float(p.location.row))])
            out.append(p)
        step += len(props)
    return out


def test_raster_is_serpentine_without_repeats():
    props = _drain(RasterAgent((3, 4)), n_per_step=2)
    locs = [(p.location.row, p.location.col) for p in props]
    assert locs == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2), (1, 1), (1, 0),
                    (2, 0), (2, 1), (2, 2), (2, 3)]  # fmt: skip
    assert {p.policy for p in props} == {"raster"}
    assert [p.step for p in props] == list(range(12))


def test_raster_seed_points_first_and_skips_pending():
    agent = RasterAgent((2, 3), seed_points=[Location(1, 1)])
    props = agent.suggest(3, step=0, instrument="i", modality="m", pending=[Location(0, 0)])
    assert [p.location for p in props] == [Location(1, 1), Location(0, 1), Location(0, 2)]
    assert [p.policy for p in props] == ["seed", "raster", "raster"]


def test_random_is_a_seeded_permutation():
    a = [p.location for p in _drain(RandomAgent((5, 5), seed=3))]
    b = [p.location for p in _drain(RandomAgent((5, 5), seed=3))]
    c = [p.location for p in _drain(RandomAgent((5, 5), seed=4))]
    assert a == b and a != c
    assert len(a) == len(set(a)) == 25
    raster = [p.location for p in _drain(RasterAgent((5, 5)))]
    assert a != raster


def test_baselines_report_with_the_same_gp():
    agent = RandomAgent((10, 10), seed=0)
    for k in range(15):
        (p,) = agent.suggest(1, step=k, instrument="i", modality="m")
        agent.ingest([Observation(k, "m", p.location, float(np.sin(p.location.row / 3)))])
    rep = agent.report()
    assert rep.mean.shape == (10, 10) and np.isfinite(rep.mean).all()
    assert rep.model_version == 0 and rep.last_fit.n_train == 15
