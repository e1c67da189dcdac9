"""Synthetic ferroelectric film: domain structure and per-pixel Landau hysteresis loops.

Everything here is plain numpy, vectorised over pixels, and seeded by an explicit
``numpy.random.Generator``. Units: voltages and fields in V (the field is expressed as the
voltage across the film), polarisation in units of the bulk saturation ``P_s = 1``, time
in sample intervals of the voltage sweep.

Model:
    1. Domains: a Gaussian random field (correlation length ``correlation_length`` px) is
       relaxed by a few hundred explicit Euler steps of time-dependent Ginzburg-Landau,
       ``dP/dt = -(-P + P^3 - kappa lap P)`` with ``kappa = wall_width**2``, which gives
       ``P(r)`` in ``[-1, 1]`` with tanh-shaped walls.
    2. Wall proximity ``w = 1 - P^2`` (``sech^2`` across a wall, 1 on the wall, 0 in bulk).
    3. Point defects (pinning centres) sit preferentially on walls: Gaussian blobs of radius
       ``defect_radius`` px at ``round(defect_density * H * W)`` centres drawn with
       probability proportional to ``w``.
    4. Per pixel, a static coercive field and saturation
       ``E_c = E_c0 (1 + wall_coercive_gain w)(1 + defect_coercive_gain d)``,
       ``P_s = 1 + defect_polarization_gain d``, an imprint ``E_i = imprint * P``, converted to
       Landau coefficients ``alpha = -(3 sqrt 3 / 2) E_c / P_s``, ``beta = |alpha| / P_s^2``.
    5. Loops: Landau-Khalatnikov ``dP/dt = -gamma (alpha P + beta P^3 - (V + E_i))`` along
       the sweep ``0 -> +V_max -> 0 -> -V_max -> 0``; one warm-up cycle, the second is kept.

Hot spots of loop area (the few % of pixels under defects) are therefore clearly distinct,
near walls the coercive field is raised, and the imprint follows the domain sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EC_FACTOR = 2.0 / (3.0 * np.sqrt(3.0))
"""``E_c = EC_FACTOR * |alpha|**1.5 / sqrt(beta)`` for the static homogeneous Landau model."""


@dataclass(frozen=True)
class FilmTruth:
    """Exact ground truth of one synthetic film (all maps ``H x W`` float64).

    Attributes:
        polarization: Relaxed domain polarisation ``P(r)`` in ``[-1, 1]``.
        wall: Wall proximity ``1 - P^2`` in ``[0, 1]``.
        defects: Defect density map in ``[0, 1]``.
        structure: Cheap PFM-like image ``(1 - defect_contrast d) P``.
        coercive_field: Static coercive field per pixel, V.
        saturation: Saturation polarisation per pixel.
        imprint: Built-in field per pixel, V (loop shifts by ``-imprint``).
        voltage: Sweep, shape ``(L,)``, V.
        loops: Polarisation response, shape ``(H, W, L)``.
    """

    polarization: np.ndarray
    wall: np.ndarray
    defects: np.ndarray
    structure: np.ndarray
    coercive_field: np.ndarray
    saturation: np.ndarray
    imprint: np.ndarray
    voltage: np.ndarray
    loops: np.ndarray


def triangle_sweep(n_voltage: int, v_max: float) -> np.ndarray:
    """One cycle ``0 -> +v_max -> 0 -> -v_max -> 0`` sampled at ``n_voltage`` points.

    The cycle is periodic: the point after the last is the first. Shape ``(L,)``, V.
    """
    phase = np.arange(n_voltage, dtype=np.float64) / n_voltage
    tri = np.where(phase < 0.25, 4 * phase, np.where(phase < 0.75, 2 - 4 * phase, 4 * phase - 4))
    return v_max * tri


def gaussian_random_field(
    shape: tuple[int, int], length: float, rng: np.random.Generator
) -> np.ndarray:
    """Periodic Gaussian random field, zero mean, unit variance, correlation ``length`` px."""
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * length) ** 2 * (kx**2 + ky**2))
    field = np.fft.ifft2(np.fft.fft2(noise) * kernel).real
    return (field - field.mean()) / (field.std() + 1e-12)


def domain_structure(
    shape: tuple[int, int],
    rng: np.random.Generator,
    correlation_length: float = 6.0,
    wall_width: float = 1.0,
    n_relax: int = 300,
) -> np.ndarray:
    """Domain polarisation from a TDGL relaxation of a random field, ``H x W`` in [-1, 1]."""
    p = np.clip(gaussian_random_field(shape, correlation_length, rng), -1.0, 1.0)
    kappa = wall_width**2
    dt = 0.5 / (2.0 + 8.0 * kappa)
    for _ in range(n_relax):
        lap = np.roll(p, 1, 0) + np.roll(p, -1, 0) + np.roll(p, 1, 1) + np.roll(p, -1, 1) - 4 * p
        p = p + dt * (p - p**3 + kappa * lap)
    return np.clip(p, -1.0, 1.0)


def defect_map(
    wall: np.ndarray, rng: np.random.Generator, density: float, radius: float
) -> np.ndarray:
    """Gaussian pinning centres placed with probability proportional to ``wall``; ``H x W``."""
    h, w = wall.shape
    n = max(1, int(round(density * h * w))) if density > 0 else 0
    out = np.zeros_like(wall)
    if n == 0:
        return out
    prob = wall.ravel() + 1e-9
    centres = rng.choice(h * w, size=n, replace=False, p=prob / prob.sum())
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    for c in centres:
        r0, c0 = divmod(int(c), w)
        dr = np.minimum(np.abs(rows - r0), h - np.abs(rows - r0))
        dc = np.minimum(np.abs(cols - c0), w - np.abs(cols - c0))
        out = np.maximum(out, np.exp(-(dr**2 + dc**2) / (2.0 * radius**2)))
    return out


def landau_coefficients(
    coercive_field: np.ndarray, saturation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, beta)`` giving static coercive field ``E_c`` (V) and saturation ``P_s``."""
    alpha = -coercive_field / (EC_FACTOR * saturation)
    beta = -alpha / saturation**2
    return alpha, beta


