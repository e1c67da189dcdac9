"""Steering: a campaign's effective settings = stored spec + interventions, in trace order.

One pure function, :func:`apply`, turns ``(settings, intervention)`` into new settings. Every
intervention kind is registered with a validator (one-sentence :class:`InterventionError`)
and an update. The loop, resume, replay, retrace and ``coscope intervene`` all fold the same
interventions through :func:`apply`, so a change is honoured by resume and replay by
construction.

Kinds and payloads (JSON; locations are ``[row, col]`` pixels):

============  ===========================================================================
policy        ``{name?, params?, model?, window?, latent_dim?, n_initial?, refit_every?,
              fit_iterations?}`` merged onto the current policy (``params`` reset when the
              name changes and none are given)
scalarizer    ``{name, params?, modality?}``; also switches the reward back from votes
costs         ``{instrument: cost > 0 | {modality: cost > 0}, ...}`` (charged and expected)
seed_points   ``{points: [[r, c], ...]}`` must-measure locations, proposed next, in order
exclude       ``{rect?: [r0, c0, r1, c1] (inclusive), pixels?: [[r, c], ...]}`` never proposed
include       same payload as ``exclude``; undoes it
pause         ``{}``; the loop proposes nothing until ``resume`` or ``stop``
resume        ``{}``
stop          ``{}``
vote          ``{step, score in [-1, 1]}`` or ``{step, label: good|bad}`` on a measured step;
              switches the reward to similarity to the vote target (:mod:`.voting`)
============  ===========================================================================

A recorded intervention whose payload holds ``"rejected"`` (the reason) changed nothing and
is skipped. Kind ``"spec"`` (a re-run with changed budget etc.) is already part of the stored
spec's overrides and is a no-op here. Kind ``"refusal"`` (recorded by coscope on resume)
names an earlier intervention that no longer applies; :func:`fold` skips that one, so every
reader folds the same settings (docs/faults-and-security.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from coscope.catalog import MULTI_OBJECTIVE_POLICIES, OBJECTIVE_BASELINES, chooses_modality
from coscope.config import (
    CampaignSpec,
    PolicySpec,
    ScalarizerSpec,
    _describe,
    check_box_policy,
    check_per_modality,
)
from coscope.errors import ConfigError
from coscope.registry import Registry
from coscope.types import Intervention

REJECTED = "rejected"
"""Payload key of a recorded intervention that was refused (its value is the reason)."""
REFUSAL = "refusal"
"""Kind of the record that refuses an earlier intervention which no longer applies (payload
``{refuses: its index in the trace's interventions, kind, rejected: why}``); every reader
skips the refused one, so a trace never holds an intervention that blocks its campaign."""
INTERNAL = ("spec", REFUSAL)
"""Kinds coscope records itself; a user cannot post them."""


class InterventionError(ConfigError):
    """An intervention is invalid for the campaign's current settings."""


@dataclass(frozen=True)
class Settings:
    """What the campaign does now (plain data, hashable parts only).

    Attributes:
        policy: Policy spec as a JSON dict (fields of :class:`~coscope.config.PolicySpec`).
        scalarizer: Scalarizer spec as a JSON dict (name, modality, params).
        costs: Cost per measurement of each instrument, name -> one number or
            modality -> number (the spec's forms).
        must_measure: Locations to propose next, in order (spec seed points first).
        excluded: Pixels never proposed.
        votes: ``(step, score)`` per vote, in order; a later vote on a step replaces it.
        reward: ``"scalarizer"`` or ``"votes"`` (similarity to the vote target).
        paused: The loop proposes nothing while True.
        stopped: A stop was asked for.
    """

    policy: dict[str, Any]
    scalarizer: dict[str, Any]
    costs: dict[str, float | dict[str, float]]
    must_measure: tuple[tuple[int, int], ...] = ()
    excluded: frozenset[tuple[int, int]] = frozenset()
    votes: tuple[tuple[int, float], ...] = ()
    reward: str = "scalarizer"
    paused: bool = False
    stopped: bool = False

    @classmethod
    def from_spec(cls, spec: CampaignSpec) -> Settings:
        """The settings a campaign starts with."""
        data = spec.to_json_dict()
        return cls(
            policy=data["policy"],
            scalarizer=data["scalarizer"],
            costs={i["name"]: i["cost"] for i in data["instruments"]},
            must_measure=tuple((int(r), int(c)) for r, c in spec.seed_points),
        )

    def model_key(self) -> tuple:
        """What the agent is built from: a change means rebuild it and re-scalarize."""
        return (
            repr(sorted(self.policy.items())),
            repr(sorted(self.scalarizer.items())),
            self.reward,
            self.votes if self.reward == "votes" else (),
        )


@dataclass(frozen=True)
class CampaignFacts:
    """What validators check against besides the settings.

    Attributes:
        grid_shape: ``(H, W)`` of the sample.
        modalities: Modality -> instruments that measure it.
        measured: Step -> modality of every measured step.
        allowed: ``H x W`` bool candidate mask of the campaign's space (``sample.mask``),
            or None when every pixel is a candidate.
        box: Whether the space is a continuous box (docs/spaces.md).
        axes: Modality -> its signal axis ``(L,)`` (empty: scalarizers are not probed).
        signals: Modality -> a few of its stored signals, each ``(L,)``, to probe a new
            scalarizer on (:mod:`coscope.campaign.probe`).
    """

    grid_shape: tuple[int, int]
    modalities: dict[str, tuple[str, ...]]
    measured: dict[int, str] = field(default_factory=dict)
    axes: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    allowed: np.ndarray | None = field(default=None, compare=False, repr=False)
    box: bool = False
    """The campaign explores a continuous box (no pixels to exclude or to seed)."""
    multi_objective: bool = False
    """The campaign lists ``objectives`` (policy qlognehvi or a baseline)."""


Validator = Callable[[dict[str, Any], Settings, CampaignFacts], dict[str, Any]]
Update = Callable[[Settings, dict[str, Any]], Settings]
KINDS: Registry[tuple[Validator, Update]] = Registry("intervention kind")


def kind(name: str) -> Callable[[Update], Update]:
    """Register ``validate_<name>`` (found by name in this module) with the decorated update."""

    def decorate(update: Update) -> Update:
        KINDS.register(name)((_VALIDATORS[name], update))
        return update

    return decorate


def intervention_kinds() -> tuple[str, ...]:
    """Kinds a user may post (``spec`` is internal)."""
    return tuple(k for k in KINDS.names() if k not in INTERNAL)


def validate(
    kind_name: str, payload: dict[str, Any], settings: Settings, facts: CampaignFacts
) -> dict[str, Any]:
    """The normalised payload, or :class:`InterventionError` (one sentence)."""
    if kind_name not in KINDS or kind_name in INTERNAL:
        raise InterventionError(
            f"unknown intervention kind {kind_name!r}: use one of "
            f"{', '.join(intervention_kinds())}."
        )
    if not isinstance(payload, dict):
        raise InterventionError(f"the payload of a {kind_name} intervention must be an object.")
    validator, _ = KINDS.get(kind_name)
    return validator(dict(payload), settings, facts)


def apply(settings: Settings, intervention: Intervention) -> Settings:
    """Settings after ``intervention`` (which must have been validated); rejected: unchanged."""
    if REJECTED in intervention.payload or intervention.kind not in KINDS:
        return settings
    _, update = KINDS.get(intervention.kind)
    return update(settings, intervention.payload)


def refused_indices(interventions: Sequence[Intervention]) -> set[int]:
    """Indices (in ``interventions``, the trace's full list) refused by a later refusal."""
    out = set()
    for item in interventions:
        if item.kind == REFUSAL:
            try:
                out.add(int(item.payload["refuses"]))
            except (KeyError, TypeError, ValueError):
                continue
    return out


def fold(
    settings: Settings, interventions: Iterable[Intervention], before: int | None = None
) -> Settings:
    """Apply the trace's ``interventions`` in order, skipping refused ones; only those with
    ``step <= before`` when given."""
    items = list(interventions)
    refused = refused_indices(items)
    for index, item in enumerate(items):
        if index not in refused and (before is None or item.step <= before):
            settings = apply(settings, item)
    return settings


def effective_spec(spec: CampaignSpec, settings: Settings) -> CampaignSpec:
    """``spec`` with the settings' policy, scalarizer, costs and must-measure points."""
    data = spec.to_json_dict()
    data["policy"] = settings.policy
    data["scalarizer"] = settings.scalarizer
    for inst in data["instruments"]:
        inst["cost"] = settings.costs.get(inst["name"], inst["cost"])
    data["seed_points"] = [list(p) for p in settings.must_measure]
    return CampaignSpec.model_validate(data)


# ------------------------------------------------------------------------------ validators
def _pixels(payload: dict[str, Any], key: str, facts: CampaignFacts, what: str) -> list:
    H, W = facts.grid_shape
    out = []
    for item in payload.get(key, []) or []:
        try:
            r, c = (int(v) for v in item)
        except (TypeError, ValueError):
            raise InterventionError(f"{what} must be [row, col] pairs; got {item!r}.") from None
        if not (0 <= r < H and 0 <= c < W):
            raise InterventionError(
                f"{what} ({r}, {c}) is off the {H} x {W} sample: rows 0..{H - 1}, "
                f"columns 0..{W - 1}."
            )
        out.append([r, c])
    return out


def _no_pixels_on_a_box(facts: CampaignFacts, what: str) -> None:
    if facts.box:
        raise InterventionError(
            f"{what} name grid pixels, but this campaign explores a continuous box: steer it "
            "with policy, scalarizer, costs, pause or stop."
        )


def _region(payload: dict[str, Any], s: Settings, facts: CampaignFacts) -> dict[str, Any]:
    _no_pixels_on_a_box(facts, "exclude and include")
    unknown = set(payload) - {"rect", "pixels"}
    if unknown or not payload:
        raise InterventionError(
            "give a region as rect [r0, c0, r1, c1] (inclusive) and/or pixels [[r, c], ...]."
        )
    out: dict[str, Any] = {"pixels": _pixels(payload, "pixels", facts, "pixel")}
    if "rect" in payload:
        rect = payload["rect"]
        if not isinstance(rect, list | tuple) or len(rect) != 4:
            raise InterventionError(f"rect must be [r0, c0, r1, c1]; got {rect!r}.")
        (r0, c0), (r1, c1) = _pixels({"p": [rect[:2], rect[2:]]}, "p", facts, "rect corner")
        if r1 < r0 or c1 < c0:
            raise InterventionError(f"rect {list(rect)} is empty: need r0 <= r1 and c0 <= c1.")
        out["rect"] = [r0, c0, r1, c1]
    return out


def region_pixels(payload: dict[str, Any]) -> set[tuple[int, int]]:
    """Pixels of a validated ``exclude``/``include`` payload (rect inclusive, plus pixels)."""
    pixels = {(int(r), int(c)) for r, c in payload.get("pixels", [])}
    if "rect" in payload:
        r0, c0, r1, c1 = (int(v) for v in payload["rect"])
        pixels |= {(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
    return pixels


def _validate_policy(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    merged = {**s.policy, **payload}
    if "name" in payload and payload["name"] != s.policy["name"] and "params" not in payload:
        merged["params"] = {}
    try:
        policy = PolicySpec.model_validate(merged)
    except ValidationError as exc:
        raise InterventionError(_sentence("policy", exc)) from None
    if facts.box:
        try:
            check_box_policy(policy)
        except ValueError as exc:
            raise InterventionError(f"{exc}.") from None
    checked = policy.model_dump(mode="json")
    if _chooses_modality(checked["name"]) != _chooses_modality(s.policy["name"]):
        raise InterventionError(
            f"policy {checked['name']!r} and the running {s.policy['name']!r} are of different "
            "kinds (one target vs choosing among modalities or theory); switch within a kind "
            "or start a new campaign."
        )
    _check_objective_kind(checked["name"], facts)
    return checked


def _check_objective_kind(policy: str, facts: CampaignFacts) -> None:
    """InterventionError unless ``policy`` suits the campaign's objectives (several or one)."""
    if facts.multi_objective and policy not in (*MULTI_OBJECTIVE_POLICIES, *OBJECTIVE_BASELINES):
        allowed = ", ".join((*MULTI_OBJECTIVE_POLICIES, *OBJECTIVE_BASELINES))
        raise InterventionError(
            f"policy {policy!r} optimises one target but this campaign lists objectives; "
            f"use one of {allowed}."
        )
    if not facts.multi_objective and policy in MULTI_OBJECTIVE_POLICIES:
        raise InterventionError(
            f"policy {policy!r} needs objectives, which this campaign does not list; "
            "start a new campaign with objectives: to use it."
        )


def _chooses_modality(policy: str) -> bool:
    """Whether ``policy`` builds a modality-choosing agent (co-orchestration, co-navigation)."""
    return chooses_modality(policy)


def _validate_scalarizer(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    merged = {"modality": s.scalarizer["modality"], "params": {}, **payload}
    try:
        spec = ScalarizerSpec.model_validate(merged)
    except ValidationError as exc:
        raise InterventionError(_sentence("scalarizer", exc)) from None
    if spec.modality not in facts.modalities:
        raise InterventionError(
            f"scalarizer modality {spec.modality!r} is measured by no instrument; use one of "
            f"{', '.join(sorted(facts.modalities))}."
        )
    checked = spec.model_dump(mode="json")
    from coscope.campaign.probe import probe_scalarizer
    from coscope.scalarizers import validate_scalarizer

    try:
        validate_scalarizer(spec.name, spec.params)  # a user's function: imported here
        if spec.modality in facts.axes:  # tried on the modality's real axis and signals
            probe_scalarizer(
                checked, facts.axes[spec.modality], facts.signals.get(spec.modality, ())
            )
    except ConfigError as exc:
        raise InterventionError(str(exc)) from None
    return checked


def _validate_costs(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    if not payload:
        raise InterventionError('give at least one instrument: cost pair, e.g. {"afm": 2.0}.')
    out: dict[str, Any] = {}
    for name, cost in payload.items():
        if name not in s.costs:
            raise InterventionError(
                f"instrument {name!r} is not in this campaign; use one of {', '.join(s.costs)}."
            )
        own = [m for m, names in facts.modalities.items() if name in names]
        try:
            value = (
                {str(k): float(v) for k, v in cost.items()}
                if isinstance(cost, dict)
                else float(cost)
            )
            check_per_modality(value, own, f"the cost of {name!r}", minimum=None)
        except (TypeError, ValueError) as exc:
            checked = isinstance(exc, ValueError) and "cost of" in str(exc)
            detail = str(exc) if checked else f"the cost of {name!r} is {cost!r}"
            raise InterventionError(
                f"{detail}; give one positive number or one per modality of {own}."
            ) from None
        out[name] = value
    return out


def _validate_seed_points(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    _no_pixels_on_a_box(facts, "seed points")
    points = _pixels(payload, "points", facts, "seed point")
    if set(payload) - {"points"} or not points:
        raise InterventionError("give seed points as points [[r, c], ...] (at least one).")
    for r, c in points:
        if facts.allowed is not None and not facts.allowed[r, c]:
            raise InterventionError(
                f"seed point ({r}, {c}) is not a candidate of the campaign's space: it lies "
                "outside the spec's sample.mask; choose a masked-in pixel."
            )
    return {"points": points}


def _validate_pause(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    if s.paused:
        raise InterventionError("the campaign is already paused; send resume or stop.")
    return {}


def _validate_resume(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    if not s.paused:
        raise InterventionError("the campaign is not paused, so there is nothing to resume.")
    return {}


def _validate_stop(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    return {}


def _validate_vote(payload: dict, s: Settings, facts: CampaignFacts) -> dict:
    labels = {"good": 1.0, "bad": -1.0}
    raw = payload.get("step")
    whole = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if isinstance(raw, bool) or not whole or raw is None:
        raise InterventionError("a vote needs the measured step it rates: {step: k, ...}.")
    step = int(raw)
    if "label" in payload:
        if payload["label"] not in labels:
            raise InterventionError(f"vote label must be good or bad; got {payload['label']!r}.")
        score = labels[payload["label"]]
    else:
        try:
            score = float(payload["score"])
        except (KeyError, TypeError, ValueError):
            raise InterventionError("a vote needs label good|bad or a score in [-1, 1].") from None
    if not -1.0 <= score <= 1.0:
        raise InterventionError(f"a vote score must lie in [-1, 1]; got {score}.")
    modality = s.scalarizer["modality"]
    if facts.measured.get(step) != modality:
        raise InterventionError(
            f"step {step} has no measured {modality} signal yet; vote on a measured step."
        )
    return {"step": step, "score": score}


def _sentence(what: str, exc: ValidationError) -> str:
    text = _describe(exc).removeprefix("invalid campaign spec: ")
    return f"invalid {what} intervention: {text}"


_VALIDATORS: dict[str, Validator] = {
    "policy": _validate_policy,
    "scalarizer": _validate_scalarizer,
    "costs": _validate_costs,
    "seed_points": _validate_seed_points,
    "exclude": _region,
    "include": _region,
    "pause": _validate_pause,
    "resume": _validate_resume,
    "stop": _validate_stop,
    "vote": _validate_vote,
    "spec": lambda payload, s, facts: payload,
    REFUSAL: lambda payload, s, facts: payload,
}


# ------------------------------------------------------------------------------ updates
@kind("policy")
def _policy(s: Settings, p: dict) -> Settings:
    return replace(s, policy=dict(p))


@kind("scalarizer")
def _scalarizer(s: Settings, p: dict) -> Settings:
    return replace(s, scalarizer=dict(p), reward="scalarizer")


@kind("costs")
def _costs(s: Settings, p: dict) -> Settings:
    return replace(s, costs={**s.costs, **p})


@kind("seed_points")
def _seed_points(s: Settings, p: dict) -> Settings:
    new = tuple((int(r), int(c)) for r, c in p["points"])
    added = tuple(x for x in new if x not in s.must_measure)
    return replace(s, must_measure=s.must_measure + added)


@kind("exclude")
def _exclude(s: Settings, p: dict) -> Settings:
    return replace(s, excluded=s.excluded | region_pixels(p))


@kind("include")
def _include(s: Settings, p: dict) -> Settings:
    return replace(s, excluded=s.excluded - region_pixels(p))


@kind("pause")
def _pause(s: Settings, p: dict) -> Settings:
    return replace(s, paused=True)


@kind("resume")
def _resume(s: Settings, p: dict) -> Settings:
    return replace(s, paused=False)


@kind("stop")
def _stop(s: Settings, p: dict) -> Settings:
    return replace(s, stopped=True, paused=False)


@kind("vote")
def _vote(s: Settings, p: dict) -> Settings:
    votes = tuple(v for v in s.votes if v[0] != int(p["step"])) + ((int(p["step"]), p["score"]),)
    return replace(s, votes=votes, reward="votes")


@kind("spec")
def _spec(s: Settings, p: dict) -> Settings:
    return s


@kind(REFUSAL)
def _refusal(s: Settings, p: dict) -> Settings:
    return s
