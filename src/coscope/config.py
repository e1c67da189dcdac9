"""The campaign spec: what a user writes (YAML), validated with one-sentence errors.

A spec names the sample, the instruments that observe it, the scalarizer that turns a
signal into the target, the policy, the budget, the seed and where results go. Everything
has a default so that ``CampaignSpec(name="x")`` is a runnable demo campaign.

Example (``examples/demo.yaml``)::

    name: demo
    seed: 0
    sample: {kind: synthetic_film, params: {size: 50}}
    instruments:
      - {name: afm, modalities: [beps_loop], latency_s: 0.5, cost: 1.0, noise: 0.02}
    scalarizer: {name: loop_area, modality: beps_loop}
    policy: {name: ei, n_initial: 5}
    budget: {max_measurements: 60}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from coscope import catalog
from coscope.catalog import (
    MULTI_OBJECTIVE_POLICIES,
    OBJECTIVE_BASELINES,
    SAMPLE_KINDS,
    check_instrument_kind,
    check_policy,
    policy_names,
)
from coscope.errors import ConfigError
from coscope.laws import check_mean, is_user_law
from coscope.plugins import reference_form_error
from coscope.scalarizers import scalarizer_names, validate_scalarizer


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (``bool`` itself, or a union or container of it)."""
    from typing import get_args

    return annotation is bool or any(_takes_bool(a) for a in get_args(annotation))