def static_coercive_field(alpha: np.ndarray | float, beta: np.ndarray | float) -> np.ndarray:
    """Analytic ``E_c = (2 / (3 sqrt 3)) |alpha|^(3/2) / sqrt(beta)`` of the static model."""
    return EC_FACTOR * np.abs(alpha) ** 1.5 / np.sqrt(beta)


def hysteresis_loops(
    voltage: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    gamma: float | np.ndarray = 1.0,
    imprint: float | np.ndarray = 0.0,
    n_sub: int = 16,
    n_cycles: int = 2,
) -> np.ndarray:
    """Integrate Landau-Khalatnikov along a periodic sweep for every pixel at once.

    ``dP/dt = -gamma (alpha P + beta P^3 - E)``, ``E = V(t) + imprint``, with ``V(t)``
    linear between sweep points (one time unit apart). Each of ``n_sub`` sub-steps is a
    linearly implicit Euler step (stable for any ``gamma``). The state starts at ``P = 0^-``
    (a tiny negative value), runs ``n_cycles - 1`` warm-up cycles, and the last is recorded.

    Args:
        voltage: Sweep, shape ``(L,)``, V, periodic.
        alpha: Landau ``alpha < 0``, any shape ``S``.
        beta: Landau ``beta > 0``, broadcastable to ``S``.
        gamma: Kinetic coefficient, per V per time unit, broadcastable to ``S``.
        imprint: Built-in field, V, broadcastable to ``S``.
        n_sub: Sub-steps per sweep interval.
        n_cycles: Cycles simulated; the last is returned.

    Returns:
        Polarisation at each sweep point, shape ``S + (L,)``, float64.
    """
    alpha, beta, gamma, imprint = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (alpha, beta, gamma, imprint))
    )
    n_v = voltage.shape[0]
    p = np.full(alpha.shape, -1e-3)
    out = np.empty(alpha.shape + (n_v,))
    g = gamma / n_sub
    frac = np.arange(1, n_sub + 1) / n_sub
    fields = voltage[:, None] + (np.roll(voltage, -1) - voltage)[:, None] * frac[None, :]
    for cycle in range(n_cycles):
        for k in range(n_v):
            if cycle == n_cycles - 1:
                out[..., k] = p
            for field in fields[k]:
                p2 = p * p
                force = (alpha + beta * p2) * p - (imprint + field)
                stiff = np.maximum(alpha + 3.0 * beta * p2, 0.0)
                p = p - g * force / (1.0 + g * stiff)
    return out


def simulate_film(
    shape: tuple[int, int],
    voltage: np.ndarray,
    rng: np.random.Generator,
    *,
    correlation_length: float = 6.0,
    wall_width: float = 1.0,
    coercive_field: float = 3.0,
    wall_coercive_gain: float = 0.3,
    defect_density: float = 0.002,
    defect_radius: float = 2.5,
    defect_coercive_gain: float = 0.4,
    defect_polarization_gain: float = 1.5,
    defect_contrast: float = 0.3,
    imprint: float = 0.4,
    gamma: float = 1.0,
    n_sub: int = 12,
    strain_length: float = 0.0,
    strain_coercive_gain: float = 0.25,
    strain_polarization_gain: float = 0.15,
) -> FilmTruth:
    """Build one film's exact ground truth; see the module docstring for the model.

    A long-wavelength strain (thickness, composition) field ``s`` in [-1, 1] with correlation
    length ``strain_length`` pixels (0: a quarter of the larger side) scales the coercive field
    by ``1 + strain_coercive_gain * s`` and the saturation by ``1 + strain_polarization_gain *
    s``: the smooth, film-wide part of the property map, on which the walls and the defect hot
    spots sit.

    Returns:
        A :class:`FilmTruth` with ``H x W`` maps and loops ``H x W x L``.
    """
    pol = domain_structure(shape, rng, correlation_length, wall_width)
    wall = 1.0 - pol**2
    defects = defect_map(wall, rng, defect_density, defect_radius)
    strain = gaussian_random_field(shape, strain_length or max(shape) / 4.0, rng)
    strain = strain / max(float(np.abs(strain).max()), 1e-12)
    ec = coercive_field * (1 + wall_coercive_gain * wall) * (1 + defect_coercive_gain * defects)
    ec = ec * (1 + strain_coercive_gain * strain)
    ps = (1.0 + defect_polarization_gain * defects) * (1 + strain_polarization_gain * strain)
    e_i = imprint * pol
    alpha, beta = landau_coefficients(ec, ps)
    loops = hysteresis_loops(voltage, alpha, beta, gamma, e_i, n_sub=n_sub)
    structure = (1.0 - defect_contrast * defects) * pol
    return FilmTruth(pol, wall, defects, structure, ec, ps, e_i, voltage.copy(), loops)
