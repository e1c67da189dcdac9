"""Theory simulators: known limits, convergence with lattice size, the instrument contract."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import build_instrument, build_sample
from coscope.instruments.lattice import lattice_loops
from coscope.instruments.physics import (
    hysteresis_loops,
    landau_coefficients,
    static_coercive_field,
    triangle_sweep,
)
from coscope.instruments.theory import lgd_loops
from coscope.types import Location, MeasurementRequest

VOLTAGE = triangle_sweep(64, 8.0)


def _switching_fields(voltage: np.ndarray, loop: np.ndarray) -> tuple[float, float]:
    """Voltages where the loop crosses zero going up and going down (linear interpolation)."""
    up = down = np.nan
    for k in range(len(loop)):
        a, b = loop[k], loop[(k + 1) % len(loop)]
        if a * b < 0:
            v = voltage[k] + (voltage[(k + 1) % len(loop)] - voltage[k]) * a / (a - b)
            if b > a:
                up = v
            else:
                down = v
    return up, down


def test_lgd_slow_sweep_switches_at_the_analytic_coercive_field() -> None:
    theta = {
        "coercive_field": 2.0,
        "saturation": 1.0,
        "gamma": 200.0,
        "imprint": 0.0,
        "imprint_gain": 0.0,
        "pinning": 0.0,
    }
    loop = lgd_loops(VOLTAGE, np.array([0.3]), theta)[0]
    up, down = _switching_fields(VOLTAGE, loop)
    alpha, beta = landau_coefficients(np.array(2.0), np.array(1.0))
    ec = float(static_coercive_field(alpha, beta))
    assert ec == pytest.approx(2.0)
    assert up == pytest.approx(ec, abs=0.3) and down == pytest.approx(-ec, abs=0.3)


def test_lgd_structure_enters_through_imprint_and_wall_pinning() -> None:
    theta = {
        "coercive_field": 2.0,
        "saturation": 1.0,
        "gamma": 200.0,
        "imprint": 0.0,
        "imprint_gain": 1.0,
        "pinning": 0.5,
    }
    loops = lgd_loops(VOLTAGE, np.array([0.0, 1.0]), theta)
    up0, down0 = _switching_fields(VOLTAGE, loops[0])  # on a wall: Ec * 1.5, no imprint
    up1, down1 = _switching_fields(VOLTAGE, loops[1])  # in a domain: Ec, shifted by -1 V
    assert up0 - down0 == pytest.approx(2 * 3.0, abs=0.6)
    assert up1 - down1 == pytest.approx(2 * 2.0, abs=0.6)
    assert (up1 + down1) / 2 == pytest.approx(-1.0, abs=0.3)


def test_lattice_without_disorder_is_the_single_domain_loop() -> None:
    alpha, beta = landau_coefficients(np.array([2.0, 3.0]), np.array([1.0, 1.0]))
    rng = np.random.default_rng(0)
    lattice = lattice_loops(VOLTAGE, 8, alpha, beta, rng=rng, gamma=1.0, imprint=0.2, kappa=2.0)
    homogeneous = hysteresis_loops(VOLTAGE, alpha, beta, 1.0, 0.2, n_sub=16)
    np.testing.assert_allclose(lattice, homogeneous, atol=1e-10)


def test_lattice_loop_converges_with_size() -> None:
    alpha, beta = landau_coefficients(np.array(2.0), np.array(1.0))

    def loop(size: int, seed: int) -> np.ndarray:
        return lattice_loops(
            VOLTAGE,
            size,
            alpha,
            beta,
            rng=np.random.default_rng(seed),
            gamma=2.0,
            kappa=0.5,
            disorder=1.0,
            pinning=0.3,
        )[0]

    reference = np.mean([loop(48, s) for s in range(2)], axis=0)
    errors = [np.sqrt(np.mean((loop(size, 7) - reference) ** 2)) for size in (4, 12, 32)]
    assert errors[2] < errors[0]
    assert errors[2] < 0.05
    # disorder broadens switching: the loop differs from the homogeneous one
    homogeneous = hysteresis_loops(VOLTAGE, alpha, beta, 2.0, 0.0, n_sub=16)
    assert np.sqrt(np.mean((reference - homogeneous) ** 2)) > 0.05


def _theory_sample():
    return build_sample(
        "with_theory",
        {
            "base": {"kind": "synthetic_film", "params": {"size": 12}},
            "theory": {"theory_lgd": "beps_loop"},
        },
        seed=0,
    )


def test_theory_instrument_takes_theta_and_fidelity_from_the_request() -> None:
    sample = _theory_sample()
    inst = build_instrument(
        "sim",
        sample,
        kind="theory_lattice",
        modalities=["theory_lgd"],
        cost=4.0,
        options={"sizes": [8, 16]},
    )
    req = MeasurementRequest(
        0,
        "sim",
        "theory_lgd",
        Location(2, 3),
        seed=5,
        params={"theta": {"coercive_field": 2.5}, "fidelity": 8},
    )
    m = inst.measure(req)
    assert m.signal.shape == (sample.info("beps_loop").length,)
    assert m.cost == pytest.approx(4.0 * (8 / 16) ** 2)
    again = inst.measure(req)
    np.testing.assert_array_equal(m.signal, again.signal)  # same request seed, same disorder
    other = inst.measure(
        MeasurementRequest(
            1,
            "sim",
            "theory_lgd",
            Location(2, 3),
            seed=5,
            params={"theta": {"coercive_field": 4.0}},
        )
    )
    assert other.cost == pytest.approx(4.0)
    assert not np.allclose(other.signal, m.signal)


def test_bad_theta_or_fidelity_is_one_sentence() -> None:
    sample = _theory_sample()
    inst = build_instrument("sim", sample, kind="theory_lgd", modalities=["theory_lgd"])
    with pytest.raises(InstrumentError, match="unknown theta parameter"):
        inst.measure(
            MeasurementRequest(0, "sim", "theory_lgd", Location(0, 0), 1, {"theta": {"alpha": 1.0}})
        )
    with pytest.raises(InstrumentError, match="must be > 0"):
        inst.measure(
            MeasurementRequest(
                0, "sim", "theory_lgd", Location(0, 0), 1, {"theta": {"coercive_field": -1.0}}
            )
        )
    lattice = build_instrument("lat", sample, kind="theory_lattice", modalities=["theory_lgd"])
    with pytest.raises(InstrumentError, match="fidelity 5 is not offered"):
        lattice.measure(
            MeasurementRequest(0, "lat", "theory_lgd", Location(0, 0), 1, {"fidelity": 5})
        )
    with pytest.raises(ConfigError, match="exactly one modality"):
        build_instrument("sim", sample, kind="theory_lgd", modalities=["beps_loop", "theory_lgd"])
    with pytest.raises(ConfigError, match="must be new"):
        build_sample(
            "with_theory",
            {
                "base": {"kind": "synthetic_film", "params": {"size": 8}},
                "theory": {"theory_lgd": "raman"},
            },
            seed=0,
        )


def test_theory_instrument_is_rebuilt_by_reference_in_a_worker() -> None:
    """The Dask path: only JSON specs cross the process boundary (tasks/measure.py)."""
    from coscope.config import parse_spec
    from coscope.infra.compose import instrument_references
    from coscope.tasks.measure import measure_by_reference

    spec = parse_spec(
        {
            "sample": {
                "kind": "with_theory",
                "params": {
                    "base": {"kind": "synthetic_film", "params": {"size": 10}},
                    "theory": {"theory_lgd": "beps_loop"},
                },
            },
            "instruments": [
                {"name": "afm", "modalities": ["beps_loop"]},
                {
                    "name": "lat",
                    "kind": "theory_lattice",
                    "modalities": ["theory_lgd"],
                    "cost": 2.0,
                    "noise": 0.0,
                    "latency_s": 0.0,
                    "options": {"sizes": [4, 8], "theta": {"disorder": 0.2}},
                },
            ],
            "scalarizer": {"name": "loop_area", "modality": "beps_loop"},
        }
    )
    sample_spec, inst_spec = instrument_references(spec)["lat"]
    request = MeasurementRequest(3, "lat", "theory_lgd", Location(1, 2), 9, {"fidelity": 4})
    m = measure_by_reference(sample_spec, inst_spec, spec.seed, 0.0, request)
    assert m.cost == pytest.approx(0.5) and np.all(np.isfinite(m.signal))