def _one_of(value: str, known: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of the registered names, else a ValueError listing them."""
    if value not in known:
        raise ValueError(f"unknown {what}; use one of {', '.join(sorted(known))}")
    return value


def check_per_modality(
    value: float | Mapping[str, float],
    modalities: Sequence[str],
    what: str,
    *,
    minimum: float | None,
) -> None:
    """ValueError (one sentence) unless ``value`` is a valid number or per-modality mapping.

    Args:
        value: One number, or modality -> number.
        modalities: The instrument's modalities; a mapping must give each exactly once.
        what: Field name for the message.
        minimum: Smallest allowed value (inclusive); ``None`` means strictly positive.
    """
    values = value if isinstance(value, Mapping) else {"": value}
    if isinstance(value, Mapping):
        missing = sorted(set(modalities) - set(value))
        extra = sorted(set(value) - set(modalities))
        if missing or extra:
            raise ValueError(
                f"{what} per modality must name exactly the instrument's modalities "
                f"{list(modalities)} (missing {missing}, unknown {extra})"
            )
    for key, v in values.items():
        bad = not math.isfinite(v) or (v <= 0 if minimum is None else v < minimum)
        if bad:
            where = f" for {key!r}" if key else ""
            limit = "> 0" if minimum is None else f">= {minimum:g}"
            raise ValueError(f"{what}{where} must be a finite number {limit}, got {v!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``true``/``false`` is not a number (pydantic would read ``seed: true`` as 1)."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and not _takes_bool(field.annotation):
                    raise ValueError(f"'{name}' is {str(data[name]).lower()}; give a number")
        return data


class MaskSpec(_Strict):
    """Which pixels of a grid sample are candidates: exactly one of the four forms.

    ``file``: a ``.npy``/``.png`` image or a mask dataset (``coscope dataset import --format
    mask``), nonzero = candidate; ``pixels``: ``(row, col)`` pairs; ``rect``: ``[r0, c0, r1,
    c1]``, ends exclusive; ``interior``: a patch width ``k``, the pixels whose ``k x k``
    patch fits the image. See ``docs/spaces.md``.
    """

    file: str | None = None
    pixels: list[tuple[int, int]] | None = Field(None, min_length=1)
    rect: tuple[int, int, int, int] | None = None
    interior: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> MaskSpec:
        given = sorted(self.model_dump(exclude_none=True))
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of file, pixels, rect, interior (got {given or 'none'})"
            )
        return self


class DimensionSpec(_Strict):
    """One dimension of a continuous box: its name, bounds ``lo < hi`` and units."""

    name: str = Field(..., min_length=1)
    lo: float
    hi: float
    units: str = ""

    @model_validator(mode="after")
    def _bounds(self) -> DimensionSpec:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise ValueError(f"dimension '{self.name}' needs finite bounds lo and hi")
        if self.lo >= self.hi:
            raise ValueError(
                f"dimension '{self.name}' has lo {self.lo:g} >= hi {self.hi:g}; give lo < hi"
            )
        return self


class BoxSpec(_Strict):
    """A continuous box of named dimensions (``docs/spaces.md``), and the points to measure
    first, each ``{name: value}`` inside the bounds."""

    dimensions: list[DimensionSpec] = Field(..., min_length=1, max_length=32)
    seed_points: list[dict[str, float]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> BoxSpec:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names {names} repeat a name; name each dimension once")
        bounds = {d.name: (d.lo, d.hi) for d in self.dimensions}
        for i, point in enumerate(self.seed_points):
            unknown = sorted(set(point) - set(names))
            missing = [n for n in names if n not in point]
            if unknown or missing:
                raise ValueError(
                    f"seed point {i} names unknown dimension(s) {unknown} and lacks {missing}; "
                    f"give exactly {names}"
                )
            for name, value in point.items():
                lo, hi = bounds[name]
                if not (math.isfinite(value) and lo <= value <= hi):
                    raise ValueError(
                        f"seed point {i} has {name} = {value:g}, outside [{lo:g}, {hi:g}]; "
                        "give a point inside the box"
                    )
        return self


class SampleSpec(_Strict):
    """Which sample to explore: a registered sample kind, its parameters, a candidate mask
    (grids) or a continuous box (kind ``box``)."""

    kind: str = "synthetic_film"
    params: dict[str, Any] = Field(default_factory=lambda: {"size": 50})
    mask: MaskSpec | None = Field(
        None, description="candidate pixels of a grid sample (default: every pixel)"
    )
    box: BoxSpec | None = Field(
        None, description="dimensions and bounds of a continuous box (sample kind box)"
    )

    @model_serializer(mode="wrap")
    def _drop_unset_mask(self, handler: Any) -> dict[str, Any]:
        data = handler(self)  # without a mask, the stored spec is the one of before spaces
        if isinstance(data, dict):
            for key in ("mask", "box"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return SAMPLE_KINDS.check(value)

    @model_validator(mode="after")
    def _box_with_its_kind(self) -> SampleSpec:
        if (self.kind == "box") != (self.box is not None):
            raise ValueError(
                "sample kind 'box' and sample.box go together: give both (a continuous box) "
                "or neither (a grid or table sample)"
            )
        if self.box is not None and self.mask is not None:
            raise ValueError("sample.mask applies to grid samples, not to a box; drop it")
        return self


class FaultsSpec(_Strict):
    """Injected faults of an instrument, for testing (:mod:`coscope.instruments.faults`)."""

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="transient errors per attempt")
    hang_rate: float = Field(0.0, ge=0.0, le=1.0, description="attempts that hang hang_s")
    hang_s: float = Field(1.0, ge=0.0, le=3600.0, description="length of a hang, seconds")
    nan_rate: float = Field(0.0, ge=0.0, le=1.0, description="signals with a NaN")
    wrong_length_rate: float = Field(0.0, ge=0.0, le=1.0, description="signals one short")
    down_from_step: int | None = Field(None, ge=0, description="disconnected from this step")
    bad_region: tuple[int, int, int, int] | None = Field(
        None,
        description="[r0, c0, r1, c1], ends exclusive: every measurement there is unusable "
        "(bad_measurement), a region that always fails",
    )
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _rates(self) -> FaultsSpec:
        total = self.error_rate + self.hang_rate + self.nan_rate + self.wrong_length_rate
        if total > 1.0:
            raise ValueError(f"fault rates sum to {total:g}; they must sum to at most 1")
        r = self.bad_region
        if r is not None and (min(r) < 0 or r[2] <= r[0] or r[3] <= r[1]):
            raise ValueError(
                f"faults.bad_region {list(r)} must be [r0, c0, r1, c1] with 0 <= r0 < r1 and "
                "0 <= c0 < c1"
            )
        return self


class InstrumentSpec(_Strict):
    """One instrument: its modalities, latency (s), cost per measurement, noise, and how its
    failures are handled (timeout, retries, injected faults)."""

    name: str = Field("afm", description="unique, no spaces")
    kind: str = Field(
        "simulated",
        description="a built-in kind (simulated, theory_lgd, theory_lattice, epics), a plug-in's "
        "'package.module:factory', or an installed plug-in's entry point "
        "(docs/connect-your-instrument.md)",
    )
    modalities: list[str] = Field(default_factory=lambda: ["beps_loop"], min_length=1)
    latency_s: float | dict[str, float] = Field(
        0.5, description="seconds per measurement: one value or one per modality (>= 0)"
    )
    cost: float | dict[str, float] = Field(
        1.0, description="cost per measurement: one value or one per modality (> 0)"
    )
    noise: float = Field(0.02, ge=0.0)
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword options of the kind (e.g. a simulator's theta)"
    )
    travel_cost_per_um: float = Field(
        0.0, ge=0.0, description="extra cost per micrometre of stage travel from its last spot"
    )
    timeout_s: float | None = Field(
        None, gt=0.0, le=86_400.0, description="wall-clock limit of one measurement attempt"
    )
    retries: int = Field(0, ge=0, le=10, description="retries of transient/bad measurements")
    backoff_s: float = Field(0.5, ge=0.0, le=600.0, description="first retry pause, doubled")
    faults: FaultsSpec | None = Field(None, description="injected faults (testing)")

    @model_validator(mode="after")
    def _per_modality(self) -> InstrumentSpec:
        check_per_modality(self.latency_s, self.modalities, "latency_s", minimum=0.0)
        check_per_modality(self.cost, self.modalities, "cost", minimum=None)
        return self

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError("an instrument name must be non-empty, without spaces")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return check_instrument_kind(value)


class ScalarizerSpec(_Strict):
    """Which scalar of which modality's signal the campaign optimises and maps.

    ``params`` are the scalarizer's keyword parameters (e.g. ``{lo: 500, hi: 560}`` for
    ``window_integral``), checked against its signature.
    """

    name: str = "loop_area"
    modality: str = "beps_loop"
    params: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if ":" in value:  # a user's "package.module:function": imported only when run
            fix = "write f(signal, axis) -> float there, or use a registered one"
            problem = reference_form_error(value, "user scalarizer", fix)
            if problem:
                raise ValueError(problem)
            return value
        return _one_of(value, scalarizer_names(), "scalarizer")

    @model_validator(mode="after")
    def _known_params(self) -> ScalarizerSpec:
        if ":" in self.name:  # checked when the campaign runs (coscope.campaign.probe)
            return self
        try:
            validate_scalarizer(self.name, self.params)
        except ConfigError as exc:
            raise ValueError(str(exc).rstrip(".")) from None
        return self


class MeanSpec(_Strict):
    """The physical law of a structured GP's mean and its priors (docs/structured-gp.md)."""

    law: str = Field(
        description="a law of coscope.laws (linear, gaussian_peak, domain_wall) or a user's "
        "'package.module:function'"
    )
    priors: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="prior overrides by parameter, e.g. {width: {dist: gamma, concentration: "
        "2, rate: 10}}; families normal, lognormal (loc, scale), gamma (concentration, rate), "
        "uniform (low, high)",
    )

    @model_validator(mode="after")
    def _known_law(self) -> MeanSpec:
        _check_law(self.law, self.priors)
        return self


