"""Per-pixel amplitude, offset and shape discrepancy of a calibrated theory, mapped over a sample.

At each measured pixel ``x`` with loop ``y_x`` (``V`` points) and the calibrated theory's loop
``m_x = eta(s_x, theta*)`` the measured loop is written exactly as

    y_x = k_x (r_x m_x + c_x + d_x),

with ``k_x = std(y_x) / std(m_x) > 0`` the loop's strength relative to the theory (the
instrument's gain varies ~1000x over a real map), ``r_x = corr(y_x, m_x)`` how much of the loop
the theory's shape explains, ``c_x = b_x / k_x`` the offset beyond the theory's own (``b_x`` of the
least-squares fit ``y ≈ a m + b``, ``a = k r``) and ``d_x`` the residual shape in theory units (the
discrepancy, orthogonal to ``1`` and ``m_x``). Dividing by ``k_x`` puts every pixel on the same
scale, so strong loops do not dominate the maps.

Each of ``log k``, ``r``, ``c`` (scalars) and ``d`` (a loop) is mapped over pixel coordinates by a
:class:`ShrunkField`: a constant (the median, or zero for ``d``) plus a GP's correction, scaled by
a weight in ``[0, 1]`` chosen by exact leave-one-out on the measured pixels (stacking on the
squared error for the scalars, a grid on the loops' shape error for ``d``) and kept only if its
gain is significant. A GP that does not predict held-out pixels better than the constant gets
weight 0, so the twin falls back to the calibrated theory instead of inventing structure; its
skill (``1 - LOO error / LOO error of the constant``) is recorded for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coscope.models.multioutput_gp import SharedKernelGP

GPFitter = Callable[[np.ndarray, np.ndarray], SharedKernelGP]
"""``(coords (n, 2), values (n, m)) -> fitted GP``."""

FIELDS = ("log_gain", "corr", "offset", "shape")


@dataclass
class ShrunkField:
    """``base + weight * (gp_mean(x) - base)`` over normalised coordinates.

    Attributes:
        gp: GP over coordinates ``(n, 2)`` in ``[0, 1]``, outputs ``(m,)``.
        base: The constant ``(m,)`` (median of the measured values, or zero).
        weight: LOO stacking weight in ``[0, 1]``.
        base_mse: LOO mean squared error of the constant ``(m,)`` (output units squared).
        skill: ``1 - LOO MSE(stacked) / LOO MSE(constant)``, summed over outputs (<= 0: none).
    """

    gp: SharedKernelGP
    base: np.ndarray
    weight: float
    base_mse: np.ndarray
    skill: float

    @classmethod
    def fit(
        cls,
        coords: np.ndarray,
        values: np.ndarray,
        base: str = "median",
        fit_gp: GPFitter | None = None,
    ) -> ShrunkField:
        """Fit to ``values`` ``(n, m)`` at ``coords`` ``(n, 2)``; ``base`` is median or zero.

        ``fit_gp(coords, values)`` fits the GP (default :meth:`SharedKernelGP.fit` here; the
        co-navigation agent passes its executor-backed fitter)."""
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        gp = (fit_gp or SharedKernelGP.fit)(coords, values)
        if base == "median":
            const = np.median(values, axis=0)
            loo_const = np.array([np.median(np.delete(values, i, 0), 0) for i in range(n)])
        else:
            const = np.zeros(values.shape[1])
            loo_const = np.zeros_like(values)
        base_mse = np.mean((values - loo_const) ** 2, axis=0)
        if n < 4:
            return cls(gp, const, 0.0, base_mse, 0.0)
        lift, target = loo_predictions(gp, coords, values) - loo_const, values - loo_const
        weight = float(np.clip((lift * target).sum() / max((lift**2).sum(), 1e-300), 0.0, 1.0))
        # per-pixel gain in squared error; keep the GP only if the gain is significant (2 s.e.)
        gain = (target**2).sum(1) - ((target - weight * lift) ** 2).sum(1)
        if gain.mean() <= 2.0 * gain.std(ddof=1) / np.sqrt(n):
            weight = 0.0
        stacked = ((target - weight * lift) ** 2).mean(0)
        skill = 1.0 - float(stacked.sum() / max(base_mse.sum(), 1e-300))
        return cls(gp, const, weight, base_mse, skill)

    def predict(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(n, m)`` and variance ``(n, m)``: the GP's variance for the part it is
        trusted with (``weight``), the constant's LOO error for the rest."""
        mean, var = self.gp.predict(coords)
        out = self.base + self.weight * (mean - self.base)
        gp_var = var[:, None] * self.gp.y_std[None, :] ** 2
        return out, self.weight * gp_var + (1.0 - self.weight) * self.base_mse[None, :]

    def state(self) -> dict[str, np.ndarray]:
        """Arrays enough to rebuild the field (see :meth:`from_state`)."""
        meta = np.array([self.weight, self.skill])
        gp = {f"gp.{k}": v for k, v in self.gp.state().items()}
        return {**gp, "base": self.base, "base_mse": self.base_mse, "meta": meta}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ShrunkField:
        """Rebuild from :meth:`state`."""
        gp = SharedKernelGP.from_state({k[3:]: v for k, v in state.items() if k.startswith("gp.")})
        weight, skill = (float(v) for v in state["meta"])
        return cls(gp, np.asarray(state["base"]), weight, np.asarray(state["base_mse"]), skill)


