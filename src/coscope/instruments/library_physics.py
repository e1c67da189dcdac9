"""Physics of a binary combinatorial library (Sm-doped BiFeO3-like) across a phase boundary.

Plain numpy, vectorised over members, noise-free. Units: composition ``x`` is the dopant
fraction (0..1), Raman shift in cm^-1, voltage in V, polarisation in units of the undoped
saturation.

Model (member compositions ``x``, boundary ``x_c``, width ``w``):

* Phase fraction of the orthorhombic (non-polar) phase
  ``f(x) = (1 + tanh((x - x_c) / w)) / 2`` (0 rhombohedral, 1 orthorhombic, 1/2 at ``x_c``).
* Raman spectrum ``I(k) = (1 - f) R(k; x) + f O(k; x)``, each a sum of Lorentzians
  ``A / (1 + ((k - k0) / g)^2)``. Rhombohedral modes (``k0`` shift linearly with ``x``):
  :data:`R_MODES`; orthorhombic modes: :data:`O_MODES`. The strongest low-frequency mode
  therefore sits at ``140 + 80 x`` cm^-1 below the boundary and at ``165 + 30 x`` above it
  (the 140/172 doublet collapses into one broad mode and a 300 cm^-1 mode appears).
* Ferroelectric loop: Landau-Khalatnikov loops (:func:`physics.hysteresis_loops`) with
  ``E_c(x) = E_c0 (1 - x / (2 x_c)) (1 - f) + floor`` and
  ``P_s(x) = (1 - 0.3 x / x_c) (1 - f) + floor``: the loop shrinks with doping and collapses
  across the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coscope.instruments import physics

R_MODES = ((140.0, 80.0, 1.0), (172.0, 40.0, 0.8), (222.0, 30.0, 0.5), (470.0, -40.0, 0.3))
"""Rhombohedral Raman modes: (``k0`` at x = 0 in cm^-1, shift per unit x, amplitude)."""
O_MODES = ((165.0, 30.0, 0.9), (235.0, 0.0, 0.4), (300.0, 20.0, 0.6))
"""Orthorhombic Raman modes: (``k0`` at x = 0 in cm^-1, shift per unit x, amplitude)."""
_FLOOR = 0.05  # residual (paraelectric) response, so Landau coefficients stay finite


@dataclass(frozen=True)
class LibraryTruth:
    """Ground truth of one library (maps are ``H x W``; spectra/loops ``H x W x L``).

    Attributes:
        composition: Dopant fraction per member.
        phase_fraction: Orthorhombic fraction ``f`` per member, 0..1.
        raman_shift: Raman axis, cm^-1, ``(L_r,)``.
        raman: Spectra, ``H x W x L_r``.
        voltage: Sweep, V, ``(L_v,)``.
        loops: Polarisation loops, ``H x W x L_v``.
        coercive_field: ``E_c`` per member, V.
        saturation: ``P_s`` per member.
    """

    composition: np.ndarray
    phase_fraction: np.ndarray
    raman_shift: np.ndarray
    raman: np.ndarray
    voltage: np.ndarray
    loops: np.ndarray
    coercive_field: np.ndarray
    saturation: np.ndarray


def phase_fraction(x: np.ndarray, x_c: float, width: float) -> np.ndarray:
    """Orthorhombic fraction ``(1 + tanh((x - x_c) / width)) / 2``, same shape as ``x``."""
    return 0.5 * (1.0 + np.tanh((np.asarray(x, dtype=np.float64) - x_c) / width))


def lorentzians(
    k: np.ndarray, modes: tuple[tuple[float, float, float], ...], x: np.ndarray, gamma: np.ndarray
) -> np.ndarray:
    """Sum of Lorentzians with centres ``k0 + slope x``; shape ``x.shape + k.shape``."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    g = np.asarray(gamma, dtype=np.float64)[..., None]
    out = np.zeros(x.shape[:-1] + k.shape)
    for k0, slope, amp in modes:
        out += amp / (1.0 + ((k - (k0 + slope * x)) / g) ** 2)
    return out


def raman_spectra(
    x: np.ndarray, k: np.ndarray, x_c: float, width: float, linewidth: float = 6.0
) -> np.ndarray:
    """Noise-free spectra ``(1 - f) R + f O`` (see module docstring), shape ``x.shape + (L,)``.

    Lines broaden with doping: half width ``linewidth (1 + 2 x)`` cm^-1.
    """
    f = phase_fraction(x, x_c, width)[..., None]
    gamma = linewidth * (1.0 + 2.0 * np.asarray(x))
    return (1 - f) * lorentzians(k, R_MODES, x, gamma) + f * lorentzians(k, O_MODES, x, gamma)


def loop_parameters(
    x: np.ndarray, x_c: float, width: float, coercive_field: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(E_c, P_s)`` per member: both shrink with ``x`` and collapse across ``x_c``."""
    f = phase_fraction(x, x_c, width)
    ec = coercive_field * np.clip(1.0 - x / (2 * x_c), 0.0, None) * (1 - f) + _FLOOR
    ps = np.clip(1.0 - 0.3 * x / x_c, 0.0, None) * (1 - f) + _FLOOR
    return ec, ps


def simulate_library(
    composition: np.ndarray,
    *,
    x_c: float = 0.14,
    width: float = 0.01,
    n_raman: int = 256,
    raman_range: tuple[float, float] = (100.0, 600.0),
    n_voltage: int = 64,
    v_max: float = 8.0,
    coercive_field: float = 3.0,
) -> LibraryTruth:
    """Raman spectra and ferroelectric loops of every member of ``composition`` (``H x W``)."""
    x = np.asarray(composition, dtype=np.float64)
    k = np.linspace(raman_range[0], raman_range[1], int(n_raman))
    voltage = physics.triangle_sweep(int(n_voltage), float(v_max))
    ec, ps = loop_parameters(x, x_c, width, coercive_field)
    alpha, beta = physics.landau_coefficients(ec, ps)
    loops = physics.hysteresis_loops(voltage, alpha, beta, 1.0, 0.0, n_sub=12)
    return LibraryTruth(
        composition=x,
        phase_fraction=phase_fraction(x, x_c, width),
        raman_shift=k,
        raman=raman_spectra(x, k, x_c, width),
        voltage=voltage,
        loops=loops,
        coercive_field=ec,
        saturation=ps,
    )