def _check_law(law: str, priors: dict[str, dict[str, Any]]) -> None:
    """ValueError (one sentence) unless ``law`` with prior overrides ``priors`` is usable."""
    if is_user_law(law):
        fix = "write the law f(X, **params) in your package"
        problem = reference_form_error(law, "user law", fix)
        if problem:
            raise ValueError(problem)
    check_mean(law, priors)


class HypothesisSpec(_Strict):
    """One competing hypothesis of policy ``hypotheses`` (docs/hypotheses.md)."""

    law: str = Field(
        description="a law of coscope.laws (linear, gaussian_peak, domain_wall), a user's "
        "'package.module:function', or none (a plain GP: no physics)"
    )
    priors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="prior overrides by parameter, as in policy.mean"
    )
    name: str | None = Field(
        None, description="its name in metrics and the verdict (default: the law's)"
    )

    @model_validator(mode="after")
    def _known_law(self) -> HypothesisSpec:
        if self.law == "none":
            if self.priors:
                raise ValueError("the 'none' hypothesis (a plain GP) has no law to put priors on")
        else:
            _check_law(self.law, self.priors)
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(
                f"hypothesis name {self.name!r} may hold only letters, digits, '_', '.', '-'"
            )
        return self

    @property
    def label(self) -> str:
        """Its name: ``name``, else the law (a user law's function name)."""
        return self.name or self.law.rsplit(":", 1)[-1]


