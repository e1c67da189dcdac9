"""The ``combinatorial_library`` sample kind: a binary composition spread across a boundary.

Members sit on an ``H x W`` grid (a wafer with ~100 pads, or a line ``1 x N``). The
deposited composition is a linear gradient ``x = x_min + (x_max - x_min)(a u + (1 - a) v)``
(``u`` column, ``v`` row, both 0..1, ``a = gradient_mix``) plus a smooth deposition
non-uniformity ``nonuniformity * g`` (``g`` a seeded Gaussian random field scaled to [-1, 1]).
The cheap structure known up front is the *nominal* gradient (without the non-uniformity);
the physics (:mod:`coscope.instruments.library_physics`) gives two modalities with exact
ground truth: ``raman`` (spectrum over Raman shift, cm^-1) and ``pfm_loop`` (polarisation
loop over voltage, V).
"""

from __future__ import annotations

import numpy as np

from coscope.errors import ConfigError
from coscope.instruments import library_physics, physics
from coscope.instruments.sample import Sample, register_sample
from coscope.types import ModalityInfo


def _grid(members: int | list[int] | tuple[int, int], layout: str) -> tuple[int, int]:
    if layout not in ("grid", "line"):
        raise ConfigError(f"layout={layout!r} is invalid: use 'grid' or 'line'.")
    if isinstance(members, int | np.integer):
        if not 4 <= members <= 10_000:
            raise ConfigError(f"members={members!r} is invalid: use 4..10000.")
        if layout == "line":
            return (1, int(members))
        side = int(round(np.sqrt(members)))
        if side * side != members:
            raise ConfigError(
                f"members={members} is not a square number: use 100 for a 10 x 10 grid, "
                "give [rows, cols], or layout: line."
            )
        return (side, side)
    shape = tuple(int(s) for s in members)
    if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] < 4:
        raise ConfigError(f"members={members!r} is invalid: give an int or [rows, cols].")
    return shape


def library_composition(
    shape: tuple[int, int],
    rng: np.random.Generator,
    x_range: tuple[float, float],
    gradient_mix: float,
    nonuniformity: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(nominal, actual)`` compositions, each ``H x W``, clipped to [0, 1]."""
    h, w = shape
    u = np.broadcast_to(np.linspace(0.0, 1.0, w)[None, :], shape)
    v = np.broadcast_to(np.linspace(0.0, 1.0, h)[:, None] if h > 1 else np.zeros((1, 1)), shape)
    nominal = x_range[0] + (x_range[1] - x_range[0]) * (gradient_mix * u + (1 - gradient_mix) * v)
    field = physics.gaussian_random_field(shape, max(shape) / 3.0, rng)
    field = field / max(float(np.abs(field).max()), 1e-12)
    actual = np.clip(nominal + nonuniformity * field, 0.0, 1.0)
    return np.ascontiguousarray(nominal, dtype=np.float64), actual


@register_sample("combinatorial_library")
def combinatorial_library(
    members: int | list[int] = 100,
    seed: int = 0,
    layout: str = "grid",
    x_min: float = 0.0,
    x_max: float = 0.25,
    boundary: float = 0.14,
    boundary_width: float = 0.01,
    gradient_mix: float = 0.7,
    nonuniformity: float = 0.01,
    n_raman: int = 256,
    n_voltage: int = 64,
    pixel_size_um: float = 500.0,
    name: str = "combinatorial_library",
) -> Sample:
    """A binary library (e.g. Sm-doped BiFeO3) with a rhombohedral→orthorhombic boundary.

    Args:
        members: Number of members (square for ``grid``) or ``[rows, cols]``.
        seed: Seed of the deposition non-uniformity.
        layout: ``grid`` (``sqrt(n) x sqrt(n)``) or ``line`` (``1 x n``).
        x_min: Composition at the first corner, 0..1.
        x_max: Composition at the opposite corner, 0..1, > ``x_min``.
        boundary: Composition ``x_c`` of the phase boundary.
        boundary_width: Width ``w`` of the boundary in composition, > 0.
        gradient_mix: Share ``a`` of the gradient along columns (the rest along rows), 0..1.
        nonuniformity: Amplitude of the smooth composition error, >= 0.
        n_raman: Points of the Raman axis (100..600 cm^-1), >= 32.
        n_voltage: Points per loop, multiple of 4, >= 8.
        pixel_size_um: Member pitch, micrometres (stage travel costs use it).
        name: Sample name.

    Returns:
        A :class:`Sample` with modalities ``raman`` and ``pfm_loop``; structure = nominal
        composition.
    """
    shape = _grid(members, layout)
    if not 0.0 <= x_min < x_max <= 1.0:
        raise ConfigError(
            f"x_min={x_min!r}, x_max={x_max!r} are invalid: use 0 <= x_min < x_max <= 1."
        )
    if boundary_width <= 0 or not 0 <= gradient_mix <= 1 or nonuniformity < 0:
        raise ConfigError(
            "boundary_width must be > 0, gradient_mix in 0..1 and nonuniformity >= 0: fix them."
        )
    if int(n_raman) < 32 or int(n_voltage) < 8 or int(n_voltage) % 4:
        raise ConfigError("n_raman must be >= 32 and n_voltage a multiple of 4, at least 8.")
    rng = np.random.default_rng(seed)
    nominal, actual = library_composition(shape, rng, (x_min, x_max), gradient_mix, nonuniformity)
    truth = library_physics.simulate_library(
        actual, x_c=boundary, width=boundary_width, n_raman=n_raman, n_voltage=n_voltage
    )
    return Sample(
        name=name,
        structure=nominal,
        pixel_size_um=float(pixel_size_um),
        modalities={
            "raman": ModalityInfo("raman", truth.raman_shift, "raman_shift", "cm^-1", "a.u."),
            "pfm_loop": ModalityInfo("pfm_loop", truth.voltage, "voltage", "V", "P/P_s"),
        },
        truth={"raman": truth.raman, "pfm_loop": truth.loops},
    )
