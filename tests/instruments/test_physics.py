"""The synthetic film's physics: analytic limit, structure dependence, determinism, hot spots."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import build_sample, synthetic_film
from coscope.instruments import physics as ph
from coscope.scalarizers import scalarize
from coscope.types import Location


@pytest.fixture(scope="module")
def film() -> ph.FilmTruth:
    voltage = ph.triangle_sweep(64, 8.5)
    return ph.simulate_film((50, 50), voltage, np.random.default_rng(0))


def _map(film: ph.FilmTruth, name: str) -> np.ndarray:
    loops = film.loops.reshape(-1, film.voltage.size)
    return np.array([scalarize(name, p, film.voltage) for p in loops]).reshape(film.wall.shape)


def _up_crossing(voltage: np.ndarray, loops: np.ndarray) -> np.ndarray:
    """Interpolated voltage where the first (ascending 0 -> +V_max) quarter crosses P = 0."""
    q = voltage.size // 4 + 1
    v, p = voltage[:q], loops[..., :q]
    j = np.argmax(p > 0, axis=-1)
    p0 = np.take_along_axis(p, j[:, None] - 1, -1)[:, 0]
    p1 = np.take_along_axis(p, j[:, None], -1)[:, 0]
    return v[j - 1] + (0 - p0) / (p1 - p0) * (v[j] - v[j - 1])


def test_quasi_static_coercive_field_approaches_landau_limit() -> None:
    alpha = np.array([-1.0, -2.0, -3.0, -0.5])
    beta = np.array([1.0, 0.5, 3.0, 2.0])
    e_c = ph.static_coercive_field(alpha, beta)
    np.testing.assert_allclose(e_c[0], 2 / (3 * np.sqrt(3)))
    voltage = ph.triangle_sweep(1600, 2.0 * e_c.max())
    slow = _up_crossing(voltage, ph.hysteresis_loops(voltage, alpha, beta, gamma=200.0, n_sub=8))
    fast = _up_crossing(voltage, ph.hysteresis_loops(voltage, alpha, beta, gamma=0.5, n_sub=8))
    np.testing.assert_allclose(slow, e_c, rtol=0.02)
    step = voltage[1] - voltage[0]
    assert np.all(slow >= e_c - step)  # never switches before the static limit (to one step)
    assert np.all(fast > slow * 1.05)  # a fast sweep (small gamma) opens the loop further


def test_landau_coefficients_round_trip() -> None:
    ec, ps = np.array([1.0, 3.0]), np.array([1.0, 2.0])
    alpha, beta = ph.landau_coefficients(ec, ps)
    np.testing.assert_allclose(ph.static_coercive_field(alpha, beta), ec)
    np.testing.assert_allclose(np.sqrt(-alpha / beta), ps)


def test_shapes_and_ranges(film: ph.FilmTruth) -> None:
    for m in (film.polarization, film.wall, film.defects, film.structure, film.imprint):
        assert m.shape == (50, 50) and m.dtype == np.float64 and np.isfinite(m).all()
    assert film.loops.shape == (50, 50, 64) and np.isfinite(film.loops).all()
    assert film.polarization.min() >= -1 and film.polarization.max() <= 1
    assert 0.2 < (film.polarization > 0).mean() < 0.8  # both domain orientations present
    assert 0.02 < (film.wall > 0.5).mean() < 0.3  # walls are a minority of pixels


def test_walls_raise_the_coercive_field(film: ph.FilmTruth) -> None:
    ec = _map(film, "coercive_field")
    clean = film.defects < 0.01
    wall, bulk = ec[clean & (film.wall > 0.7)], ec[clean & (film.wall < 0.05)]
    assert wall.size > 20 and bulk.size > 200
    assert np.median(wall) > np.median(bulk) + 0.3  # volts; wall_coercive_gain = 0.3


def test_imprint_follows_domain_sign(film: ph.FilmTruth) -> None:
    shift = _map(film, "imprint")
    bulk = film.wall < 0.05
    up, down = shift[bulk & (film.polarization > 0)], shift[bulk & (film.polarization < 0)]
    assert np.median(up) < -0.2 < 0.2 < np.median(down)  # E_i = 0.4 V * P shifts by -E_i


def test_hot_spots_are_distinct_and_sit_on_defects(film: ph.FilmTruth) -> None:
    area = _map(film, "loop_area")
    top = area >= np.percentile(area, 99)
    assert area[top].min() > 2.0 * np.median(area)
    assert film.defects[top].mean() > 0.5 > film.defects[~top].mean()


def test_seeded_determinism() -> None:
    a, b = synthetic_film(size=20, seed=7), synthetic_film(size=20, seed=7)
    c = synthetic_film(size=20, seed=8)
    np.testing.assert_array_equal(a.structure, b.structure)
    np.testing.assert_array_equal(a.truth["beps_loop"], b.truth["beps_loop"])
    assert not np.allclose(a.structure, c.structure)


def test_sample_api() -> None:
    s = build_sample("synthetic_film", {"size": (12, 20), "n_voltage": 32, "v_max": 6.0}, seed=1)
    assert s.shape == (12, 20) and s.structure.dtype == np.float64
    info = s.info("beps_loop")
    assert info.axis_units == "V" and info.length == 32 and info.axis.max() == 6.0
    sig = s.signal("beps_loop", Location(11, 19))
    sig[:] = 99.0  # a copy: the truth is untouched
    assert not np.any(s.truth["beps_loop"] == 99.0)
    assert s.contains(Location(11, 19)) and not s.contains(Location(12, 0))
    with pytest.raises(InstrumentError, match="off the sample"):
        s.signal("beps_loop", Location(12, 0))


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("nope", {}, "synthetic_film"),
        ("synthetic_film", {"size": 3}, "size"),
        ("synthetic_film", {"n_voltage": 30}, "multiple of 4"),
        ("synthetic_film", {"v_max": -1.0}, "v_max"),
        ("synthetic_film", {"wall_widht": 1.0}, "wall_width"),
        ("synthetic_film", {"gamma": 0.0}, "gamma"),
    ],
)
def test_bad_sample_arguments(kind: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sample(kind, params, seed=0)