class ObjectiveSpec(ScalarizerSpec):
    """One objective of a multi-objective campaign: a scalarizer, maximised or minimised.

    ``ref_point`` is the objective's reference value in its own units (the worst value that
    still counts toward the hypervolume); left out, it is the observed minimum minus 10 % of
    the observed range (for ``goal: min``, the observed maximum plus 10 %), see
    ``docs/multi-objective.md``.
    """

    goal: Literal["max", "min"] = "max"
    ref_point: float | None = None

    @property
    def sign(self) -> float:
        """``+1`` for ``goal: max``, ``-1`` for ``goal: min`` (the maximisation convention)."""
        return 1.0 if self.goal == "max" else -1.0


class ConstraintSpec(ScalarizerSpec):
    """An outcome constraint: a scalarizer of the target modality that must stay ``op value``
    (``loop_height >= 0.5``). The agent models it with its own GP on the same measurements
    and weights its acquisition by the probability that it holds (docs/constraints.md)."""

    op: Literal[">=", "<="] = Field(description="'>=' (at least value) or '<=' (at most value)")
    value: float = Field(allow_inf_nan=False, description="the bound, in the scalarizer's units")

    def holds(self, x: float) -> bool:
        """Whether the scalar ``x`` satisfies the constraint."""
        return bool(x >= self.value) if self.op == ">=" else bool(x <= self.value)


class StoppingSpec(_Strict):
    """Ends a campaign before its budget (docs/constraints.md): after ``patience`` policy
    decisions in a row whose value under ``rule`` is below ``threshold`` (``ei_below``: the
    chosen point's expected improvement, target units, policy ei; ``std_below``: its
    posterior std, target units), once at least ``min_measurements`` decisions were made."""

    rule: Literal["ei_below", "std_below"]
    threshold: float = Field(gt=0.0, allow_inf_nan=False, description="target units, > 0")
    patience: int = Field(3, ge=1, le=1000, description="decisions in a row below threshold")
    min_measurements: int = Field(0, ge=0, description="decisions before the rule may stop it")


class PolicySpec(_Strict):
    """The decision rule and how the surrogate behind it is refreshed."""

    name: str = "ei"
    params: dict[str, float] = Field(default_factory=dict)
    model: Literal["gp", "dkl", "multitask", "structured"] = Field(
        "gp",
        description="gp: exact GP on coordinates; dkl: deep kernel learning on patches; "
        "multitask: one GP over every modality (policies gain_per_cost, max_uncertainty); "
        "structured: exact GP whose mean is the physical law of policy.mean",
    )
    mean: MeanSpec | None = Field(
        None, description="structured: the law of the GP's mean and its priors"
    )
    models: list[HypothesisSpec] | None = Field(
        None,
        description="hypotheses: the competing models, two or more (a law each, or none "
        "for a plain GP)",
    )
    window: int = Field(
        9, ge=1, le=63, description="dkl: structure patch side, pixels (odd or even, e.g. 16)"
    )
    patch_scaling: Literal["standard", "quantile"] = Field(
        "standard",
        description="dkl: scaling of the structure image before patches are cut: standard "
        "(z-score) or quantile (ranks; robust to spikes and heavy tails)",
    )
    latent_dim: int = Field(2, ge=1, le=8, description="dkl: latent dimensions of the MLP")
    extractor: Literal["mlp", "cnn"] = Field(
        "mlp", description="dkl: feature extractor, an MLP or a small CNN on the patch"
    )
    hidden: list[int] = Field(
        default_factory=lambda: [64, 64],
        min_length=1,
        max_length=6,
        description="dkl: hidden layer widths of the MLP (the CNN's dense head uses the last)",
    )
    activation: Literal["relu", "tanh"] = Field("relu", description="dkl: hidden activation")
    restarts: int = Field(
        1, ge=1, le=16, description="dkl: cold fits with different seeds; the best is kept"
    )
    select: Literal["mll", "loo"] = Field(
        "mll",
        description="dkl: how restarts are compared: marginal likelihood or leave-one-out",
    )
    n_initial: int = Field(5, ge=1)
    refit_every: int = Field(1, ge=1)
    fit_iterations: int = Field(100, ge=1, le=10_000)
    warm_start: bool = Field(
        False, description="dkl: warm-start fits from a cold anchor fit every cold_every points"
    )
    cold_every: int = Field(10, ge=1, le=10_000, description="dkl: anchor period (observations)")
    warm_iterations: int = Field(20, ge=1, le=10_000, description="dkl: Adam steps of a warm fit")

    @field_validator("name")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        return _one_of(value, policy_names(), "policy")

    @model_validator(mode="after")
    def _known_params(self) -> PolicySpec:
        if min(self.hidden) < 1:
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.warm_start and self.model != "dkl":
            raise ValueError("warm_start applies to model: dkl only; remove it or set model: dkl")
        if (self.model == "structured") != (self.mean is not None):
            raise ValueError(
                "model: structured needs policy.mean (e.g. mean: {law: gaussian_peak}) and "
                "policy.mean needs model: structured"
            )
        self._check_hypotheses()
        check_policy(self.name, self.model, self.params)
        return self

    def _check_hypotheses(self) -> None:
        if (self.name == "hypotheses") != (self.models is not None):
            raise ValueError(
                "policy hypotheses needs policy.models (e.g. models: [{law: domain_wall}, "
                "{law: gaussian_peak}]) and policy.models needs name: hypotheses"
            )
        if self.models is None:
            return
        if len(self.models) < 2:
            raise ValueError(
                f"policy hypotheses weighs competing models: list two or more in "
                f"policy.models, got {len(self.models)}"
            )
        labels = [m.label for m in self.models]
        repeated = sorted({n for n in labels if labels.count(n) > 1})
        if repeated:
            raise ValueError(
                f"policy.models names {repeated} more than once; give each a distinct name"
            )


