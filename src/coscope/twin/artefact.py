"""The digital twin: calibrated theory, its surrogates and where it fails, as one artefact.

A :class:`DigitalTwin` holds theta* with its posterior covariance, the theory GP (emulator),
the experiment GP and the per-pixel maps of gain, shape agreement, offset and shape
discrepancy (:class:`~coscope.twin.fields.TwinFields`; plain arrays, see
:meth:`~coscope.models.multioutput_gp.SharedKernelGP.state`), the structure it reads, and the
calibration history. It predicts loops at any pixel:

    theory(x) = a0 eta(s_x, theta*) + b0          (sample-wide amplitude a0, offset b0)
    twin(x)   = theory(x) + F(x) - F0(x)          (unmeasured pixels)
    twin(x)   = the measured loop                  (measured pixels)

with ``F(x) = k(x) (r(x) m_x + c(x) + d(x))`` the maps' prediction and ``F0`` the same with every
map at its constant (the gain ``k`` in both as ``exp(mean - 1.5 var)`` of its log: the point
prediction that minimises the expected squared error relative to the loop's own std, the
loss of a map whose gains span decades; ``E[k^-1] / E[k^-2]`` for a log-normal gain): the
twin adds to the calibrated theory only what the maps predict beyond their constants, and each
map's GP contributes only as far as leave-one-out on the measured pixels shows it predictive.
With no predictive map the twin *is* the calibrated theory.

Saved as ``twin.npz`` + ``twin.json`` in a folder; :func:`save_pyfunc` wraps it as an MLflow
``pyfunc`` model (input: a frame with ``row`` and ``col``; output: one twin loop per row),
which the tracker uploads and registers in the model registry.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coscope.models.multioutput_gp import SharedKernelGP
from coscope.twin.fields import TwinFields, compose

_GPS = ("emulator", "experiment")
GAIN_SHRINK = 1.5
"""Point gain ``exp(mu - 1.5 s^2)`` for ``log k ~ N(mu, s^2)``: argmin of ``E|p - y|^2 / k^2``."""


@dataclass
class DigitalTwin:
    """Calibrated theory + surrogates over an ``H x W`` grid (see the module docstring).

    Attributes:
        model: Theory kind (``theory_lgd`` / ``theory_lattice``).
        theta_names, theta_mean, theta_std: Calibrated parameters ``(k,)``; theta_cov ``(k, k)``.
        lo, hi: Prior box ``(k,)``; fixed_theta: the other parameters.
        s: Normalised structure ``H x W``; sizes: lattice fidelities (``()`` if none).
        emulator, experiment: The theory and experiment GPs.
        fields: Gain / agreement / offset / shape-discrepancy maps (:class:`TwinFields`).
        affine: ``(a0, b0)``; measured: flat indices of measured pixels ``(n_x,)``.
        local_theta: Per measured pixel posterior means of theta ``(n_x, k)``.
        history: Calibration trajectory, one dict per refresh.
        voltage: The loops' axis ``(V,)``.
    """

    model: str
    theta_names: tuple[str, ...]
    theta_mean: np.ndarray
    theta_std: np.ndarray
    theta_cov: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    fixed_theta: dict[str, float]
    s: np.ndarray
    sizes: tuple[int, ...]
    emulator: SharedKernelGP
    fields: TwinFields
    experiment: SharedKernelGP
    affine: tuple[float, float]
    measured: np.ndarray
    local_theta: np.ndarray
    voltage: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """Grid ``(H, W)``."""
        return (int(self.s.shape[0]), int(self.s.shape[1]))

    def coords(self, flat: np.ndarray) -> np.ndarray:
        """Normalised ``(row / (H-1), col / (W-1))`` of flat indices, ``(n, 2)``."""
        h, w = self.shape
        rows, cols = np.divmod(np.asarray(flat), w)
        return np.c_[rows / max(h - 1, 1), cols / max(w - 1, 1)]

    def emulator_inputs(self, s: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Emulator inputs at the top fidelity: ``[(s+1)/2, theta_unit(, z=0)]``, ``(n, d)``."""
        cols = [((np.asarray(s) + 1.0) / 2.0)[:, None], np.atleast_2d(units)]
        if len(self.sizes) > 1:
            cols.append(np.zeros((len(s), 1)))
        return np.hstack(cols)

    def theory(self, flat: np.ndarray, theta: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Emulated theory loops ``(n, V)`` at ``theta`` (default theta*) and their variance."""
        theta = self.theta_mean if theta is None else np.asarray(theta)
        unit = (theta - self.lo) / (self.hi - self.lo)
        s = self.s.ravel()[np.asarray(flat)]
        mean, var = self.emulator.predict(self.emulator_inputs(s, np.repeat(unit[None], len(s), 0)))
        a0, b0 = self.affine
        return a0 * mean + b0, (a0**2) * var[:, None] * self.emulator.y_std[None, :] ** 2

    @property
    def discrepancy(self) -> SharedKernelGP:
        """The shape-discrepancy GP over coordinates (outputs: a loop in theory units)."""
        return self.fields.fields["shape"].gp

    def predict(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Loops ``(n, V)`` at flat pixel indices: ``twin``, ``theory``, ``experiment``,
        ``discrepancy`` (``twin - theory``); ``twin_var`` ``(n,)``: mean variance per loop
        point (signal units squared)."""
        flat = np.asarray(flat)
        theory, theory_var = self.theory(flat)
        a0, b0 = self.affine
        raw = (theory - b0) / a0 if a0 != 0 else np.zeros_like(theory)
        coords = self.coords(flat)
        parts, var = self.fields.predict(flat, coords)
        loop = compose(parts, raw)
        point = dict(parts, log_gain=parts["log_gain"] - GAIN_SHRINK * var["log_gain"])
        const = self.fields.constants(len(flat))
        const["log_gain"] = (
            const["log_gain"] - GAIN_SHRINK * self.fields.fields["log_gain"].base_mse[0]
        )
        twin = theory + compose(point, raw) - compose(const, raw)
        is_measured = np.isin(flat, self.fields.measured)
        twin[is_measured] = loop[is_measured]
        k2 = np.exp(2.0 * parts["log_gain"])
        raw_var = theory_var.mean(1) / max(a0**2, 1e-300)
        twin_var = var["log_gain"] * (loop**2).mean(1) + k2 * (
            var["shape"].mean(1)
            + parts["corr"] ** 2 * raw_var
            + var["corr"] * (raw**2).mean(1)
            + var["offset"]
        )
        return {
            "theory": theory,
            "twin": twin,
            "experiment": self.experiment.predict(coords)[0],
            "twin_var": twin_var,
            "discrepancy": twin - theory,
        }

    def discrepancy_map(self) -> np.ndarray:
        """Where the theory fails: RMS of the shape discrepancy ``d`` per pixel relative to the
        theory loop's std (``0`` = the theory's shape explains the loop), ``H x W``.

        Measured pixels show their own ``d``; the others the shape GP's interpolation, whether
        or not leave-one-out found it predictive enough to enter the twin (its weight).
        """
        h, w = self.shape
        flat = np.arange(h * w)
        shape = self.discrepancy.predict(self.coords(flat))[0]
        shape[self.fields.measured] = self.fields.parts["shape"]
        a0, b0 = self.affine
        raw = (self.theory(flat)[0] - b0) / a0 if a0 != 0 else np.ones((h * w, 1))
        rms = np.sqrt(np.mean(shape**2, axis=1))
        return (rms / np.maximum(raw.std(1), 1e-12)).reshape(h, w)

    # --- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``twin.npz`` (arrays) and ``twin.json`` (names, theta*, history) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            k: np.asarray(getattr(self, k))
            for k in (
                "theta_mean",
                "theta_std",
                "theta_cov",
                "lo",
                "hi",
                "s",
                "measured",
                "local_theta",
                "voltage",
            )
        }
        for name in _GPS:
            for key, value in getattr(self, name).state().items():
                arrays[f"{name}.{key}"] = np.asarray(value)
        for key, value in self.fields.state().items():
            arrays[f"fields.{key}"] = np.asarray(value)
        np.savez(folder / "twin.npz", **arrays)
        meta = {
            "model": self.model,
            "theta_names": list(self.theta_names),
            "theta": dict(zip(self.theta_names, map(float, self.theta_mean), strict=True)),
            "theta_std": dict(zip(self.theta_names, map(float, self.theta_std), strict=True)),
            "fixed_theta": self.fixed_theta,
            "sizes": list(self.sizes),
            "affine": list(self.affine),
            "fields": self.fields.summary(),
            "history": self.history,
        }
        (folder / "twin.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DigitalTwin:
        """Read a twin written by :meth:`save` (same predictions)."""
        folder = Path(folder)
        meta = json.loads((folder / "twin.json").read_text())
        with np.load(folder / "twin.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        gps = {
            name: SharedKernelGP.from_state(
                {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(name + ".")}
            )
            for name in _GPS
        }
        fields = TwinFields.from_state(
            {k[len("fields.") :]: v for k, v in arrays.items() if k.startswith("fields.")}
        )
        plain = {k: v for k, v in arrays.items() if "." not in k}
        return cls(
            model=meta["model"],
            theta_names=tuple(meta["theta_names"]),
            fixed_theta=meta["fixed_theta"],
            sizes=tuple(meta["sizes"]),
            affine=tuple(meta["affine"]),
            history=meta["history"],
            fields=fields,
            **plain,
            **gps,
        )


def save_pyfunc(twin: DigitalTwin, folder: str | Path) -> Path:
    """Write ``twin`` as an MLflow pyfunc model folder (no requirement inference: fast).

    The model is saved "from code" (:mod:`coscope.twin.pyfunc_code`, loaded by import, not
    cloudpickled) with an explicit signature: input columns ``row``, ``col`` (int64), output
    one column ``v<i>`` (float64) per point of the loop.
    """
    # heavy: MLflow, only when the twin is saved (the co-navigation agent builds twins
    # without it); importing pyfunc_code also declares the model to MLflow (its purpose)
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from coscope.twin import pyfunc_code

    signature = ModelSignature(
        inputs=Schema([ColSpec("long", "row"), ColSpec("long", "col")]),
        outputs=Schema([ColSpec("double", f"v{i}") for i in range(len(twin.voltage))]),
    )
    folder = Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        twin.save(Path(tmp) / "twin")
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=pyfunc_code.__file__,
            artifacts={"twin": str(Path(tmp) / "twin")},
            signature=signature,
            pip_requirements=["numpy", "scipy", "pandas", "coscope"],
        )
    return folder
