"""Scalarizers on analytic loops, robustness to spikes, and finiteness on real BEPS loops."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError
from coscope.instruments.physics import triangle_sweep
from coscope.scalarizers import (
    despike,
    get_scalarizer,
    register_scalarizer,
    scalarize,
    scalarizer_names,
)
from tests.conftest import DATASETS

BEPS = DATASETS / "dtmicroscope-afm" / "BEPS_PTO_50x50.h5"
VOLTAGE = triangle_sweep(64, 8.0)  # step 0.5 V


def square_loop(v_up: float, v_down: float, p_s: float = 1.0, offset: float = 0.0):
    """Ideal loop switching up at ``v_up`` and down at ``v_down`` (both mid-step voltages)."""
    p, state = np.empty_like(VOLTAGE), -p_s
    for _ in range(2):  # second pass: the loop is closed, as after a warm-up cycle
        for i, v in enumerate(VOLTAGE):
            state = p_s if v > v_up else (-p_s if v < v_down else state)
            p[i] = state
    return p + offset


# switching between samples 3.0|3.5 V (up) and -2.0|-2.5 V (down): crossings at 3.25, -2.25
LOOP = square_loop(3.25, -2.25, p_s=1.5, offset=0.7)
EXPECTED = {
    "loop_area": 2 * 1.5 * (3.25 + 2.25),
    "loop_height": 3.0,
    "coercive_field": 2.75,
    "imprint": 0.5,
    "remanent": 1.5,
    "max": 2.2,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_square_loop_exact(name: str) -> None:
    assert scalarize(name, LOOP, VOLTAGE) == pytest.approx(EXPECTED[name], abs=1e-9)


def test_mean_of_square_loop() -> None:
    assert scalarize("mean", LOOP, VOLTAGE) == pytest.approx(LOOP.mean())


def test_inverted_loop_gives_same_shape_scalars() -> None:
    for name in ("loop_area", "loop_height", "coercive_field", "imprint", "remanent"):
        assert scalarize(name, -LOOP, VOLTAGE) == pytest.approx(EXPECTED[name])


def test_closed_loop_has_no_area_or_remanence() -> None:
    line = np.tanh(VOLTAGE / 2.0)
    assert scalarize("loop_area", line, VOLTAGE) == pytest.approx(0.0, abs=1e-12)
    assert scalarize("remanent", line, VOLTAGE) == pytest.approx(0.0, abs=1e-12)
    assert scalarize("coercive_field", line, VOLTAGE) == pytest.approx(0.0, abs=0.3)


@pytest.mark.parametrize("name", scalarizer_names())
@pytest.mark.parametrize("where", [5, 20, 40, 63])
def test_single_spike_changes_little(name: str, where: int) -> None:
    params = {"window_integral": {"lo": -8.0, "hi": 8.0}}.get(name)
    spiked = LOOP.copy()
    spiked[where] += 100 * np.ptp(LOOP)
    base = scalarize(name, LOOP, VOLTAGE, params)
    assert abs(scalarize(name, spiked, VOLTAGE, params) - base) <= 0.05 * max(abs(base), 1.0)


def test_despike_removes_consecutive_spikes_and_keeps_steps() -> None:
    spiked = LOOP.copy()
    spiked[[10, 11, 12]] = [300.0, -200.0, 250.0]
    np.testing.assert_array_equal(despike(spiked), LOOP)
    np.testing.assert_array_equal(despike(LOOP), LOOP)


def test_registry() -> None:
    assert {"loop_area", "loop_height", "coercive_field", "remanent", "imprint"} <= set(
        scalarizer_names()
    )
    with pytest.raises(ConfigError, match="loop_area"):
        get_scalarizer("loop_aera")
    with pytest.raises(ConfigError, match="equal shape"):
        scalarize("mean", np.ones(5), np.ones(6))

    @register_scalarizer("_test_first")
    def first(signal: np.ndarray, axis: np.ndarray) -> float:
        return float(signal[0])

    assert scalarize("_test_first", LOOP, VOLTAGE) == LOOP[0]


@pytest.mark.skipif(not BEPS.parent.exists(), reason="BEPS dataset folder is absent")
def test_real_beps_loops_all_finite() -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(BEPS, "r") as f:
        voltage = f["Channel_000/generic/Voltage"][()]
        loops = f["Channel_000/generic/generic"][()]
    assert loops.shape == (50, 50, 64) and voltage.shape == (64,)
    flat = loops.reshape(-1, 64)
    for name in scalarizer_names():
        if name.startswith("_test"):
            continue
        params = {"window_integral": {"lo": -2.0, "hi": 2.0}}.get(name)
        values = np.array([scalarize(name, p, voltage, params) for p in flat])
        assert np.isfinite(values).all(), name
    # the pixel-median loop is a clean PTO loop: ~4.1 V half-width, ~0.8 V imprint, open
    median_loop = np.median(flat, axis=0)
    assert 3.5 < scalarize("coercive_field", median_loop, voltage) < 4.7
    assert 0.3 < scalarize("imprint", median_loop, voltage) < 1.3
    assert scalarize("remanent", median_loop, voltage) > 0.3 * 0.5 * np.ptp(median_loop)


def test_user_callable_named_in_a_spec() -> None:
    from coscope.config import parse_spec
    from coscope.scalarizers import scalarize

    signal, axis = np.array([1.0, 4.0, -2.0, 0.5]), np.arange(4.0)
    assert scalarize("tests.user_scalarizers:peak_to_peak", signal, axis) == 6.0
    spec = parse_spec({"scalarizer": {"name": "tests.user_scalarizers:peak_to_peak"}})
    assert spec.scalarizer.name == "tests.user_scalarizers:peak_to_peak"
    # parsing never imports user code (a trace is safe to read); running the campaign does
    lazy = parse_spec({"scalarizer": {"name": "tests.user_scalarizers:nope"}})
    with pytest.raises(ConfigError, match="cannot be imported"):
        from coscope.campaign.probe import check_before_run
        from coscope.infra.compose import sample_from_spec

        check_before_run(lazy, sample_from_spec(lazy.sample, 0))
    with pytest.raises(ConfigError, match="package.module:function"):
        parse_spec({"scalarizer": {"name": "os:system; rm"}})
    for name in ("builtins:max", "os:system", "numpy.linalg:norm"):
        if name.startswith("numpy"):  # a third-party function of the wrong shape: run-time
            with pytest.raises(ConfigError, match="returned an array|failed"):
                scalarize(name, np.ones((4, 1))[:, 0], axis)
            continue
        with pytest.raises(ConfigError, match="standard library"):
            parse_spec({"scalarizer": {"name": name}})
    with pytest.raises(ConfigError, match="cannot be imported"):
        scalarize("no_such_module_xyz:f", signal, axis)
    with pytest.raises(ConfigError, match="not callable"):
        scalarize("tests.user_scalarizers:NOT_A_FUNCTION", signal, axis)
    with pytest.raises(ConfigError, match="must return a finite number"):
        scalarize("tests.user_scalarizers:broken", signal, axis)


def test_pointwise_scalarizers_take_one_point_signals() -> None:
    from coscope.scalarizers import scalarize

    assert scalarize("mean", np.array([2.5]), np.array([0.0])) == 2.5
    with pytest.raises(ConfigError, match="L >= 4"):
        scalarize("loop_area", np.array([2.5]), np.array([0.0]))


# --- parametrised scalarizers (spectra: peaks, windows) ------------------------------------
WAVENUMBER = np.linspace(100.0, 900.0, 401)  # 2 cm-1 per sample


def two_peaks(x0: float = 520.3, h0: float = 3.0, x1: float = 700.0, h1: float = 1.5):
    """Two Lorentzians of half-width 8 cm-1 on a flat baseline of 0.2."""

    def lorentz(x: float, h: float) -> np.ndarray:
        return h / (1.0 + ((WAVENUMBER - x) / 8.0) ** 2)

    return 0.2 + lorentz(x0, h0) + lorentz(x1, h1)


def test_peak_position_resolves_below_the_sampling_step() -> None:
    spectrum = two_peaks()
    assert scalarize("peak_position", spectrum, WAVENUMBER) == pytest.approx(520.3, abs=0.2)
    second = scalarize("peak_position", spectrum, WAVENUMBER, {"lo": 600, "hi": 800})
    assert second == pytest.approx(700.0, abs=0.2)


def test_peak_position_ignores_a_spike() -> None:
    spectrum = two_peaks()
    spectrum[50] = 100.0  # a cosmic ray at 200 cm-1
    assert scalarize("peak_position", spectrum, WAVENUMBER) == pytest.approx(520.3, abs=0.2)


def test_peak_ratio_and_its_baseline() -> None:
    spectrum = two_peaks(h0=3.0, h1=1.5)
    windows = {"lo_a": 480, "hi_a": 560, "lo_b": 660, "hi_b": 740}
    plain = scalarize("peak_ratio", spectrum, WAVENUMBER, windows)
    corrected = scalarize("peak_ratio", spectrum, WAVENUMBER, {**windows, "baseline": 0.2})
    assert corrected == pytest.approx(3.0 / 1.5, rel=0.02)
    assert plain < corrected  # the baseline lifts both peaks and shrinks the ratio
    no_second = 0.2 + 0.0 * WAVENUMBER
    no_second[200] = 0.2  # flat: peak b at the baseline gives 0, not inf
    assert scalarize("peak_ratio", no_second, WAVENUMBER, {**windows, "baseline": 0.2}) == 0.0


def test_window_integral_matches_the_analytic_area() -> None:
    flat = np.full_like(WAVENUMBER, 2.0)
    assert scalarize("window_integral", flat, WAVENUMBER, {"lo": 300, "hi": 500}) == pytest.approx(
        400.0
    )
    # a sweep crosses the window twice: both passes count
    sweep_axis = VOLTAGE
    ones = np.ones_like(sweep_axis)
    both = scalarize("window_integral", ones, sweep_axis, {"lo": 0.0, "hi": 8.0})
    assert both == pytest.approx(2 * 8.0)


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("window_integral", {}, ["needs parameter(s) lo, hi"]),
        ("window_integral", {"lo": 0, "hi": 1, "width": 2}, ["width", "takes: hi, lo"]),
        ("loop_area", {"lo": 1}, ["does not take", "none"]),
        ("peak_position", {"lo": 2000, "hi": 3000}, ["holds no point", "widen"]),
    ],
)
def test_bad_scalarizer_parameters_are_one_sentence(name, params, words) -> None:
    with pytest.raises(ConfigError) as info:
        scalarize(name, two_peaks(), WAVENUMBER, params)
    assert all(w in str(info.value) for w in words)
