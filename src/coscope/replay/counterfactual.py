"""Counterfactual replay: follow a recorded path with other settings, read-only.

For every recorded decision ``k`` in order, replay rebuilds what the agent knew then — the
effective settings (stored spec + interventions with ``step <= k``, :mod:`coscope.campaign.
steering`) with the counterfactual overrides on top, and the measurements committed before
decision ``k`` (its ``n_known`` in the decisions table; for traces without it, every
measurement of an earlier step), the rest of the earlier decisions being pending — and asks
the agent for decision ``k``. It reports whether that choice agrees with the recorded one,
then goes on along the *recorded* path. Observations are re-scalarized from the full signals
in the trace; the model's error against ground truth (when the sample has one, under the
counterfactual scalarizer) is computed at every step.

Overrides win over interventions of the same kind (a ``--scalarizer`` replaces the
scalarizer for the whole path, also after a recorded scalarizer change or votes).
Under the approval gate the human's answers are followed as recorded: a decision measured
after a modification was pending at its modified location for the decisions made after the
answer, and a rejected (or skipped) one stays pending, as in the loop
(:mod:`coscope.campaign.approval`).

Replay with no override reproduces every recorded decision (``tests/replay``): that is the
test that the trace is complete. The trace is opened read-only and never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from coscope.agents.protocols import Agent, Ask, PriceFunction
from coscope.campaign.adopt import Steered, facts_of, restrict, steer
from coscope.campaign.approval import gate_state
from coscope.campaign.pricing import CampaignPrices
from coscope.campaign.steering import CampaignFacts, Settings, fold, validate
from coscope.errors import ConfigError
from coscope.report.step_progress import OnStep, no_progress
from coscope.spaces import Box
from coscope.storage import TraceStore
from coscope.studies.metrics import gaussian_nlpd, rmse
from coscope.types import Intervention, Location, Measurement, Proposal


@dataclass(frozen=True)
class Counterfactual:
    """Settings that replace the recorded ones along the whole path (None: as recorded)."""

    scalarizer: str | None = None
    scalarizer_params: dict[str, Any] | None = None
    policy: str | None = None
    policy_params: dict[str, Any] | None = None
    model: str | None = None

    def requests(self, settings: Settings) -> list[tuple[str, dict[str, Any]]]:
        """The overrides as intervention payloads against ``settings``."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self.scalarizer or self.scalarizer_params is not None:
            scal = {"name": self.scalarizer or settings.scalarizer["name"]}
            scal["params"] = dict(self.scalarizer_params or {})
            out.append(("scalarizer", scal))
        policy: dict[str, Any] = {}
        if self.policy:
            policy["name"] = self.policy
        if self.policy_params is not None:
            policy["params"] = dict(self.policy_params)
        if self.model:
            policy["model"] = self.model
        if policy:
            out.append(("policy", policy))
        return out

    def apply(self, settings: Settings, facts: CampaignFacts) -> Settings:
        """``settings`` with the overrides (validated: one-sentence InterventionError)."""
        for kind, payload in self.requests(settings):
            checked = validate(kind, payload, settings, facts)
            settings = fold(settings, [Intervention(kind, checked)])
        return settings

    def label(self) -> str:
        """Short description, e.g. ``scalarizer=coercive_field``."""
        parts = [f"{k}={v}" for k, v in self.__dict__.items() if v is not None]
        return ", ".join(parts) or "recorded settings"


@dataclass
class ReplayResult:
    """Per-step outcome of a replay.

    Attributes:
        label: What was replayed (:meth:`Counterfactual.label`).
        rows: One dict per recorded decision: ``step``, recorded and replayed ``row``/``col``,
            ``agree``, recorded and replayed expected cost (``recorded_cost``, ``cost``),
            ``policy`` (replayed rule), ``n_obs`` (observations known), and
            ``rmse``, ``nrmse``, ``nlpd`` of the model at that step (NaN when unknown).
        final: Metrics after every recorded measurement (``n_obs``, ``rmse``, ``nrmse``,
            ``nlpd``).
    """

    label: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)

    @property
    def first_divergence(self) -> int | None:
        """Step of the first decision the replay would have made differently, or None."""
        return next((r["step"] for r in self.rows if not r["agree"]), None)

    @property
    def agreement(self) -> float:
        """Fraction of decisions the replay agrees with."""
        return float(np.mean([r["agree"] for r in self.rows])) if self.rows else float("nan")

    def summary(self) -> str:
        """A few lines for the terminal."""
        div = self.first_divergence
        lines = [
            f"replay ({self.label}): {len(self.rows)} decisions, "
            f"{self.agreement:.0%} agree with the recorded path; "
            + ("no divergence" if div is None else f"first divergence at step {div}"),
        ]
        if np.isfinite(self.final.get("rmse", np.nan)):
            lines.append(
                f"final model: rmse {self.final['rmse']:.4g}, nrmse {self.final['nrmse']:.3f}, "
                f"nlpd {self.final['nlpd']:.3f} ({int(self.final['n_obs'])} observations)"
            )
        return "\n".join(lines)


