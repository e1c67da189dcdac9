"""Co-navigation: an agent that explores theory and experiment together (it picks the modality).

It learns from two modalities: measured loops (the experiment) and simulated loops (a theory
simulator, an instrument whose requests carry ``theta`` and ``fidelity``). Surrogates, all
:class:`~coscope.models.multioutput_gp.SharedKernelGP` over whole loops:

* **theory GP** (emulator) over ``(s, theta[, z])``: structure ``s`` mapped to ``[0, 1]``, the
  calibrated parameters in their unit box, and for a lattice simulator the fidelity feature
  ``z = (1/L - 1/L_max) / (1/L_min - 1/L_max)`` (``z = 0`` is the top fidelity, the target);
* **experiment GP** over normalised coordinates ``(row / H, col / W)``;
* **twin maps** over coordinates (:class:`~coscope.twin.fields.TwinFields`): per-location
  gain, shape agreement, offset and shape discrepancy of the loops against the calibrated
  theory, each a GP kept only as far as it predicts held-out pixels; the shape-discrepancy
  GP is :attr:`discrepancy`.

After every new result the emulator is refitted and theta recalibrated
(:func:`~coscope.agents.calibration.calibrate`). Choices, each by value per cost:

* **experiment** (idle microscope): the pixel with the largest discrepancy-GP variance (where
  the twin is least sure), damped near pending pixels by ``1 - exp(-d^2 / 2 l^2)``;
  the first ``n_initial`` are the spec's seed points, then random;
* **simulation** (idle simulator): ``theta`` from a Sobol design for the first ``n_design``
  runs, then alternately a posterior draw (Thompson sampling) and the next design point (so
  that a wrong early posterior cannot confine the emulator to its own neighbourhood);
  location and fidelity maximise the emulator's variance reduction at the target fidelity,
  ``cov(c, t)^2 / (var(c) + noise^2)``, per cost ``cost * (L / L_max)^2``.

Fits: each surrogate is fitted through :func:`~coscope.models.fitting.fit_model` (kind
``shared_gp``) by ``self.fitter`` — in this process by default, on the campaign's executor (a
Dask worker or a Prefect ``fit`` task) once the loop calls :meth:`use_executor`. Every fit is
handed to the loop with :meth:`take_fits` and recorded in the trace and MLflow.

The twin prediction at any pixel is the calibrated theory ``a0 eta(s_x, theta*) + b0`` (sample-
wide median amplitude and offset) plus what the maps predict beyond their constants
(:class:`~coscope.twin.DigitalTwin`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from coscope.agents.calibration import Posterior, ThetaSpace, affine_profile, calibrate
from coscope.agents.protocols import AgentReport, Ask
from coscope.instruments.theory import normalized_structure
from coscope.models.fitting import Fitter, fit_here
from coscope.models.multioutput_gp import SharedKernelGP
from coscope.twin.artefact import DigitalTwin
from coscope.twin.fields import TwinFields
from coscope.types import FitRecord, Location, Measurement, Proposal

Target = Callable[[np.ndarray], np.ndarray]
"""Loops ``(n, V)`` -> the campaign's scalar target ``(n,)``."""

FIT_KIND = "shared_gp"
FIT_ITERATIONS = 60