class BudgetSpec(_Strict):
    """When to stop: total cost and/or number of measurements (whichever comes first)."""

    max_cost: float | None = Field(None, gt=0.0)
    max_measurements: int | None = Field(60, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.max_cost is None and self.max_measurements is None:
            raise ValueError("set max_cost, max_measurements or both, or the campaign never ends")
        return self


class FailurePolicySpec(_Strict):
    """What a measurement that still fails after its instrument's retries does to the campaign.

    ``max_rate`` 0 (the default) stops the campaign at the first failure (the decision stays
    pending for ``coscope resume``). Above 0 a ``transient`` or ``bad_measurement`` failure
    retires its decision (recorded, never re-issued) and the campaign goes on until at least
    ``min_failures`` failed and more than ``max_rate`` of the attempts failed; an
    ``instrument_down`` stops that instrument only. Whatever the rate, a decision whose
    measurement failed ``retire_after`` times is retired, so a location that always fails
    cannot hold a campaign up (docs/faults-and-security.md).
    """

    max_rate: float = Field(0.0, ge=0.0, lt=1.0, description="tolerated fraction of failures")
    min_failures: int = Field(3, ge=1, description="failures before the rate can stop it")
    retire_after: int = Field(3, ge=1, description="failures of one decision that retire it")


class ApprovalSpec(_Strict):
    """The approval gate (docs/approval.md): every proposal waits for a person's answer.

    Attributes:
        required: Proposals wait for ``coscope approve``/``reject`` (or the Prefect form)
            before they are measured.
        instruments: Instruments whose proposals wait (empty: every instrument).
        timeout_s: Seconds a proposal waits before ``on_timeout`` applies (None: forever).
        on_timeout: ``wait`` (keep waiting), ``skip`` (drop the proposal, recorded; the agent
            decides again) or ``stop`` (the campaign stops cleanly; resume waits again).
    """

    required: bool = False
    instruments: list[str] = Field(default_factory=list, description="empty: every instrument")
    timeout_s: float | None = Field(None, gt=0.0, description="None: wait forever")
    on_timeout: Literal["wait", "skip", "stop"] = "wait"

    @model_validator(mode="after")
    def _timeout_with_policy(self) -> ApprovalSpec:
        if self.on_timeout != "wait" and self.timeout_s is None:
            raise ValueError(
                f"approval.on_timeout {self.on_timeout!r} needs approval.timeout_s (seconds)"
            )
        return self


class CampaignSpec(_Strict):
    """A whole campaign. Paths left empty default to ``<run_dir>/…``."""

    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    sample: SampleSpec = Field(default_factory=SampleSpec)
    instruments: list[InstrumentSpec] = Field(
        default_factory=lambda: [InstrumentSpec()], min_length=1
    )
    scalarizer: ScalarizerSpec = Field(default_factory=ScalarizerSpec)
    auxiliary: list[ScalarizerSpec] = Field(
        default_factory=list, description="scalarizers of the other modalities (multitask)"
    )
    objectives: list[ObjectiveSpec] = Field(
        default_factory=list,
        description="several scalarizers optimised at once (policy qlognehvi, or a baseline)",
    )
    policy: PolicySpec = Field(default_factory=PolicySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    failures: FailurePolicySpec = Field(default_factory=FailurePolicySpec)
    constraints: list[ConstraintSpec] = Field(
        default_factory=list,
        description="outcome constraints on other scalarizers of the target modality (policy ei)",
    )
    feasibility: Literal["ignore", "learn"] = Field(
        "ignore",
        description="learn: decisions whose measurement failed (retired) are infeasible; a "
        "classifier weights the acquisition (policy ei, failures.max_rate > 0)",
    )
    min_p_feasible: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="candidates less likely feasible than this are proposed only when no "
        "other is left (0: constrained EI alone decides)",
    )
    stopping: StoppingSpec | None = Field(
        None, description="stop before the budget when the policy expects little more"
    )
    seed_points: list[tuple[int, int]] = Field(default_factory=list)
    time_scale: float = Field(1.0, ge=0.0, description="multiplies every instrument latency")
    run_dir: str | None = None
    store: str | None = None
    tracking_uri: str | None = None
    dask_address: str | None = None
    dask_workers: int = Field(2, ge=1, le=64)
    checkpoint_every: int = Field(10, ge=1)
    metrics_every: int | None = Field(
        None,
        ge=1,
        description="compute the map error against ground truth (a surrogate fit) after "
        "every this many measurements; default 1, or 10 above 10,000 candidates",
    )
    queue_depth: int = Field(
        0,
        ge=0,
        le=4,
        description="requests decided ahead per instrument, queued behind the one it measures "
        "(0: its next request is decided when its current one is recorded)",
    )
    approval: ApprovalSpec = Field(
        default_factory=ApprovalSpec, description="proposals wait for a person (approval gate)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        names = [inst.name for inst in self.instruments]
        if len(set(names)) != len(names):
            raise ValueError(f"instrument names must be unique, got {names}")
        offered = {m for inst in self.instruments for m in inst.modalities}
        if self.scalarizer.modality not in offered:
            raise ValueError(
                f"scalarizer.modality '{self.scalarizer.modality}' is measured by no instrument; "
                f"use one of {', '.join(sorted(offered))}"
            )
        _check_auxiliary(self.scalarizer, self.auxiliary, offered, self.policy)
        if self.sample.box is not None:
            _check_box_campaign(self)
        unknown = sorted(set(self.approval.instruments) - set(names))
        if unknown:
            raise ValueError(
                f"approval.instruments names {unknown}, not instruments of this campaign; "
                f"use some of {names}"
            )
        _check_objectives(self.objectives, offered, self.policy)
        _check_constraints(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _scalarizer_from_objectives(cls, data: Any) -> Any:
        """Without a ``scalarizer``, the first objective is the one that reward, best so
        far and the maps follow."""
        if not isinstance(data, dict) or "scalarizer" in data:
            return data
        objectives = data.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            return data
        first = objectives[0]
        if not isinstance(first, dict):
            return data
        keys = ("name", "modality", "params")
        return {**data, "scalarizer": {k: first[k] for k in keys if k in first}}

    # --- derived paths -------------------------------------------------------------------
    def resolved_run_dir(self) -> Path:
        """The run folder: ``run_dir`` or ``./runs/<name>``."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name

    def resolved_store(self) -> Path:
        """The experimental trace: ``store`` or ``<run_dir>/trace.zarr``."""
        return Path(self.store) if self.store else self.resolved_run_dir() / "trace.zarr"

    def resolved_tracking_uri(self) -> str:
        """MLflow tracking URI: ``tracking_uri`` or sqlite in the run folder."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.resolved_run_dir() / 'mlflow.db').resolve()}"

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the spec (stored in the trace and logged to MLflow)."""
        return json.loads(self.model_dump_json())


def _check_auxiliary(
    target: ScalarizerSpec,
    auxiliary: Sequence[ScalarizerSpec],
    offered: set[str],
    policy: PolicySpec,
) -> None:
    """ValueError unless the auxiliary scalarizers (multitask) suit the spec.

    Each names a modality some instrument measures, other than the target's and distinct;
    ``model: multitask`` needs at least one.
    """
    modalities = [a.modality for a in auxiliary]
    for m in modalities:
        if m not in offered:
            raise ValueError(
                f"auxiliary modality '{m}' is measured by no instrument; use one of "
                f"{', '.join(sorted(offered))}"
            )
    if target.modality in modalities or len(set(modalities)) != len(modalities):
        raise ValueError(
            "auxiliary scalarizers need distinct modalities other than the target "
            f"'{target.modality}'"
        )
    if policy.model == "multitask" and not auxiliary:
        raise ValueError(
            "model: multitask needs at least one auxiliary scalarizer "
            "(auxiliary: [{name, modality}]) for a second modality"
        )


def check_box_policy(policy: PolicySpec) -> None:
    """ValueError (one clause) unless ``policy`` runs on a continuous box: an acquisition
    policy or ``random``, on a GP."""
    family = catalog.POLICIES.get(policy.name).family
    if family != "acquisition" and policy.name != "random":
        raise ValueError(
            f"policy '{policy.name}' does not run on a continuous box; use an acquisition "
            "policy (ei, ucb, maxvar) or random"
        )
    if policy.model != "gp":
        raise ValueError(f"a box campaign fits a GP on its points; remove model: {policy.model}")


def _check_box_campaign(spec: CampaignSpec) -> None:
    """ValueError unless a box campaign's policy, model and seed points suit a box."""
    check_box_policy(spec.policy)
    if spec.seed_points:
        raise ValueError(
            "seed_points are grid pixels; give a box's first points as sample.box.seed_points "
            "({name: value} each)"
        )


def _check_objectives(
    objectives: Sequence[ObjectiveSpec], offered: set[str], policy: PolicySpec
) -> None:
    """ValueError unless the objectives suit the spec: none, or at least two distinct ones of
    one measured modality, under a multi-objective policy or a baseline."""
    if not objectives:
        if policy.name in MULTI_OBJECTIVE_POLICIES:
            raise ValueError(
                f"policy '{policy.name}' needs objectives: list at least two "
                "(objectives: [{name, modality, goal}, ...])"
            )
        return
    if len(objectives) < 2:
        raise ValueError(
            "objectives needs at least two entries; for one objective use scalarizer: instead"
        )
    modalities = {o.modality for o in objectives}
    if len(modalities) > 1:
        raise ValueError(
            f"objectives must all be of one modality (got {', '.join(sorted(modalities))}); "
            "objectives of several modalities are not supported yet"
        )
    modality = modalities.pop()
    if modality not in offered:
        raise ValueError(
            f"objectives modality '{modality}' is measured by no instrument; use one of "
            f"{', '.join(sorted(offered))}"
        )
    keys = [(o.name, sorted(o.params.items())) for o in objectives]
    if any(keys.count(k) > 1 for k in keys):
        raise ValueError("objectives must differ (the same scalarizer and params appear twice)")
    if policy.name not in (*MULTI_OBJECTIVE_POLICIES, *OBJECTIVE_BASELINES):
        allowed = ", ".join((*MULTI_OBJECTIVE_POLICIES, *OBJECTIVE_BASELINES))
        raise ValueError(
            f"objectives need a multi-objective policy or a baseline ({allowed}), "
            f"not '{policy.name}'"
        )


CONSTRAINED_POLICIES = ("ei",)
"""Policies that honour ``constraints`` and ``feasibility: learn``."""


def _check_constraints(spec: CampaignSpec) -> None:
    """ValueError unless constraints, feasibility and the stopping rule suit the spec."""
    policy = spec.policy
    constrained = bool(spec.constraints) or spec.feasibility == "learn"
    what = "constraints" if spec.constraints else "feasibility: learn"
    if constrained and (policy.name not in CONSTRAINED_POLICIES or policy.model != "gp"):
        raise ValueError(
            f"{what} need policy ei on model gp (constrained log-EI), not "
            f"'{policy.name}' on '{policy.model}'"
        )
    if constrained and (spec.objectives or spec.sample.box is not None):
        raise ValueError(f"{what} apply to single-objective grid campaigns; remove them")
    for c in spec.constraints:
        if c.modality != spec.scalarizer.modality:
            raise ValueError(
                f"constraint '{c.name}' is of modality '{c.modality}', but constraints are "
                f"scalars of the target modality '{spec.scalarizer.modality}'"
            )
    keys = [(c.name, sorted(c.params.items()), c.op) for c in spec.constraints]
    if any(keys.count(k) > 1 for k in keys):
        raise ValueError("constraints must differ (the same scalarizer, params and op twice)")
    if spec.min_p_feasible > 0 and not constrained:
        raise ValueError("min_p_feasible needs constraints or feasibility: learn")
    if spec.feasibility == "learn" and spec.failures.max_rate <= 0:
        raise ValueError(
            "feasibility: learn needs a tolerant failure policy (failures.max_rate > 0), or "
            "the first failure stops the campaign"
        )
    stop = spec.stopping
    if stop is None:
        return
    family = catalog.POLICIES.get(policy.name).family
    if stop.rule == "ei_below" and policy.name != "ei":
        raise ValueError(f"stopping rule ei_below needs policy ei, not '{policy.name}'")
    if stop.rule == "std_below" and family != "acquisition":
        raise ValueError(
            f"stopping rule std_below needs a GP acquisition policy (ei, ucb, maxvar), not "
            f"'{policy.name}'"
        )


def _clip(text: str, limit: int = 60) -> str:
    """``text`` on one line (control characters escaped), at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


def _shown(value: Any) -> str:
    """A short, one-line form of a bad input value."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "an integer of more than 30 digits"
    return _clip(repr(value))


def _describe(error: ValidationError) -> str:
    """Turn pydantic's error list into one sentence: field, bad value, what is allowed."""
    parts = []
    for item in error.errors()[:5]:
        where = _clip(".".join(str(p) for p in item["loc"]) or "spec")
        msg = _clip(item["msg"].removeprefix("Value error, "), 300)
        if item["type"] == "extra_forbidden":
            parts.append(f"'{where}' is not a spec field; remove it or check its spelling")
            continue
        if item["type"] == "missing":
            parts.append(f"'{where}' is required")
            continue
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {_shown(value)})"
        parts.append(f"'{where}'{shown}: {msg}")
    return "invalid campaign spec: " + "; ".join(parts) + "."


def parse_spec(data: dict[str, Any]) -> CampaignSpec:
    """Validate a spec dict; raises :class:`ConfigError` with one sentence on failure."""
    if not isinstance(data, dict):
        raise ConfigError("invalid campaign spec: the top level must be a mapping of fields.")
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    try:
        spec.model_dump_json()  # stored in the trace and MLflow: it must be valid UTF-8 JSON
    except ValueError:
        raise ConfigError(
            "invalid campaign spec: a text field holds characters that are not valid Unicode "
            "(lone surrogates); retype it."
        ) from None
    return spec


MAX_SPEC_BYTES = 1 << 20
"""A spec file is at most 1 MiB (a real one is a few kB)."""
MAX_SPEC_NODES = 100_000
"""A spec holds at most this many values once YAML aliases are expanded (a "YAML bomb" of
nested aliases expands to billions)."""


def _expanded_size(value: Any, budget: int) -> int:
    """Values in ``value`` with shared (aliased) parts counted each time; stops past ``budget``."""
    count, stack = 0, [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> CampaignSpec:
    """Read and validate a YAML spec file; ``overrides`` replace top-level fields.

    Bounded: at most :data:`MAX_SPEC_BYTES` of UTF-8 text and :data:`MAX_SPEC_NODES` values
    with aliases expanded; too deep a nesting or too long a number is refused in one sentence.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no campaign spec at '{path}': give the path of a YAML file.")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise ConfigError(
            f"'{path}' is {size} bytes; a campaign spec is at most {MAX_SPEC_BYTES} bytes: "
            "give the spec, not data (datasets are imported with `coscope dataset import`)."
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"'{path}' is not UTF-8 text (byte {exc.start}): save the spec as UTF-8 YAML."
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"'{path}' is not valid YAML{where}: fix the syntax.") from None
    except RecursionError:
        raise ConfigError(f"'{path}' nests too deeply to be a campaign spec: flatten it.") from None
    except ValueError as exc:  # an integer of more than 4300 digits (int_max_str_digits)
        what = "a number too long to read" if "digits" in str(exc) else "a value YAML cannot read"
        raise ConfigError(f"'{path}' holds {what}: use a value of a sensible size.") from None
    if _expanded_size(data, MAX_SPEC_NODES) > MAX_SPEC_NODES:
        raise ConfigError(
            f"'{path}' expands to more than {MAX_SPEC_NODES} values (nested YAML aliases?): "
            "write the spec out without them."
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"'{path}' must hold a mapping of spec fields, not {type(data).__name__}."
        )
    data.update(overrides or {})
    return parse_spec(data)
