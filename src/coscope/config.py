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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coscope.errors import ConfigError


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (``bool`` itself, or a union or container of it)."""
    from typing import get_args

    return annotation is bool or any(_takes_bool(a) for a in get_args(annotation))


def _one_of(value: str, known: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of the registered names, else a ValueError listing them."""
    if value not in known:
        raise ValueError(f"unknown {what}; use one of {', '.join(sorted(known))}")
    return value


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


class SampleSpec(_Strict):
    """Which sample to explore: a registered sample kind and its parameters."""

    kind: str = "synthetic_film"
    params: dict[str, Any] = Field(default_factory=lambda: {"size": 50})

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from coscope.instruments import sample_kinds

        return _one_of(value, sample_kinds(), "sample kind")


class FaultsSpec(_Strict):
    """Injected faults of an instrument, for testing (:mod:`coscope.instruments.faults`)."""

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="transient errors per attempt")
    hang_rate: float = Field(0.0, ge=0.0, le=1.0, description="attempts that hang hang_s")
    hang_s: float = Field(1.0, ge=0.0, le=3600.0, description="length of a hang, seconds")
    nan_rate: float = Field(0.0, ge=0.0, le=1.0, description="signals with a NaN")
    wrong_length_rate: float = Field(0.0, ge=0.0, le=1.0, description="signals one short")
    down_from_step: int | None = Field(None, ge=0, description="disconnected from this step")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _rates(self) -> FaultsSpec:
        total = self.error_rate + self.hang_rate + self.nan_rate + self.wrong_length_rate
        if total > 1.0:
            raise ValueError(f"fault rates sum to {total:g}; they must sum to at most 1")
        return self


class InstrumentSpec(_Strict):
    """One instrument: its modalities, latency (s), cost per measurement, noise, and how its
    failures are handled (timeout, retries, injected faults)."""

    name: str = Field("afm", description="unique, no spaces")
    kind: str = "simulated"
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
        from coscope.instruments.costs import check_per_modality

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
        from coscope.instruments import instrument_kinds

        return _one_of(value, instrument_kinds(), "instrument kind")


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
        from coscope.scalarizers import STANDARD_LIBRARY, USER_REFERENCE, scalarizer_names

        if ":" in value:  # a user's "package.module:function": imported only when run
            if not USER_REFERENCE.fullmatch(value):
                raise ValueError(
                    "a user scalarizer is named 'package.module:function' (Python identifiers)"
                )
            if value.partition(".")[0].partition(":")[0] in STANDARD_LIBRARY:
                raise ValueError(
                    "a user scalarizer must come from your own package, not Python's standard "
                    "library; write f(signal, axis) -> float there, or use a registered one"
                )
            return value
        return _one_of(value, scalarizer_names(), "scalarizer")

    @model_validator(mode="after")
    def _known_params(self) -> ScalarizerSpec:
        from coscope.scalarizers import validate_scalarizer

        if ":" in self.name:  # checked when the campaign runs (coscope.campaign.probe)
            return self
        try:
            validate_scalarizer(self.name, self.params)
        except ConfigError as exc:
            raise ValueError(str(exc).rstrip(".")) from None
        return self


class PolicySpec(_Strict):
    """The decision rule and how the surrogate behind it is refreshed."""

    name: str = "ei"
    params: dict[str, float] = Field(default_factory=dict)
    model: Literal["gp", "dkl", "multitask"] = Field(
        "gp",
        description="gp: exact GP on coordinates; dkl: deep kernel learning on patches; "
        "multitask: one GP over every modality (policies gain_per_cost, max_uncertainty)",
    )
    window: int = Field(9, ge=3, le=63, description="dkl: structure patch side, odd, pixels")
    latent_dim: int = Field(2, ge=1, le=8, description="dkl: latent dimensions of the MLP")
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
        from coscope.agents import agent_policy_names
        from coscope.agents.multitask_agent import CHOOSER_POLICIES

        names = (*agent_policy_names(), "thompson", "conavigate", *CHOOSER_POLICIES)
        return _one_of(value, names, "policy")

    @model_validator(mode="after")
    def _known_params(self) -> PolicySpec:
        from coscope.agents import policy_names, validate_policy

        if self.window % 2 == 0:
            raise ValueError(
                f"window must be odd (a patch centred on its pixel), got {self.window}"
            )
        if self.warm_start and self.model != "dkl":
            raise ValueError("warm_start applies to model: dkl only; remove it or set model: dkl")
        from coscope.agents.chooser_spec import check_chooser_policy

        if check_chooser_policy(self.name, self.model, self.params):
            return self
        if self.name == "thompson":
            if self.model != "dkl":
                raise ValueError(
                    "policy 'thompson' needs model: dkl; use ei, ucb or maxvar with gp"
                )
            if self.params:
                raise ValueError("policy 'thompson' takes no params; remove them")
        elif self.name == "conavigate":  # theory-experiment co-navigation; params checked there
            pass
        elif self.name in policy_names():
            try:
                validate_policy(self.name, self.params)
            except ConfigError as exc:
                raise ValueError(str(exc).rstrip(".")) from None
        else:
            if self.params:
                raise ValueError(f"baseline policy '{self.name}' takes no params; remove them")
            if self.model != "gp":
                raise ValueError(f"baseline policy '{self.name}' has no model; remove model: dkl")
        return self


class BudgetSpec(_Strict):
    """When to stop: total cost and/or number of measurements (whichever comes first)."""

    max_cost: float | None = Field(None, gt=0.0)
    max_measurements: int | None = Field(60, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.max_cost is None and self.max_measurements is None:
            raise ValueError("set max_cost, max_measurements or both, or the campaign never ends")
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
    policy: PolicySpec = Field(default_factory=PolicySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    seed_points: list[tuple[int, int]] = Field(default_factory=list)
    time_scale: float = Field(1.0, ge=0.0, description="multiplies every instrument latency")
    run_dir: str | None = None
    store: str | None = None
    tracking_uri: str | None = None
    dask_address: str | None = None
    dask_workers: int = Field(2, ge=1, le=64)
    checkpoint_every: int = Field(10, ge=1)
    queue_depth: int = Field(
        0,
        ge=0,
        le=4,
        description="requests decided ahead per instrument, queued behind the one it measures "
        "(0: its next request is decided when its current one is recorded)",
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
        from coscope.agents.chooser_spec import check_auxiliary

        check_auxiliary(self.scalarizer, self.auxiliary, offered, self.policy)
        return self

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
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> CampaignSpec:
    """Read and validate a YAML spec file; ``overrides`` replace top-level fields."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no campaign spec at '{path}': give the path of a YAML file.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"'{path}' is not valid YAML{where}: fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"'{path}' must hold a mapping of spec fields, not {type(data).__name__}."
        )
    data.update(overrides or {})
    return parse_spec(data)
