"""A 2-D lattice model of domain switching: time-dependent Ginzburg-Landau on ``L x L`` sites.

Plain numpy, vectorised over sites (and over a leading batch of independent lattices).
Units as in :mod:`coscope.instruments.physics`: fields in V, polarisation in units of the
bulk saturation, time in sweep intervals.

Model (periodic ``L x L`` lattice, site polarisation ``P_r``)::

    dP_r/dt = -gamma (alpha_r P_r + beta P_r^3 - kappa lap P_r - E(t) - h_r + D <P>)

* ``alpha_r = alpha (1 + pinning_r)``: local Landau coefficient; ``pinning_r`` are quenched
  random pinning strengths ``|N(0, pinning)|`` that raise the local coercive field;
* ``h_r ~ N(0, disorder^2)``: quenched random fields (V);
* ``kappa lap P``: domain-wall (gradient) energy, nearest-neighbour Laplacian;
* ``D <P>``: mean-field depolarising (dipolar) field of the whole lattice;
* ``E(t) = V(t) + imprint``: the applied sweep plus a built-in field.

Each sub-step splits into a linearly implicit Euler step of the local terms (the same step as
:func:`~coscope.instruments.physics.hysteresis_loops`, stable for any ``gamma``) followed by an
implicit diffusion step solved exactly in Fourier space, ``P <- F^-1[F(P) / (1 + g kappa k^2)]``.
With no disorder, no pinning and a uniform start the lattice stays uniform, the gradient term
vanishes, and the loop equals the homogeneous Landau-Khalatnikov loop exactly. The output is the
lattice-mean polarisation. Cost per loop grows as ``L^2`` (plus ``L^2 log L`` for the FFTs):
``L`` is the fidelity.
"""

from __future__ import annotations

import numpy as np


def lattice_loops(
    voltage: np.ndarray,
    size: int,
    alpha: np.ndarray | float,
    beta: np.ndarray | float,
    *,
    rng: np.random.Generator,
    gamma: float = 1.0,
    imprint: np.ndarray | float = 0.0,
    kappa: float = 1.0,
    disorder: float = 0.0,
    pinning: float = 0.0,
    depolarization: float = 0.0,
    n_sub: int = 16,
    n_cycles: int = 2,
) -> np.ndarray:
    """Mean polarisation loops of ``B`` independent ``size x size`` lattices.

    Args:
        voltage: Periodic sweep, shape ``(V,)``, V.
        size: Lattice side ``L`` (sites).
        alpha: Landau ``alpha < 0``, scalar or shape ``(B,)``.
        beta: Landau ``beta > 0``, scalar or ``(B,)``.
        rng: Source of the quenched disorder (fields and pinning).
        gamma: Kinetic coefficient.
        imprint: Built-in field, V, scalar or ``(B,)``.
        kappa: Gradient (wall) stiffness, site units.
        disorder: Standard deviation of the random fields, V.
        pinning: Scale of the random pinning strengths (relative raise of ``|alpha|``).
        depolarization: Mean-field depolarising coefficient ``D`` (V per unit ``<P>``).
        n_sub: Sub-steps per sweep interval.
        n_cycles: Cycles simulated; the last is returned.

    Returns:
        Lattice-mean polarisation, shape ``(B, V)`` (``B = 1`` for scalar inputs), float64.
    """
    alpha, beta, imprint = (
        np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (alpha, beta, imprint)
    )
    alpha, beta, imprint = np.broadcast_arrays(alpha, beta, imprint)
    batch = alpha.shape[0]
    shape = (batch, size, size)
    field_r = disorder * rng.standard_normal(shape) if disorder > 0 else np.zeros(shape)
    pin_r = np.abs(pinning * rng.standard_normal(shape)) if pinning > 0 else np.zeros(shape)
    a_r = alpha[:, None, None] * (1.0 + pin_r)
    b_r = beta[:, None, None]
    offset = imprint[:, None, None] + field_r
    k = 2.0 * np.pi * np.fft.fftfreq(size)
    lap_symbol = (2.0 - 2.0 * np.cos(k))[:, None] + (2.0 - 2.0 * np.cos(k))[None, :]
    g = gamma / n_sub
    diffusion = 1.0 / (1.0 + g * kappa * lap_symbol)
    n_v = voltage.shape[0]
    frac = np.arange(1, n_sub + 1) / n_sub
    fields = voltage[:, None] + (np.roll(voltage, -1) - voltage)[:, None] * frac[None, :]
    p = np.full(shape, -1e-3)
    out = np.empty((batch, n_v))
    for cycle in range(n_cycles):
        for step in range(n_v):
            if cycle == n_cycles - 1:
                out[:, step] = p.mean(axis=(1, 2))
            for e in fields[step]:
                p2 = p * p
                dep = depolarization * p.mean(axis=(1, 2), keepdims=True)
                force = (a_r + b_r * p2) * p - (offset + e) + dep
                stiff = np.maximum(a_r + 3.0 * b_r * p2, 0.0)
                p = p - g * force / (1.0 + g * stiff)
                if kappa > 0:
                    p = np.fft.ifft2(np.fft.fft2(p) * diffusion).real
    return out


def lattice_cost_factor(size: int, reference: int) -> float:
    """Relative cost ``(size / reference)^2`` of a lattice loop (the fidelity's price)."""
    return float(size) ** 2 / float(reference) ** 2
