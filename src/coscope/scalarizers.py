"""Scalarizers: functions from one signal to the number a campaign cares about.

Every scalarizer has the signature ``f(signal, axis, **params) -> float`` with ``signal`` and
``axis`` both shape ``(L,)`` and is registered by name (:func:`register_scalarizer`). Its
keyword parameters (floats, e.g. the window of an integral) come from the spec's
``scalarizer.params`` and are checked against the signature (:func:`validate_scalarizer`). Loop
scalarizers expect one periodic sweep cycle such as ``0 -> +V -> 0 -> -V -> 0`` (the point
after the last is the first); they split it into the ascending branch (``-V_max -> +V_max``)
and the descending branch (``+V_max -> -V_max``).

All of them first remove isolated outliers with :func:`despike` (real BEPS loops carry
SHO-fit spikes ~100x the loop amplitude), so one spike moves a result by little.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from coscope.errors import ConfigError
from coscope.registry import Registry
from coscope.trust import import_user_code

Scalarizer = Callable[..., float]
"""``f(signal (L,), axis (L,), **params) -> float``."""
SCALARIZERS: Registry[Scalarizer] = Registry("scalarizer")
register_scalarizer = SCALARIZERS.register
"""Decorator registering ``f(signal, axis, **params) -> float`` under a name."""
scalarizer_names = SCALARIZERS.names
USER_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
"""The form of a user scalarizer's name, ``package.module:function``."""
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"builtins"}
"""Top-level modules a user scalarizer may not come from (``builtins:max``, ``os:system``)."""
_LOOPS = ("loop_area", "loop_height", "coercive_field", "imprint", "remanent")
"""Scalarizers that need a sweep cycle (L >= 4); the others accept any signal length."""


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
    return import_user_code(reference, "scalarizer")


