"""Scalarizers: functions from one signal to the number a campaign cares about.

Every scalarizer has the signature ``f(signal, axis) -> float`` with ``signal`` and ``axis``
both shape ``(L,)`` and is registered by name (:func:`register_scalarizer`). Loop
scalarizers expect one periodic sweep cycle such as ``0 -> +V -> 0 -> -V -> 0`` (the point
after the last is the first); they split it into the ascending branch (``-V_max -> +V_max``)
and the descending branch (``+V_max -> -V_max``).

All of them first remove isolated outliers with :func:`despike` (real BEPS loops carry
SHO-fit spikes ~100x the loop amplitude), so one spike moves a result by little.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from coscope.errors import ConfigError
from coscope.registry import Registry

Scalarizer = Callable[[np.ndarray, np.ndarray], float]
SCALARIZERS: Registry[Scalarizer] = Registry("scalarizer")
register_scalarizer = SCALARIZERS.register
"""Decorator registering ``f(signal, axis) -> float`` under a name."""
scalarizer_names = SCALARIZERS.names
_POINTWISE = ("mean", "max")
"""Scalarizers that accept any signal length (the loop ones need a sweep, L >= 4)."""


def get_scalarizer(name: str) -> Scalarizer:
    """The scalarizer ``name``: a registered one, or a user's ``"package.module:function"``.

    A user function takes ``(signal (L,), axis (L,))`` float64 arrays and returns a float; its
    module must be importable by the campaign and its Dask workers (installed or on
    ``PYTHONPATH``).

    Raises:
        ConfigError: Unknown name, or a user function that cannot be imported.
    """
    if ":" in name:
        return _user_scalarizer(name)
    return SCALARIZERS.get(name)


@lru_cache(maxsize=32)
def _user_scalarizer(reference: str) -> Scalarizer:
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"scalarizer {reference!r} cannot be imported ({exc}): give "
            "'package.module:function' that the campaign can import (installed or on PYTHONPATH)."
        ) from None
    if not callable(target):
        raise ConfigError(f"scalarizer {reference!r} is not callable: name a function.")
    return target  # type: ignore[return-value]


def scalarize(name: str, signal: np.ndarray, axis: np.ndarray) -> float:
    """Apply scalarizer ``name`` to ``signal`` ``(L,)`` over ``axis`` ``(L,)``.

    Raises:
        ConfigError: Mismatched shapes, a loop scalarizer on fewer than 4 points, or a
            scalarizer that returned something other than a finite number.
    """
    signal = np.asarray(signal, dtype=np.float64)
    axis = np.asarray(axis, dtype=np.float64)
    minimum = 1 if name in _POINTWISE or ":" in name else 4
    if signal.ndim != 1 or signal.shape != axis.shape or signal.size < minimum:
        raise ConfigError(
            f"scalarizer {name!r} needs signal and axis of equal shape (L,) with L >= {minimum}, "
            f"got {signal.shape} and {axis.shape}."
        )
    value = get_scalarizer(name)(signal, axis)
    try:
        result = float(value)
    except (TypeError, ValueError):
        result = float("nan")
    if not np.isfinite(result):
        raise ConfigError(
            f"scalarizer {name!r} returned {value!r}; it must return a finite number for every "
            "signal (make it robust to outliers, e.g. with coscope.scalarizers.despike)."
        )
    return result


def _median_interval(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper running medians of ``x`` over windows ``idx`` (NaN = missing)."""
    win = np.sort(x[idx], axis=1)  # NaN sorts last
    n = np.maximum(np.count_nonzero(win == win, axis=1), 1)
    rows = np.arange(x.size)
    return win[rows, (n - 1) // 2], win[rows, n // 2]


def despike(
    signal: np.ndarray, window: int = 7, k: float = 5.0, floor: float = 0.05, max_iter: int = 20
) -> np.ndarray:
    """Replace isolated outliers, worst first, by interpolation of their neighbours; ``(L,)``.

    The residual of a point is its distance to the interval between the lower and upper
    ``window``-point running medians (periodic, flagged points excluded). Each pass flags
    the points whose residual exceeds both ``max(k * 1.4826 * MAD, floor * span)`` and
    ``min(worst / 2, span)`` (``MAD``: median absolute residual; ``span``: peak-to-peak of
    the running medians; ``worst``: largest residual), until none is left. A spike shifts
    its clean neighbours' residuals by at most ``span``, so they are never flagged with it.
    Flagged points are linearly interpolated from the others along the cycle. Monotone
    steps (switching) have zero residual and are kept; runs of up to ``window // 2``
    spikes are removed.
    """
    x = np.array(signal, dtype=np.float64)
    half = window // 2
    idx = (np.arange(x.size)[:, None] + np.arange(-half, half + 1)[None, :]) % x.size
    flagged = np.zeros(x.size, dtype=bool)
    for _ in range(max_iter):
        lo, hi = _median_interval(np.where(flagged, np.nan, x), idx)
        resid = np.where(flagged, 0.0, np.abs(x - np.clip(x, lo, hi)))
        clean = np.sort(resid[~flagged])
        span = float(np.fmax.reduce(hi) - np.fmin.reduce(lo))
        thresh = max(k * 1.4826 * float(clean[clean.size // 2]), floor * span)
        worst = float(clean[-1])
        if worst <= thresh:
            break
        flagged |= resid > max(thresh, min(0.5 * worst, span))
    if flagged.any() and not flagged.all():
        keep = np.flatnonzero(~flagged)
        x[flagged] = np.interp(np.flatnonzero(flagged), keep, x[keep], period=x.size)
    return x


def _branches(
    signal: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Upright, despiked loop split into ``(v_up, p_up, v_down, p_down, lo, hi)``.

    The cycle is rolled to start at the most negative voltage; the ascending branch runs to
    the most positive voltage, the descending one back (closing on the first point). ``lo``
    and ``hi`` are the saturation levels: medians over ``V <= -0.75 V_max`` and
    ``V >= 0.75 V_max``. If ``hi < lo`` (an inverted loop) the signal is negated first.
    """
    p = despike(signal)
    start = int(np.argmin(axis))
    v, p = np.roll(axis, -start), np.roll(p, -start)
    top = int(np.argmax(v))
    vmax = np.max(np.abs(v))
    lo, hi = np.median(p[v <= -0.75 * vmax]), np.median(p[v >= 0.75 * vmax])
    if hi < lo:
        p, lo, hi = -p, -lo, -hi
    v_up, p_up = v[: top + 1], p[: top + 1]
    v_down, p_down = np.append(v[top:], v[0]), np.append(p[top:], p[0])
    return v_up, p_up, v_down, p_down, float(lo), float(hi)


def _crossing(v: np.ndarray, p: np.ndarray, level: float, rising: bool) -> float:
    """Voltage where the monotone envelope of branch ``p(v)`` crosses ``level`` (interp)."""
    env = np.maximum.accumulate(p) if rising else np.minimum.accumulate(p)
    hit = env >= level if rising else env <= level
    if not hit.any():
        return float(v[-1])
    j = int(np.argmax(hit))
    if j == 0 or env[j] == env[j - 1]:
        return float(v[j])
    t = (level - env[j - 1]) / (env[j] - env[j - 1])
    return float(v[j - 1] + t * (v[j] - v[j - 1]))


def _coercive_voltages(signal: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
    """``(V_up, V_down)``: midline crossings of the ascending and descending branches."""
    v_up, p_up, v_down, p_down, lo, hi = _branches(signal, axis)
    if hi <= lo:
        return 0.0, 0.0
    mid = 0.5 * (lo + hi)
    return _crossing(v_up, p_up, mid, True), _crossing(v_down, p_down, mid, False)


@register_scalarizer("loop_area")
def loop_area(signal: np.ndarray, axis: np.ndarray) -> float:
    """Enclosed area ``|oint P dV|`` (trapezoids over the closed cycle), signal x axis units.

    For a square loop of height ``2 P_s`` switching at ``+-E_c`` this is ``4 E_c P_s``.
    """
    p = despike(signal)
    dv = np.roll(axis, -1) - axis
    return float(abs(np.sum(0.5 * (p + np.roll(p, -1)) * dv)))


@register_scalarizer("loop_height")
def loop_height(signal: np.ndarray, axis: np.ndarray) -> float:
    """Saturation span ``|P_sat(+V_max) - P_sat(-V_max)|`` (medians over ``|V| >= 0.75 V_max``)."""
    *_, lo, hi = _branches(signal, axis)
    return hi - lo


@register_scalarizer("coercive_field")
def coercive_field(signal: np.ndarray, axis: np.ndarray) -> float:
    """Loop half-width ``(V_up - V_down) / 2``, axis units.

    ``V_up`` (``V_down``) is where the ascending (descending) branch's running max (min)
    crosses the midline ``(P_sat+ + P_sat-) / 2``, linearly interpolated; a branch that
    never crosses is taken to switch at its end voltage.
    """
    v_up, v_down = _coercive_voltages(signal, axis)
    return 0.5 * (v_up - v_down)


@register_scalarizer("imprint")
def imprint(signal: np.ndarray, axis: np.ndarray) -> float:
    """Horizontal loop offset ``(V_up + V_down) / 2``, axis units (see ``coercive_field``)."""
    v_up, v_down = _coercive_voltages(signal, axis)
    return 0.5 * (v_up + v_down)


@register_scalarizer("remanent")
def remanent(signal: np.ndarray, axis: np.ndarray) -> float:
    """Half the opening at zero bias ``(P_down(0) - P_up(0)) / 2`` (upright loop).

    Equals the mean ``|P - midline|`` of the two branches at ``V = 0`` for an open loop and
    0 for a closed one; branch values at 0 V are linearly interpolated.
    """
    v_up, p_up, v_down, p_down, *_ = _branches(signal, axis)
    at_up = np.interp(0.0, v_up, p_up)
    at_down = np.interp(0.0, v_down[::-1], p_down[::-1])
    return float(0.5 * (at_down - at_up))


@register_scalarizer("mean")
def mean(signal: np.ndarray, axis: np.ndarray) -> float:
    """Mean of the despiked signal (``axis`` unused)."""
    return float(np.mean(despike(signal)))


@register_scalarizer("max")
def maximum(signal: np.ndarray, axis: np.ndarray) -> float:
    """Maximum of the despiked signal (``axis`` unused)."""
    return float(np.max(despike(signal)))