class CoNavigationAgent:
    """Theory-experiment co-navigation over an ``H x W`` grid (see the module docstring).

    Args:
        shape: Grid ``(H, W)``.
        structure: Structure image ``H x W`` (the theory's input).
        experiment_modality: Modality of the measured loops.
        theory_modality: Modality of the simulated loops.
        space: Calibrated parameters and their prior box.
        fixed_theta: Other theory parameters, sent with every simulation.
        sizes: Lattice sides offered (fidelities), or ``None`` for a single-fidelity model.
        target: Loops -> scalar target (for :meth:`report`).
        seed: Randomness of the design, the draws and calibration.
        n_initial: Experiments placed before the model chooses.
        n_design: Simulations on the space-filling theta design before posterior draws.
        seed_points: First experiment locations.
        n_eff: Effective independent points per loop in the likelihood (``None``: estimated
            from the residuals at every calibration, see
            :func:`~coscope.agents.calibration.effective_points`).
        voltage: The loops' axis ``(V,)`` (kept in the twin).
        model: Theory kind, for the twin's record.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        structure: np.ndarray,
        experiment_modality: str,
        theory_modality: str,
        space: ThetaSpace,
        *,
        fixed_theta: Mapping[str, float] | None = None,
        sizes: Sequence[int] | None = None,
        target: Target | None = None,
        seed: int = 0,
        n_initial: int = 5,
        n_design: int = 8,
        seed_points: Sequence[Location] = (),
        n_eff: float | None = None,
        voltage: np.ndarray | None = None,
        model: str = "theory_lgd",
    ) -> None:
        self.shape = shape
        self.model = model
        self.modalities: tuple[str, ...] = (experiment_modality, theory_modality)
        self.experiment_modality, self.theory_modality = experiment_modality, theory_modality
        self.space = space
        self.fixed_theta = dict(fixed_theta or {})
        self.sizes = tuple(sorted(int(s) for s in sizes)) if sizes else None
        self.target = target
        self.seed, self.n_initial, self.n_design, self.n_eff = seed, n_initial, n_design, n_eff
        self.seed_points = list(seed_points)
        self.s = normalized_structure(structure)
        self.voltage = np.asarray(voltage if voltage is not None else [], dtype=np.float64)
        h, w = shape
        rows, cols = np.divmod(np.arange(h * w), w)
        self.coords = np.c_[rows / max(h - 1, 1), cols / max(w - 1, 1)]
        self.design = space.design(max(64, 4 * n_design), seed)
        self.experiments: dict[int, tuple[Location, np.ndarray]] = {}
        self.simulations: dict[int, tuple[Location, np.ndarray, int, np.ndarray]] = {}
        self.emulator: SharedKernelGP | None = None
        self.posterior: Posterior | None = None
        self.discrepancy: SharedKernelGP | None = None
        self.experiment_gp: SharedKernelGP | None = None
        self.version = -1
        self.history: list[dict[str, Any]] = []
        self._seen = (0, 0)
        self._params: dict[int, dict[str, Any]] = {}
        self.fields: TwinFields | None = None
        self._affine = (1.0, 0.0)
        self._loo_mse = np.zeros(0)
        self.fitter: Fitter = fit_here
        self._own_fits: list[FitRecord] = []  # fits made since the loop last took them
        self._last_fits: dict[str, tuple[bytes, SharedKernelGP]] = {}  # role -> (data, model)

    # --- learning ------------------------------------------------------------------------
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """File measured and simulated loops; surrogates refresh lazily on the next use."""
        for m in measurements:
            if m.modality == self.experiment_modality:
                self.experiments[m.step] = (m.location, np.asarray(m.signal, dtype=np.float64))
            elif m.modality == self.theory_modality:
                unit = self._theta_unit(m)
                size = self._size_of(m)
                self.simulations[m.step] = (m.location, unit, size, np.asarray(m.signal))

    @property
    def n_observations(self) -> int:
        """Experiments and simulations learned from."""
        return len(self.experiments) + len(self.simulations)

    def _theta_unit(self, m: Measurement) -> np.ndarray:
        theta = self._params.get(m.step, {}).get("theta", {})
        values = [theta.get(n, np.nan) for n in self.space.names]
        return self.space.to_unit(np.array(values, dtype=np.float64))

    def _size_of(self, m: Measurement) -> int:
        size = self._params.get(m.step, {}).get("fidelity")
        return int(size) if size is not None else (self.sizes[-1] if self.sizes else 0)

    def remember_params(self, step: int, params: Mapping[str, Any]) -> None:
        """Record the params of decision ``step`` (the trace holds them; measurements do not)."""
        self._params[step] = dict(params)

    def _z(self, size: int | np.ndarray) -> np.ndarray:
        if not self.sizes or len(self.sizes) == 1:
            return np.zeros_like(np.asarray(size, dtype=np.float64))
        lo, hi = self.sizes[0], self.sizes[-1]
        return (1.0 / np.asarray(size) - 1.0 / hi) / (1.0 / lo - 1.0 / hi)

    def _inputs(self, s: np.ndarray, units: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        cols = [((np.asarray(s) + 1.0) / 2.0)[:, None], np.atleast_2d(units)]
        if self.sizes and len(self.sizes) > 1:
            cols.append((np.zeros(len(s)) if z is None else np.asarray(z))[:, None])
        return np.hstack(cols)

    def emulate(self, s: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Theory GP at the target fidelity: mean ``(n, V)`` and variance ``(n, V)``: the larger
        of the GP's predictive variance and its leave-one-out error (the emulator's realised
        error, which the calibration must not mistake for information about theta)."""
        assert self.emulator is not None
        mean, var = self.emulator.predict(self._inputs(s, units))
        var = var[:, None] * self.emulator.y_std[None, :] ** 2
        return mean, np.maximum(var, self._loo_mse[None, :])

    def refresh(self) -> None:
        """Refit the surrogates and recalibrate theta if results arrived since the last time."""
        seen = (len(self.experiments), len(self.simulations))
        if seen == self._seen:
            return
        self._seen = seen
        sims = [self.simulations[k] for k in sorted(self.simulations)]
        sims = [x for x in sims if np.all(np.isfinite(x[1]))]
        if len(sims) >= 2:
            s = np.array([self.s[loc.row, loc.col] for loc, *_ in sims])
            X = self._inputs(
                s,
                np.array([u for _, u, _, _ in sims]),
                self._z(np.array([size for _, _, size, _ in sims])),
            )
            self.emulator = self._fit("theory", X, np.array([y for *_, y in sims]))
            self._loo_mse = self.emulator.loo_mse()
        exps = self._experiment_list()
        if exps:
            flat = np.array([loc.flat(self.shape[1]) for loc, _ in exps])
            y = np.array([sig for _, sig in exps])
            if len(exps) >= 2:
                self.experiment_gp = self._fit("experiment", self.coords[flat], y)
            if self.emulator is not None:
                s_x = self.s.ravel()[flat]
                self.posterior = calibrate(
                    y,
                    s_x,
                    self.space,
                    self.emulate,
                    seed=self.seed + 7919 * len(exps) + 31 * len(sims),  # f(seed, data)
                    n_eff=self.n_eff,
                )
                if len(exps) >= 2:
                    self._fit_fields(flat, y, s_x)
        self.version += 1
        self.history.append(self._summary())

    def use_executor(self, executor: Any) -> None:
        """Fit the surrogates with ``executor.fit`` (the campaign loop's executor)."""
        self.fitter = executor.fit

    def _fit(self, role: str, X: np.ndarray, Y: np.ndarray) -> SharedKernelGP:
        """Fit one surrogate through ``self.fitter``; the fit is kept for :meth:`take_fits`.

        Deterministic in the data (the seed is ``f(seed, data sizes)`` and recorded). A
        surrogate whose data did not change since its last fit (e.g. the experiment GP when
        only a simulation arrived) is reused, not fitted and recorded again."""
        X, Y = np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(Y, dtype=np.float64)
        digest = hashlib.sha256(X.tobytes() + Y.tobytes() + repr(Y.shape).encode()).digest()
        last = self._last_fits.get(role)
        if last is not None and last[0] == digest:
            return last[1]
        n_x, n_s = len(self.experiments), len(self.simulations)
        seed = self.seed + 7919 * n_x + 31 * n_s
        state = self.fitter(FIT_KIND, X, Y, seed, FIT_ITERATIONS, {})
        self._own_fits.append(state.record(-1, n_x + n_s, role=role, kind=FIT_KIND))
        model = state.model()
        self._last_fits[role] = (digest, model)
        return model

    def take_fits(self) -> list[FitRecord]:
        """Fits made since the last call (version -1: the loop numbers them in trace order)."""
        taken, self._own_fits = self._own_fits, []
        return taken

    def _fit_fields(self, flat: np.ndarray, y: np.ndarray, s_x: np.ndarray) -> None:
        """Sample-wide affine ``(median a, median b)`` of the loops on the theory at theta* and
        the twin's maps (:class:`~coscope.twin.fields.TwinFields`)."""
        unit = self.space.to_unit(self.posterior.mean)[None, :]
        mean, var = self.emulate(s_x, np.repeat(unit, len(s_x), 0))
        _, a, b = affine_profile(y[:, None, :], mean[:, None, :], var[:, None, :])
        self._affine = (float(np.median(a[:, 0])), float(np.median(b[:, 0])))
        self.fields = TwinFields.fit(
            self.coords[flat], flat, y, mean, lambda name: partial(self._fit, f"twin_{name}")
        )
        self.discrepancy = self.fields.fields["shape"].gp

    def _summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "version": self.version,
            "n_experiments": len(self.experiments),
            "n_simulations": len(self.simulations),
        }
        if self.posterior is not None:
            for name, m, sd in zip(
                self.space.names, self.posterior.mean, self.posterior.std, strict=True
            ):
                row[f"theta.{name}"], row[f"theta_std.{name}"] = float(m), float(sd)
            row["n_eff"] = float(self.posterior.n_eff)
        return row

    # --- predictions ---------------------------------------------------------------------
    def digital_twin(self) -> DigitalTwin | None:
        """The twin as it stands (``None`` until theory and two experiments are in)."""
        self.refresh()
        if self.posterior is None or self.discrepancy is None or self.experiment_gp is None:
            return None
        p = self.posterior
        return DigitalTwin(
            model=self.model,
            theta_names=self.space.names,
            theta_mean=p.mean,
            theta_std=p.std,
            theta_cov=p.cov,
            lo=self.space.lo,
            hi=self.space.hi,
            fixed_theta=self.fixed_theta,
            s=self.s,
            sizes=self.sizes or (),
            emulator=self.emulator,
            fields=self.fields,
            experiment=self.experiment_gp,
            affine=self._affine,
            measured=np.array([loc.flat(self.shape[1]) for loc, _ in self._experiment_list()]),
            local_theta=p.local_means(),
            voltage=self.voltage,
            history=list(self.history),
        )

    def _experiment_list(self) -> list[tuple[Location, np.ndarray]]:
        return [self.experiments[k] for k in sorted(self.experiments)]

    def predict(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Loops at flat pixel indices (see :meth:`DigitalTwin.predict`); ``experiment`` only
        until the twin exists, empty before two experiments."""
        twin = self.digital_twin()
        if twin is not None:
            return twin.predict(flat)
        if self.experiment_gp is None:
            return {}
        return {"experiment": self.experiment_gp.predict(self.coords[np.asarray(flat)])[0]}

    def report(self) -> AgentReport:
        """Twin map of the target (NaN until calibrated) and the best measured target."""
        self.refresh()
        h, w = self.shape
        mean = std = np.full((h, w), np.nan)
        pred = self.predict(np.arange(h * w)) if self.target is not None else {}
        if "twin" in pred:
            mean = self.target(pred["twin"]).reshape(h, w)
            std = np.sqrt(pred["twin_var"]).reshape(h, w)
        best_value, best_loc = float("nan"), None
        if self.target is not None and self.experiments:
            steps = sorted(self.experiments)
            values = self.target(np.array([self.experiments[k][1] for k in steps]))
            i = int(np.argmax(values))
            best_value, best_loc = float(values[i]), self.experiments[steps[i]][0]
        return AgentReport(
            mean, std, self.version, len(self.experiments), best_value, best_loc, None
        )

    # --- choosing ------------------------------------------------------------------------
    def propose(self, ask: Ask) -> Proposal | None:
        """Next experiment (if the instrument measures) or simulation (if it simulates)."""
        self.refresh()
        rng = np.random.default_rng([self.seed, ask.step])
        propose = self._propose_simulation
        if self.experiment_modality in ask.offered:
            propose = self._propose_experiment
        return propose(ask.step, ask.instrument, ask.pending, ask.price, rng)

    def _propose_experiment(self, step, instrument, pending, cost, rng) -> Proposal | None:
        h, w = self.shape
        mod = self.experiment_modality
        taken = np.zeros(h * w, dtype=bool)
        for loc, _ in self.experiments.values():
            taken[loc.flat(w)] = True
        pend = [p.location for p in pending if p.modality == mod]
        for loc in pend:
            taken[loc.flat(w)] = True
        if taken.all():
            return None
        model = self.discrepancy or self.experiment_gp
        score, std = float("nan"), float("nan")
        if len(self.experiments) + len(pend) < self.n_initial or model is None:
            free = [p for p in self.seed_points if not taken[p.flat(w)]]
            flat = free[0].flat(w) if free else int(rng.choice(np.flatnonzero(~taken)))
            policy = "conav-initial"
        else:
            _, var = model.predict(self.coords)
            ls = float(np.mean(model.lengthscale))
            for loc in pend:
                d2 = ((self.coords - self.coords[loc.flat(w)]) ** 2).sum(1)
                var = var * (1.0 - np.exp(-0.5 * d2 / ls**2))
            value = np.where(taken, -np.inf, var)
            flat = int(np.argmax(value))
            score, std, policy = float(value[flat]), float(np.sqrt(var[flat])), "conav-experiment"
        loc = Location.from_flat(flat, w)
        price = cost(instrument, mod, loc)
        return Proposal(
            step,
            instrument,
            mod,
            loc,
            policy,
            score=score / max(price, 1e-12),
            expected_cost=price,
            model_version=self.version,
            predicted_std=std,
        )

    def _propose_simulation(self, step, instrument, pending, cost, rng) -> Proposal | None:
        mod = self.theory_modality
        n_sims = len(self.simulations) + sum(p.modality == mod for p in pending)
        explore = n_sims % 2 == 1  # every other one keeps filling the box: no early trap
        if self.posterior is None or len(self.simulations) < self.n_design or explore:
            unit, policy = self.design[n_sims % len(self.design)], "conav-design"
        else:
            unit, policy = self.posterior.sample(rng), "conav-theta"
        w = self.shape[1]
        locs = [loc for loc, _ in self.experiments.values()]
        locs += [p.location for p in pending if p.modality == self.experiment_modality]
        if not locs:
            locs = [Location.from_flat(int(i), w) for i in rng.choice(self.s.size, 16)]
        locs = [locs[i] for i in rng.permutation(len(locs))[:64]]
        sizes = self.sizes or (0,)
        price = {k: cost(instrument, mod, locs[0], {"fidelity": k} if k else {}) for k in sizes}
        if self.emulator is None:
            loc, size, score = locs[0], sizes[n_sims % len(sizes)], float("nan")
        else:
            s = np.array([self.s[loc.row, loc.col] for loc in locs])
            units = np.repeat(unit[None, :], len(locs), 0)
            target = self._inputs(s, units)
            best = (-np.inf, locs[0], sizes[-1])
            for size in sizes:
                cand = self._inputs(s, units, np.full(len(locs), self._z(size)))
                cov = np.diag(self.emulator.posterior_cov(cand, target))
                var = np.maximum(self.emulator.predict(cand)[1], 1e-12)
                value = cov**2 / (var + self.emulator.noise**2) / price[size]
                i = int(np.argmax(value))
                if value[i] > best[0]:
                    best = (float(value[i]), locs[i], size)
            score, loc, size = best
        theta = {**self.fixed_theta, **self.space.as_dict(self.space.from_unit(unit))}
        params: dict[str, Any] = {"theta": theta}
        if self.sizes:
            params["fidelity"] = int(size)
        self.remember_params(step, params)
        return Proposal(
            step,
            instrument,
            mod,
            loc,
            policy,
            score=score,
            expected_cost=price[size],
            model_version=self.version,
            params=params,
        )