class Replayer:
    """The agent along a recorded path under changing settings (replay, retrace, report).

    Loads the stored spec, sample, interventions, decisions and measurements once; builds
    the agent for the settings in force at a step and feeds it what was known then.
    """

    def __init__(self, store: TraceStore) -> None:
        from coscope.config import parse_spec
        from coscope.infra.compose import effective_campaign, sample_from_spec, space_from_spec

        self.spec = parse_spec(effective_campaign(store))
        if self.spec.objectives:
            raise ConfigError(
                "replay, retrace and the HTML report do not follow multi-objective campaigns "
                "yet; `coscope status` shows the Pareto front and MLflow the hypervolume of "
                "every step."
            )
        self.sample = sample_from_spec(self.spec.sample, self.spec.seed)
        self.space = space_from_spec(self.spec.sample, self.sample)
        self.interventions = store.interventions()
        self.decisions = store.decisions()
        self.measurements = store.measurements()
        self.known = {d.step: d.n_known for d in self.decisions}
        measured = {m.step for m in self.measurements}
        self.gate = gate_state(self.spec, self.decisions, measured, self.interventions)
        self.facts = facts_of(
            self.spec, store.sample_shape, {m.step: m.modality for m in self.measurements}
        )
        self.base = Settings.from_spec(self.spec)
        self.prices = CampaignPrices(self.spec, self.sample, self.space)
        self._steered: Steered | None = None
        self._key: tuple | None = None
        self._ingested: set[int] = set()

    @property
    def steered(self) -> Steered:
        """The agent, reward and truth of the settings last adopted (:meth:`adopt`)."""
        if self._steered is None:
            raise RuntimeError("Replayer.adopt() must be called before its agent is used.")
        return self._steered

    def settings_at(self, step: int, what: Counterfactual) -> Settings:
        settings = replace(fold(self.base, self.interventions, before=step), stopped=False)
        return what.apply(settings, self.facts)

    def price_function(self, settings: Settings, step: int) -> PriceFunction:
        """The agent's price function at decision ``step`` under ``settings``' costs: the
        live loop's (:class:`~coscope.campaign.pricing.CampaignPrices`), the stage starting
        at each instrument's latest recorded decision before ``step``."""
        origins: dict[str, Location] = {}
        for d in self.decisions:
            if d.step < step:
                origins[d.instrument] = d.location

        def price(
            instrument: str,
            modality: str,
            location: Location,
            params: Mapping[str, Any] | None = None,
            /,
        ) -> float:
            cost = settings.costs.get(instrument)
            origin = origins.get(instrument)
            return self.prices.quote(instrument, modality, location, params, origin, cost)

        return price

    def seen_before(self, step: int) -> list[Measurement]:
        n = self.known.get(step, -1)
        if n >= 0:
            return self.measurements[:n]
        return [m for m in self.measurements if m.step < step]

    def adopt(self, settings: Settings, with_truth: bool) -> Agent:
        if settings.model_key() != self._key:
            modality = settings.scalarizer["modality"]
            signals = {m.step: m.signal for m in self.measurements if m.modality == modality}
            self._steered = steer(self.spec, self.sample, settings, signals, with_truth=with_truth)
            if self.steered.abilities.single_target is None:
                raise ConfigError(
                    f"replay, retrace and the HTML report follow campaigns of a single-target "
                    f"agent; policy '{self.spec.policy.name}' learns modalities "
                    f"{list(self.steered.agent.modalities)} and cannot be replayed yet: read its "
                    "run folder's report instead."
                )
            self._key = settings.model_key()
            self._ingested = set()
        restrict(self.steered.abilities.steerable, settings)
        return self.steered.agent

    def ingest(self, measurements: list[Measurement], before: int | None = None) -> None:
        """Tell the agent the measurements it has not been told (re-scalarized by its target).

        An agent that remembers request params (a box agent: its points) is first told those
        of every recorded decision before step ``before`` (default: all), so it follows the
        recorded path even where it proposed otherwise.
        """
        remembers = self.steered.abilities.remembers_params
        if remembers is not None:
            for decision in self.decisions:
                if before is None or decision.step < before:
                    remembers.remember_params(decision.step, decision.params)
        new = [m for m in measurements if m.step not in self._ingested]
        self.steered.agent.ingest_measurements(new)
        self._ingested |= {m.step for m in new}

    def metrics(self) -> dict[str, float]:
        truth = self.steered.truth
        out = {"rmse": float("nan"), "nrmse": float("nan"), "nlpd": float("nan")}
        if truth is None or self.steered.agent.n_observations == 0:
            return out
        report = self.steered.agent.report()
        if report.mean is None or not np.all(np.isfinite(report.mean)):
            return out
        out["rmse"] = rmse(report.mean, truth)
        out["nrmse"] = out["rmse"] / (float(np.std(truth)) or 1.0)
        if np.all(np.isfinite(report.std)):
            out["nlpd"] = gaussian_nlpd(report.mean, report.std, truth)
        return out