def validate_scalarizer(name: str, params: Mapping[str, Any] | None = None) -> Scalarizer:
    """The scalarizer ``name`` after checking ``params`` against its keyword parameters.

    Raises:
        ConfigError: Unknown scalarizer, an unknown parameter, or a required one missing.
    """
    function = get_scalarizer(name)
    params = dict(params or {})
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function: take no parameters
        signature = None
    takes = [] if signature is None else list(signature.parameters.values())[2:]
    allowed = {p.name for p in takes}
    unknown = sorted(set(params) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(
            f"scalarizer {name!r} does not take parameter(s) {', '.join(unknown)}; "
            f"it takes: {known}."
        )
    required = [p.name for p in takes if p.default is inspect.Parameter.empty]
    missing = [name for name in required if name not in params]
    if missing:
        raise ConfigError(
            f"scalarizer {name!r} needs parameter(s) {', '.join(missing)}; set them in "
            "scalarizer.params."
        )
    return function


def scalarize(
    name: str, signal: np.ndarray, axis: np.ndarray, params: Mapping[str, Any] | None = None
) -> float:
    """Apply scalarizer ``name`` with ``params`` to ``signal`` ``(L,)`` over ``axis`` ``(L,)``.

    Raises:
        ConfigError: Mismatched shapes, a loop scalarizer on fewer than 4 points, bad
            parameters, or a scalarizer that returned something other than a finite number.
    """
    signal = np.asarray(signal, dtype=np.float64)
    axis = np.asarray(axis, dtype=np.float64)
    minimum = 4 if name in _LOOPS else 1
    if signal.ndim != 1 or signal.shape != axis.shape or signal.size < minimum:
        raise ConfigError(
            f"scalarizer {name!r} needs signal and axis of equal shape (L,) with L >= {minimum}, "
            f"got {signal.shape} and {axis.shape}."
        )
    function = validate_scalarizer(name, params)
    try:
        value = function(signal, axis, **dict(params or {}))
    except ConfigError:
        raise
    except Exception as exc:  # user code: whatever it raises is the scalarizer's failure
        raise ConfigError(
            f"scalarizer {name!r} failed on a signal of {signal.size} points "
            f"({type(exc).__name__}: {_short(exc)}); fix it or choose another scalarizer."
        ) from None
    try:
        result = float(value) if np.ndim(value) == 0 else float("nan")
    except (TypeError, ValueError):
        result = float("nan")
    if not np.isfinite(result):
        shown = f"an array of shape {np.shape(value)}" if np.ndim(value) else repr(value)[:60]
        raise ConfigError(
            f"scalarizer {name!r} returned {shown}; it must return a finite number for every "
            "signal (make it robust to outliers, e.g. with coscope.scalarizers.despike)."
        )
    return result


def _short(exc: BaseException, limit: int = 120) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters."""
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit] + "…"


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


@register_scalarizer("value_at")
def value_at(signal: np.ndarray, axis: np.ndarray, at: float = 0.0) -> float:
    """The raw signal at the axis point nearest ``at`` (first on ties): one column of a
    table's targets (axis ``0..T-1``, ``docs/spaces.md``) or one point of a spectrum."""
    return float(signal[int(np.argmin(np.abs(axis - at)))])


def despike_narrow(signal: np.ndarray, rel: float = 0.6, max_iter: int = 10) -> np.ndarray:
    """Replace single-sample outliers (cosmic rays, fit spikes) and keep peaks and edges; ``(L,)``.

    A point is an outlier when it differs from the median of its four neighbours
    (``i-2, i-1, i+1, i+2``, edges repeated) by more than ``rel`` times the peak-to-peak of
    those neighbour medians. A peak a few samples wide differs from its neighbours by a
    fraction of its height and a step edge by half the step, so both are kept (``rel`` >
    0.5). Worst first: each pass replaces the points within half of the largest residual by
    linear interpolation from the rest, then looks again (a spike also shifts its neighbours'
    medians), at most ``max_iter`` passes. Used by the spectral
    scalarizers, whose peaks the loop-oriented :func:`despike` would flatten.
    """
    x = np.array(signal, dtype=np.float64)
    n = x.size
    if n < 5:
        return x
    for _ in range(max_iter):
        padded = np.pad(x, 2, mode="edge")
        neighbours = np.stack(
            [padded[0:n], padded[1 : n + 1], padded[3 : n + 3], padded[4 : n + 4]]
        )
        median = np.median(neighbours, axis=0)
        residual = np.abs(x - median)
        worst = float(residual.max())
        if worst <= rel * max(float(np.ptp(median)), 1e-300):
            break
        flagged = residual > 0.5 * worst  # worst first: a spike also shifts its neighbours
        if flagged.all():
            break
        keep = np.flatnonzero(~flagged)
        x[flagged] = np.interp(np.flatnonzero(flagged), keep, x[keep])
    return x


def _window(axis: np.ndarray, lo: float | None, hi: float | None, what: str) -> np.ndarray:
    """Indices of ``axis`` inside ``[lo, hi]`` (``None``: unbounded); ConfigError if none."""
    lo_v = -np.inf if lo is None else float(lo)
    hi_v = np.inf if hi is None else float(hi)
    inside = np.flatnonzero((axis >= lo_v) & (axis <= hi_v))
    if inside.size == 0:
        raise ConfigError(
            f"{what}: the window [{lo_v:g}, {hi_v:g}] holds no point of the signal's axis "
            f"(which spans {axis.min():g} to {axis.max():g}); widen or move it."
        )
    return inside


def _peak(
    signal: np.ndarray, axis: np.ndarray, lo: float | None, hi: float | None, what: str
) -> tuple[float, float]:
    """``(position, height)`` of the largest value in the window (after :func:`despike_narrow`).

    The position is refined by the vertex of the parabola through the maximum and its two
    neighbours along the axis (when both lie in the window and the axis is monotone there).
    """
    p = despike_narrow(signal)
    inside = _window(axis, lo, hi, what)
    j = int(inside[np.argmax(p[inside])])
    x, height = float(axis[j]), float(p[j])
    if 0 < j < p.size - 1 and j - 1 in inside and j + 1 in inside:
        x0, x1, x2 = axis[j - 1], axis[j], axis[j + 1]
        y0, y1, y2 = p[j - 1], p[j], p[j + 1]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom if denom else 0.0
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom if denom else 0.0
        if a < 0 and (x0 < x1 < x2 or x0 > x1 > x2):
            x = float(np.clip(-b / (2 * a), min(x0, x2), max(x0, x2)))
    return x, height


@register_scalarizer("peak_position")
def peak_position(
    signal: np.ndarray, axis: np.ndarray, lo: float | None = None, hi: float | None = None
) -> float:
    """Axis position of the highest point within ``[lo, hi]``, axis units.

    ``x* = argmax_{lo <= x <= hi} P(x)`` on the despiked signal (:func:`despike_narrow`),
    refined to the vertex of the parabola through the maximum and its neighbours (sub-sample
    resolution on a smooth peak).
    """
    return _peak(signal, axis, lo, hi, "peak_position")[0]


@register_scalarizer("peak_ratio")
def peak_ratio(
    signal: np.ndarray,
    axis: np.ndarray,
    lo_a: float = -np.inf,
    hi_a: float = np.inf,
    lo_b: float = -np.inf,
    hi_b: float = np.inf,
    baseline: float = 0.0,
) -> float:
    """Ratio of two peak heights ``(P_a - b) / (P_b - b)``, dimensionless.

    ``P_a`` (``P_b``) is the largest value (after :func:`despike_narrow`) in ``[lo_a, hi_a]``
    (``[lo_b, hi_b]``); ``b`` is ``baseline``. A peak ``b`` at or below the baseline gives 0
    (no second phase), so the ratio stays finite.
    """
    _, a = _peak(signal, axis, lo_a, hi_a, "peak_ratio (peak a)")
    _, b = _peak(signal, axis, lo_b, hi_b, "peak_ratio (peak b)")
    below = b - baseline
    return float((a - baseline) / below) if below > 1e-12 * max(abs(a), 1.0) else 0.0


@register_scalarizer("window_integral")
def window_integral(signal: np.ndarray, axis: np.ndarray, lo: float, hi: float) -> float:
    """Integral of the signal (after :func:`despike_narrow`) over ``lo <= x <= hi``.

    In signal x axis units:

    ``sum_k (P_k + P_{k+1}) / 2 * |x_{k+1} - x_k|`` over consecutive samples both inside the
    window (trapezoids along the signal's own order, so a sweep that crosses the window
    twice counts both passes).
    """
    p = despike_narrow(signal)
    inside = (axis >= float(lo)) & (axis <= float(hi))
    _window(axis, lo, hi, "window_integral")
    both = inside[:-1] & inside[1:]
    widths = np.abs(np.diff(axis))
    return float(np.sum(0.5 * (p[:-1] + p[1:]) * widths * both))
