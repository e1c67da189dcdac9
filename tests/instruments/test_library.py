"""The combinatorial library sample: known limits of its physics, spec surface, errors."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.instruments import build_sample
from coscope.instruments.library_physics import phase_fraction, simulate_library
from coscope.scalarizers import scalarize

WINDOW = {"lo": 120.0, "hi": 200.0}


def _line(**params):
    base = {"members": 60, "layout": "line", "nonuniformity": 0.0, "x_max": 0.3}
    return build_sample("combinatorial_library", {**base, **params}, 0)


def test_raman_mode_follows_composition_on_both_sides_of_the_boundary() -> None:
    sample = _line()
    x = sample.structure[0]  # nonuniformity 0: actual = nominal composition
    axis = sample.info("raman").axis
    peaks = np.array(
        [scalarize("peak_position", s, axis, WINDOW) for s in sample.truth["raman"][0]]
    )
    rhombo, ortho = x < 0.14 - 0.03, x > 0.14 + 0.03
    np.testing.assert_allclose(peaks[rhombo], 140 + 80 * x[rhombo], atol=1.5)
    np.testing.assert_allclose(peaks[ortho], 165 + 30 * x[ortho], atol=1.5)
    assert peaks[0] == pytest.approx(140.0, abs=0.5)  # undoped BiFeO3-like A1 mode


def test_loop_collapses_across_the_boundary_and_shrinks_before_it() -> None:
    sample = _line()
    x = sample.structure[0]
    axis = sample.info("pfm_loop").axis
    area = np.array([scalarize("loop_area", s, axis) for s in sample.truth["pfm_loop"][0]])
    below = x < 0.12
    assert np.all(np.diff(area[below]) < 0.05 * area[0])  # shrinking with doping (within steps)
    assert area[below][-1] < area[0]
    assert np.all(area[x > 0.17] < 0.05 * area[0])  # collapsed (non-polar phase)
    assert phase_fraction(0.14, 0.14, 0.01) == pytest.approx(0.5)
    boundary = x[np.argmax(area < 0.5 * area[0])]
    assert 0.1 < boundary <= 0.15


def test_grid_is_deterministic_in_seed_and_structure_is_the_nominal_gradient() -> None:
    a = build_sample("combinatorial_library", {}, 3)
    b = build_sample("combinatorial_library", {}, 3)
    c = build_sample("combinatorial_library", {}, 4)
    assert a.shape == (10, 10)
    np.testing.assert_array_equal(a.truth["raman"], b.truth["raman"])
    assert not np.array_equal(a.truth["raman"], c.truth["raman"])
    np.testing.assert_array_equal(a.structure, c.structure)  # nominal, seed-free
    assert a.structure[0, 0] == 0.0 and a.structure[-1, -1] == pytest.approx(0.25)


def test_truth_matches_the_physics_module() -> None:
    truth = simulate_library(np.array([[0.0, 0.2]]), n_raman=64)
    assert truth.raman.shape == (1, 2, 64) and truth.loops.shape == (1, 2, 64)
    assert truth.phase_fraction[0, 0] < 1e-6 and truth.phase_fraction[0, 1] > 1 - 1e-4


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"members": 99}, "square"),
        ({"layout": "ring"}, "layout"),
        ({"x_min": 0.3, "x_max": 0.2}, "x_min"),
        ({"n_voltage": 30}, "n_voltage"),
        ({"colour": 1}, "invalid parameters"),
    ],
)
def test_bad_parameters_are_one_sentence(params: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        parse_spec(
            {
                "sample": {"kind": "combinatorial_library", "params": params},
                "instruments": [{"name": "s", "modalities": ["raman"]}],
                "scalarizer": {"name": "peak_position", "modality": "raman"},
            }
        )
        from coscope.infra.compose import sample_from_spec

        sample_from_spec({"kind": "combinatorial_library", "params": params}, 0)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