def loo_predictions(gp: SharedKernelGP, coords: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Exact leave-one-out predictions ``(n, m)`` of ``gp``'s kernel: pixel ``i`` predicted from
    the others, with their own output mean (hyperparameters from the full fit)."""
    n = len(values)
    K = gp.kernel(coords, coords) + (gp.noise**2 + 1e-8) * np.eye(n)
    out = np.empty_like(values)
    for i in range(n):
        rest = np.arange(n) != i
        mean = values[rest].mean(0)
        z = (values[rest] - mean) / gp.y_std
        out[i] = mean + K[i, rest] @ np.linalg.solve(K[np.ix_(rest, rest)], z) * gp.y_std
    return out


def shape_error(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sqrt(1 - corr^2)`` per row of ``(n, V)`` loops: the normalised RMSE after the best
    gain and offset (0 = same shape, 1 = no better than a flat line)."""
    pc, yc = pred - pred.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    den = np.maximum(np.sqrt((pc**2).sum(-1) * (yc**2).sum(-1)), 1e-300)
    return np.sqrt(np.clip(1.0 - ((pc * yc).sum(-1) / den) ** 2, 0.0, 1.0))


def _choose_shape_weight(
    fields: dict[str, ShrunkField],
    coords: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    shape: np.ndarray,
) -> None:
    """Set the shape map's weight by the loss the twin is judged on: the leave-one-out shape
    error of ``r0 m_x + w d_-x`` (``r0`` the median agreement, ``d_-x`` the shape GP's
    prediction without pixel ``x``) over ``w`` in ``0, 0.1, .., 1``; ``w > 0`` only if its mean
    gain over ``w = 0`` (the theory's own shape) is above 2 standard errors. The squared
    error in theory units that :meth:`ShrunkField.fit` stacks on is dominated by the loops the
    theory does not explain, where adding a map looks good while it spoils the shape of the
    loops the theory does explain."""
    field = fields["shape"]
    n = len(y)
    if n < 4:
        field.weight, field.skill = 0.0, 0.0
        return
    loo = loo_predictions(field.gp, coords, shape)
    r0 = float(fields["corr"].base[0])
    grid = np.linspace(0.0, 1.0, 11)
    errors = np.array([shape_error(r0 * m + w * loo, y) for w in grid])  # (11, n)
    best = int(np.argmin(errors.mean(1)))
    gain = errors[0] - errors[best]
    if best == 0 or gain.mean() <= 2.0 * gain.std(ddof=1) / np.sqrt(n):
        best = 0
    field.weight = float(grid[best])
    field.skill = 1.0 - float(errors[best].mean() / max(errors[0].mean(), 1e-300))


def decompose(y: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel ``log_gain (n,)``, ``corr (n,)``, ``offset (n,)``, ``shape (n, V)`` of loops
    ``y`` ``(n, V)`` against theory loops ``m`` ``(n, V)`` (module docstring; exact inverse of
    :func:`compose`)."""
    y, m = np.asarray(y, dtype=np.float64), np.asarray(m, dtype=np.float64)
    yc, mc = y - y.mean(1, keepdims=True), m - m.mean(1, keepdims=True)
    sy = np.maximum(np.sqrt((yc**2).mean(1)), 1e-300)
    sm = np.maximum(np.sqrt((mc**2).mean(1)), 1e-300)
    k = sy / sm
    r = (yc * mc).mean(1) / (sy * sm)
    b = y.mean(1) - k * r * m.mean(1)
    shape = y / k[:, None] - r[:, None] * m - (b / k)[:, None]
    return {"log_gain": np.log(k), "corr": r, "offset": b / k, "shape": shape}


def compose(parts: dict[str, np.ndarray], m: np.ndarray) -> np.ndarray:
    """Loops ``(n, V)`` from the parts of :func:`decompose` and theory loops ``m`` ``(n, V)``."""
    k = np.exp(parts["log_gain"])[:, None]
    return k * (parts["corr"][:, None] * m + parts["offset"][:, None] + parts["shape"])


@dataclass
class TwinFields:
    """The four maps of a twin and the measured pixels' exact parts.

    Attributes:
        fields: ``{name: ShrunkField}`` for ``log_gain``, ``corr``, ``offset``, ``shape``.
        measured: Flat indices of the measured pixels ``(n_x,)``.
        parts: Their exact parts ``{name: (n_x,) or (n_x, V)}`` (the twin returns the measured
            loop there).
    """

    fields: dict[str, ShrunkField]
    measured: np.ndarray
    parts: dict[str, np.ndarray]

    @classmethod
    def fit(
        cls,
        coords: np.ndarray,
        flat: np.ndarray,
        y: np.ndarray,
        m: np.ndarray,
        fit_gp: Callable[[str], GPFitter] | None = None,
    ) -> TwinFields:
        """From measured loops ``y`` ``(n_x, V)`` at flat pixels ``flat`` (coordinates
        ``coords`` ``(n_x, 2)``) and the calibrated theory there ``m`` ``(n_x, V)``.

        ``fit_gp(name)`` gives the GP fitter of map ``name`` (default: fit here)."""
        parts = decompose(y, m)
        fields = {
            name: ShrunkField.fit(
                coords,
                parts[name] if parts[name].ndim == 2 else parts[name][:, None],
                base="zero" if name == "shape" else "median",
                fit_gp=None if fit_gp is None else fit_gp(name),
            )
            for name in FIELDS
        }
        _choose_shape_weight(fields, coords, y, m, parts["shape"])
        return cls(fields, np.asarray(flat), parts)

    def predict(
        self, flat: np.ndarray, coords: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Parts and their variances at flat pixels ``(n,)`` (coordinates ``(n, 2)``); measured
        pixels get their exact parts and zero variance."""
        means, variances = {}, {}
        for name, field in self.fields.items():
            mu, var = field.predict(coords)
            means[name] = mu if name == "shape" else mu[:, 0]
            variances[name] = var if name == "shape" else var[:, 0]
        where = {int(f): i for i, f in enumerate(self.measured)}
        rows = [j for j, f in enumerate(np.asarray(flat)) if int(f) in where]
        src = [where[int(flat[j])] for j in rows]
        for name in FIELDS:
            means[name][rows] = self.parts[name][src]
            variances[name][rows] = 0.0
        return means, variances

    def constants(self, n: int) -> dict[str, np.ndarray]:
        """Every map at its constant, as parts of ``n`` pixels (shapes as in :meth:`predict`)."""
        out = {}
        for name, field in self.fields.items():
            tiled = np.tile(field.base, (n, 1))
            out[name] = tiled if name == "shape" else tiled[:, 0]
        return out

    def summary(self) -> dict[str, float]:
        """``{name.weight, name.skill}`` per field (LOO stacking weight and skill)."""
        out = {}
        for name, field in self.fields.items():
            out[f"{name}.weight"], out[f"{name}.skill"] = field.weight, field.skill
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Flat arrays ``{key: array}`` (see :meth:`from_state`)."""
        out: dict[str, np.ndarray] = {"measured": self.measured}
        for name in FIELDS:
            out[f"part.{name}"] = self.parts[name]
            for key, value in self.fields[name].state().items():
                out[f"{name}.{key}"] = np.asarray(value)
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> TwinFields:
        """Rebuild from :meth:`state`."""
        fields = {
            name: ShrunkField.from_state(
                {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
            )
            for name in FIELDS
        }
        parts = {name: np.asarray(state[f"part.{name}"]) for name in FIELDS}
        return cls(fields, np.asarray(state["measured"]), parts)
