"""The Space contract, over every implementation (and each rebuilt from its description)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coscope.errors import ConfigError
from coscope.spaces import (
    Box,
    CandidateTable,
    MaskedGrid,
    PixelGrid,
    Space,
    SpaceError,
    layout_features,
    space_from_description,
)
from coscope.spaces.masks import interior_mask, pixels_mask, rect_mask
from coscope.types import Location


def _masked() -> MaskedGrid:
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:4, 2:6] = True
    mask[5, 0] = True
    return MaskedGrid((6, 7), mask, pixel_size_um=0.25)


def _table() -> CandidateTable:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(30, 6)) * [1, 10, 100, 0.1, 5, 2]
    values[:, 5] = 4.0  # a constant column
    return CandidateTable(values, [f"f{i}" for i in range(6)])


BUILDERS = {
    "pixel_grid": lambda: PixelGrid((5, 7), 0.5),
    "masked_grid": _masked,
    "table": _table,
    "box": lambda: Box(["temp", "time"], [300.0, 1.0], [900.0, 60.0], ["K", "min"], 12),
}


@pytest.fixture(params=[(k, rebuilt) for k in BUILDERS for rebuilt in (False, True)], ids=str)
def space(request: pytest.FixtureRequest) -> Space:
    kind, rebuilt = request.param
    built = BUILDERS[kind]()
    if rebuilt:  # through JSON, as the trace stores it
        return space_from_description(json.loads(json.dumps(built.describe())))
    return built


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.endswith("."), message
    return message


def test_is_a_space_with_a_consistent_layout(space: Space) -> None:
    assert isinstance(space, Space)
    h, w = space.layout
    assert h >= 1 and w >= 1
    assert space.allowed.shape == (h * w,) and space.allowed.dtype == bool
    np.testing.assert_array_equal(space.indices, np.flatnonzero(space.allowed))
    assert space.indices.dtype == np.int64 and space.indices.size >= 1
    for array in (space.allowed, space.indices):
        with pytest.raises(ValueError):
            array[0] = array[0]


def test_features_are_normalised_rows_per_candidate(space: Space) -> None:
    feats = space.features()
    n = space.indices.size
    assert feats.dtype == np.float64 and feats.ndim == 2 and feats.shape[0] == n
    assert np.isfinite(feats).all() and feats.min() >= 0.0 and feats.max() <= 1.0
    full = layout_features(space)
    assert full.shape == (space.layout[0] * space.layout[1], feats.shape[1])
    np.testing.assert_array_equal(full[space.indices], feats)


def test_coordinates_are_finite_pairs(space: Space) -> None:
    coords = space.coordinates()
    assert coords.shape == (space.indices.size, 2) and coords.dtype == np.float64
    assert np.isfinite(coords).all() and space.units in ("um", "index")


def test_contains_exactly_the_candidates(space: Space) -> None:
    h, w = space.layout
    for flat in range(h * w):
        loc = Location.from_flat(flat, w)
        assert space.contains(loc) == bool(space.allowed[flat])
    for loc in (Location(h, 0), Location(0, w), Location(-1, 0)):
        assert not space.contains(loc)


def test_check_names_the_location_in_one_sentence(space: Space) -> None:
    h, w = space.layout
    space.check(Location.from_flat(int(space.indices[0]), w))
    with pytest.raises(SpaceError) as exc:
        space.check(Location(h + 2, 0), "seed point")
    message = _one_sentence(exc)
    assert f"seed point ({h + 2}, 0)" in message
    assert issubclass(SpaceError, ConfigError)


def test_description_is_json_and_rebuilds_the_same_space(space: Space) -> None:
    desc = space.describe()
    again = space_from_description(json.loads(json.dumps(desc)))
    assert again.kind == space.kind == desc["kind"] and again.layout == space.layout
    np.testing.assert_array_equal(again.indices, space.indices)
    np.testing.assert_array_equal(again.features(), space.features())
    np.testing.assert_array_equal(again.coordinates(), space.coordinates())


# ---------------------------------------------------------------- per implementation
def test_pixel_grid_features_are_the_agents_coordinates_of_before() -> None:
    h, w = 4, 6
    rows, cols = np.divmod(np.arange(h * w), w)
    old = np.stack([(rows + 0.5) / h, (cols + 0.5) / w], axis=1)
    np.testing.assert_array_equal(PixelGrid((h, w)).features(), old)
    np.testing.assert_array_equal(PixelGrid((h, w), 2.0).coordinates()[7], [2.0, 2.0])


def test_masked_grid_refuses_an_empty_or_misshapen_mask() -> None:
    with pytest.raises(SpaceError) as exc:
        MaskedGrid((3, 3), np.zeros((3, 3), dtype=bool))
    assert "no pixel" in _one_sentence(exc)
    with pytest.raises(SpaceError) as exc:
        MaskedGrid((3, 3), np.ones((3, 4), dtype=bool))
    assert "(3, 4)" in _one_sentence(exc)
    with pytest.raises(SpaceError) as exc:
        _masked().check(Location(0, 0))
    assert "masked-in" in _one_sentence(exc)


def test_table_normalises_columns_and_refuses_bad_values() -> None:
    table = _table()
    assert table.layout == (30, 1) and table.units == "index"
    feats = table.features()
    np.testing.assert_allclose(feats[:, :5].min(axis=0), 0.0)
    np.testing.assert_allclose(feats[:, :5].max(axis=0), 1.0)
    np.testing.assert_array_equal(feats[:, 5], 0.5)
    assert table.contains(Location(29, 0)) and not table.contains(Location(3, 1))
    values = np.ones((4, 2))
    values[2, 1] = np.nan
    with pytest.raises(SpaceError) as exc:
        CandidateTable(values, ["a", "b"])
    assert "'b' of candidate 2" in _one_sentence(exc)
    with pytest.raises(SpaceError):
        CandidateTable(np.ones((4, 2)), ["a", "a"])
    with pytest.raises(SpaceError):
        CandidateTable(np.ones((4, 2)), ["a"])


def test_masks_from_rect_pixels_and_interior() -> None:
    interior = interior_mask((50, 50), 16)
    rows, cols = np.nonzero(interior)
    assert interior.sum() == 35 * 35 and (rows.min(), rows.max(), cols.min(), cols.max()) == (
        8,
        42,
        8,
        42,
    )
    assert interior_mask((50, 50), 15).sum() == 36 * 36
    assert rect_mask((5, 5), (1, 2, 3, 5)).sum() == 6
    assert pixels_mask((5, 5), [(0, 0), (4, 4), (0, 0)]).sum() == 2
    for bad in (lambda: rect_mask((5, 5), (3, 0, 2, 5)), lambda: pixels_mask((5, 5), [(5, 0)])):
        with pytest.raises(SpaceError) as exc:
            bad()
        _one_sentence(exc)
    with pytest.raises(SpaceError):
        interior_mask((5, 5), 6)


def test_a_corrupt_description_is_one_sentence() -> None:
    with pytest.raises(SpaceError) as exc:
        space_from_description({"kind": "masked_grid", "shape": [2, 2], "pixel_size_um": 1.0})
    assert "corrupt" in _one_sentence(exc)
    with pytest.raises(SpaceError) as exc:
        space_from_description(
            {"kind": "masked_grid", "shape": [2, 2], "pixel_size_um": 1.0, "runs": [[0, 9]]}
        )
    _one_sentence(exc)
    with pytest.raises(ConfigError):
        space_from_description({"kind": "sphere"})


def test_box_maps_points_to_the_unit_cube_and_checks_them() -> None:
    box = BUILDERS["box"]()
    assert isinstance(box, Box) and box.layout == (12, 1) and box.dim == 2
    point = np.array([450.0, 30.5])
    np.testing.assert_allclose(box.to_unit(point), [0.25, 0.5])
    np.testing.assert_allclose(box.from_unit(box.to_unit(point)), point)
    np.testing.assert_array_equal(box.from_unit([[-1.0, 2.0]]), [[300.0, 60.0]])  # clipped
    assert box.point_in(box.point_params(point)).tolist() == point.tolist()  # exact in JSON
    assert json.loads(json.dumps(box.point_params(point))) == box.point_params(point)
    np.testing.assert_array_equal(box.point_of({"time": 2.0, "temp": 310.0}), [310.0, 2.0])
    assert box.slot(7) == Location(7, 0) and not box.contains(Location(12, 0))
    with pytest.raises(SpaceError) as exc:
        box.check_point([1000.0, 2.0], "seed point 0")
    assert "temp = 1000, outside the box's [300, 900]" in _one_sentence(exc)
    with pytest.raises(SpaceError) as exc:
        box.point_of({"temp": 310.0, "pressure": 1.0})
    assert "unknown dimension(s) ['pressure']" in _one_sentence(exc)
    with pytest.raises(SpaceError) as exc:
        box.point_in({}, "decision 3")
    assert "decision 3 carries no box point" in _one_sentence(exc)
    for bad in ([0.0, float("nan")], [1.0], "x"):
        with pytest.raises(SpaceError) as exc:
            box.check_point(bad)
        _one_sentence(exc)


def test_box_refuses_bad_bounds_and_names_in_one_sentence() -> None:
    for args, words in (
        ((["a"], [1.0], [1.0]), "lo < hi"),
        ((["a"], [2.0], [1.0]), "lo < hi"),
        ((["a"], [0.0], [float("inf")]), "finite bounds"),
        ((["a", "a"], [0, 0], [1, 1]), "distinct"),
        ((["a", "b"], [0.0], [1.0]), "2 lower and upper bounds"),
    ):
        with pytest.raises(SpaceError) as exc:
            Box(*args)
        assert words in _one_sentence(exc)
    with pytest.raises(SpaceError):
        Box(["a"], [0.0], [1.0], capacity=0)