def same_request(chosen: Proposal, recorded: Proposal) -> bool:
    """Whether a replayed proposal asks for what was recorded: the same location and request
    params (on a box the point, compared exactly: a replay re-optimises the acquisition)."""
    return chosen.location == recorded.location and chosen.params == recorded.params


def box_row(box: Box, recorded: Proposal, chosen: Proposal | None) -> dict[str, Any]:
    """``recorded_x``, ``x`` (lists, box units) and ``distance`` (Euclidean, in the unit
    cube; NaN without a replayed point) of one replayed box decision."""
    old = box.point_in(recorded.params, f"decision {recorded.step}")
    new = box.point_in(chosen.params, "the replayed proposal") if chosen else None
    distance = (
        float(np.linalg.norm(box.to_unit(new) - box.to_unit(old))) if new is not None else np.nan
    )
    return {
        "recorded_x": old.tolist(),
        "x": new.tolist() if new is not None else None,
        "distance": distance,
    }


def replay(
    store_path: str | Path,
    what: Counterfactual | None = None,
    *,
    metrics: bool = True,
    on_step: OnStep = no_progress,
) -> ReplayResult:
    """Replay the trace at ``store_path`` under ``what`` (see the module docstring);
    ``on_step("replay <label>", done, total)`` after each decision.

    Raises:
        StoreError: No trace there.
        InterventionError: An override is invalid for this campaign (one sentence).
    """
    what = what or Counterfactual()
    store = TraceStore.open(store_path, mode="r")
    try:
        rp = Replayer(store)
    finally:
        store.close()
    result = ReplayResult(what.label())
    job = f"replay {what.label()}"
    for done, decision in enumerate(rp.decisions, start=1):
        settings = rp.settings_at(decision.step, what)
        agent = rp.adopt(settings, with_truth=metrics)
        seen = rp.seen_before(decision.step)
        rp.ingest(seen, before=decision.step)
        seen_steps = {m.step for m in seen}
        pending = [
            rp.gate.as_measured(d, before=decision.step)  # as answered by then (approval)
            for d in rp.decisions
            if d.step < decision.step and d.step not in seen_steps
        ]
        ask = Ask(
            step=decision.step,
            instrument=decision.instrument,
            offered=tuple(agent.modalities),
            pending=tuple(pending),
            price=rp.price_function(settings, decision.step),
        )
        chosen = agent.propose(ask)
        row = {
            "step": decision.step,
            "recorded_row": decision.location.row,
            "recorded_col": decision.location.col,
            "row": chosen.location.row if chosen else -1,
            "col": chosen.location.col if chosen else -1,
            "agree": bool(chosen is not None and same_request(chosen, decision)),
            "recorded_cost": decision.expected_cost,
            "cost": chosen.expected_cost if chosen else float("nan"),
            "policy": chosen.policy if chosen else "",
            "n_obs": agent.n_observations,
        }
        if isinstance(rp.space, Box):  # the points, and how far the replayed one lies
            row.update(box_row(rp.space, decision, chosen))
        row.update(rp.metrics() if metrics else {})
        result.rows.append(row)
        on_step(job, done, len(rp.decisions))
    if rp.decisions:
        last = rp.settings_at(rp.decisions[-1].step + 1, what)
        rp.adopt(last, with_truth=metrics)
        rp.ingest(rp.measurements)
        result.final = {"n_obs": float(rp.steered.agent.n_observations)}
        result.final.update(rp.metrics() if metrics else {})
    return result
