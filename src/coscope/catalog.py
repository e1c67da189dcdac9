"""What a spec may name, as plain data: kinds, policies and their parameters.

Validating a spec needs the names of the sample and instrument kinds and the policies, and
the parameters each policy takes — not the modules that implement them (torch, botorch).
This module holds that light half of every registry, so that ``coscope status``,
``coscope intervene`` and :func:`coscope.config.parse_spec` start without torch.

The heavy registries are bound to it: :class:`~coscope.registry.Registry` declares each name
it registers in its :class:`~coscope.registry.Names`, and
:func:`coscope.agents.acquisition.register_policy` declares a policy's options with
:func:`declare_acquisition` (checked against the entry below for the built-in ones). A kind
or policy registered by a user's module is therefore valid in a spec once that module is
imported, and ``tests/test_catalog.py`` checks that the built-in entries match the registries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from coscope.errors import ConfigError
from coscope.plugins import entry_point_names, is_reference, reference_form_error
from coscope.registry import Names, Registry

SAMPLE_KINDS = Names(
    "sample kind", ("box", "combinatorial_library", "dataset", "synthetic_film", "with_theory")
)
"""Sample kinds (``sample.kind``), registered in :mod:`coscope.instruments.sample`."""
INSTRUMENT_KINDS = Names(
    "instrument kind", ("epics", "simulated", "synthetic", "theory_lattice", "theory_lgd")
)
"""Instrument kinds (``instruments[].kind``), registered in :mod:`coscope.instruments.registry`
(``epics`` in :mod:`coscope.instruments.epics`, ``synthetic`` in
:mod:`coscope.instruments.synthetic`)."""


def check_instrument_kind(kind: str) -> str:
    """``kind`` if a spec may name it as an instrument kind, else a ValueError (one sentence).

    A kind is a registered name, a user's ``"package.module:factory"`` (its form is checked
    here; it is imported only when the campaign builds the instrument), or the name of an
    installed package's entry point in the group ``coscope.instruments`` (not imported).
    """
    if kind in INSTRUMENT_KINDS:
        return kind
    if is_reference(kind):
        fix = "write f(name, space, modalities, **options) -> Instrument there"
        problem = reference_form_error(kind, "user instrument kind", fix)
        if problem:
            raise ValueError(problem)
        return kind
    if kind in entry_point_names():
        return kind
    raise ValueError(
        f"unknown instrument kind; use one of {', '.join(INSTRUMENT_KINDS.names())}, a "
        "plug-in's 'package.module:factory', or an installed plug-in's kind"
    )


Model = Literal["gp", "dkl", "multitask", "structured"]
"""The surrogate behind a policy (``policy.model``)."""
Family = Literal[
    "acquisition",
    "baseline",
    "thompson",
    "dkl",
    "chooser",
    "conavigate",
    "multi_objective",
    "hypotheses",
    "fidelity",
]
"""How a policy decides: an acquisition function over one target, a model-free baseline,
Thompson sampling on DKL, choosing among modalities (co-orchestration), co-navigation, or
improving the hypervolume of several objectives (``objectives:``), weighing competing
hypotheses (``policy.models``, docs/hypotheses.md), or choosing a location and a dwell time
by map information per price (docs/fidelity.md)."""

MAX_BOUNDARIES = 4
"""Most learned boundary features of the multitask kernel (``params.boundaries``)."""
MAX_LATENT_DIM = 8
"""Largest VAE latent size of a chooser policy (``params.latent_dim``)."""


@dataclass(frozen=True)
class Param:
    """One numeric policy parameter.

    Attributes:
        kind: ``number`` (any float), ``integer`` or ``switch`` (0 or 1).
        minimum: Smallest allowed value, inclusive (``None``: unbounded).
        maximum: Largest allowed value, inclusive (``None``: unbounded).
        doc: What it sets, with units.
    """

    kind: Literal["number", "integer", "switch"] = "number"
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def check(self, key: str, value: float) -> None:
        """ValueError (one sentence) unless ``value`` suits this parameter."""
        if self.kind == "switch":
            if value not in (0, 1):
                raise ValueError(f"policy param '{key}' is a switch: use 0 or 1, got {value!r}")
            return
        integral = self.kind != "integer" or value == int(value)
        low = self.minimum is None or value >= self.minimum
        high = self.maximum is None or value <= self.maximum
        if integral and low and high:
            return
        what = "an integer" if self.kind == "integer" else "a number"
        if self.maximum is not None:
            span = f"{self.minimum:g}..{self.maximum:g}"
            raise ValueError(f"policy param '{key}' must be {what} {span}, got {value!r}")
        limit = "" if self.minimum is None else f" >= {self.minimum:g}"
        raise ValueError(f"policy param '{key}' must be {what}{limit}, got {value!r}")


@dataclass(frozen=True)
class PolicyInfo:
    """A policy a spec may name: how it decides, on which models, with which parameters.

    Attributes:
        name: The policy's name (``policy.name``).
        family: How it decides (see :data:`Family`).
        models: The ``policy.model`` values it works with.
        params: Parameter name -> rule, in the order they are documented.
    """

    name: str
    family: Family
    models: tuple[Model, ...]
    params: Mapping[str, Param] = field(default_factory=dict)


POLICIES: Registry[PolicyInfo] = Registry("policy")
"""Every policy a spec may name, by name."""

_INTEGER_1 = Param("integer", minimum=1)
_CHOOSER = {
    "rank": Param("integer", 1, doc="task covariance rank (default: number of modalities)"),
    "n_candidates": _INTEGER_1,
    "n_reference": _INTEGER_1,
    "refit_growth": Param("number", 1, doc="refit when the data grew by this factor"),
    "background_fit": Param("switch", doc="fit in a background thread"),
    "use_structure": Param("switch", doc="add the sample's structure as a model input"),
    "boundaries": Param("integer", 0, MAX_BOUNDARIES, doc="learned boundary features (0: none)"),
    "latent_dim": Param("integer", 0, MAX_LATENT_DIM, doc="VAE latent targets (0: scalarizers)"),
    "vae_epochs": _INTEGER_1,
    "vae_growth": Param("number", 1, doc="retrain the VAEs when the data grew by this factor"),
}
_BUILTIN = (
    PolicyInfo("ei", "acquisition", ("gp", "dkl", "structured")),
    PolicyInfo("ucb", "acquisition", ("gp", "dkl", "structured"), {"beta": Param("number", 0)}),
    PolicyInfo("maxvar", "acquisition", ("gp", "dkl", "structured")),
    PolicyInfo("random", "baseline", ("gp",)),
    PolicyInfo("raster", "baseline", ("gp",)),
    PolicyInfo("thompson", "thompson", ("dkl",)),
    PolicyInfo("map", "dkl", ("dkl",)),
    PolicyInfo(
        "balance",
        "dkl",
        ("dkl",),
        {
            "map_share": Param("number", 0, 1, doc="share of picks that serve the map"),
            "beta": Param("number", 0, doc="UCB beta of the picks that find"),
        },
    ),
    PolicyInfo("gain_per_cost", "chooser", ("multitask", "gp"), _CHOOSER),
    PolicyInfo("max_uncertainty", "chooser", ("multitask", "gp"), _CHOOSER),
    PolicyInfo(
        "conavigate",
        "conavigate",
        ("gp",),
        {"n_design": _INTEGER_1, "n_eff": Param("number", doc="effective points per loop")},
    ),
    PolicyInfo(
        "qlognehvi",
        "multi_objective",
        ("gp",),
        {"mc_samples": Param("integer", 16, 1024, doc="quasi-MC samples of the posterior")},
    ),
    PolicyInfo(
        "novelty",
        "multi_objective",
        ("gp",),
        {"k": Param("integer", 1, 50, doc="nearest seen outcomes a novelty is averaged over")},
    ),
    PolicyInfo(
        "fidelity",
        "fidelity",
        ("gp",),
        {"n_reference": Param("integer", 8, 4096, doc="cells the map's variance is averaged over")},
    ),
    PolicyInfo(
        "hypotheses",
        "hypotheses",
        ("gp",),
        {"explore": Param("number", 0, doc="weight of the map information (0: discriminate)")},
    ),
)
for _info in _BUILTIN:
    POLICIES.register(_info.name)(_info)

CHOOSER_POLICIES = tuple(i.name for i in _BUILTIN if i.family == "chooser")
"""Policies served by :class:`~coscope.agents.multitask_agent.MultiTaskAgent`."""


MULTI_OBJECTIVE_POLICIES = tuple(i.name for i in _BUILTIN if i.family == "multi_objective")
"""Policies that need ``objectives:`` (served by
:class:`~coscope.agents.hypervolume_agent.HypervolumeAgent`)."""
OBJECTIVE_BASELINES = tuple(i.name for i in _BUILTIN if i.family == "baseline")
"""Model-free policies a multi-objective campaign may also run (for comparison)."""


def policy_names(family: Family | None = None) -> tuple[str, ...]:
    """Names of the declared policies (of one ``family``), sorted."""
    return tuple(n for n in POLICIES.names() if family in (None, POLICIES.get(n).family))


def chooses_modality(policy: str) -> bool:
    """Whether ``policy`` builds a modality-choosing agent (co-orchestration, co-navigation)."""
    return policy in POLICIES and POLICIES.get(policy).family in ("chooser", "conavigate")


def declare_acquisition(name: str, options: tuple[str, ...]) -> None:
    """Declare acquisition policy ``name`` taking numeric keyword ``options``.

    Called by :func:`~coscope.agents.acquisition.register_policy`. A new name is added (any
    number allowed for each option); a built-in one must take exactly its declared options.

    Raises:
        ConfigError: ``name`` is declared as another family or with other options.
    """
    if name not in POLICIES:
        info = PolicyInfo(
            name, "acquisition", ("gp", "dkl", "structured"), {o: Param() for o in options}
        )
        POLICIES.register(name)(info)
        return
    declared = POLICIES.get(name)
    if declared.family != "acquisition" or tuple(declared.params) != options:
        raise ConfigError(
            f"acquisition policy {name!r} takes options {list(options)} but coscope.catalog "
            f"declares {declared.family} {list(declared.params)}; make them agree."
        )


def check_policy(name: str, model: str, params: Mapping[str, float]) -> None:
    """ValueError (one sentence naming the field and the fix) unless the policy is usable.

    Args:
        name: ``policy.name``, a declared policy (checked by the caller).
        model: ``policy.model``.
        params: ``policy.params``.
    """
    info = POLICIES.get(name)
    if model not in info.models:
        raise ValueError(_wrong_model(info, model))
    unknown = sorted(set(params) - set(info.params))
    if unknown and not info.params:
        kind = "baseline policy" if info.family == "baseline" else "policy"
        raise ValueError(f"{kind} '{name}' takes no params; remove {unknown}")
    if unknown:
        raise ValueError(
            f"policy '{name}' does not take params {unknown}; it takes {list(info.params)}"
        )
    for key, value in params.items():
        info.params[key].check(key, value)
    if info.family == "chooser":
        _check_latent(params)


def _wrong_model(info: PolicyInfo, model: str) -> str:
    """The sentence for a policy given a model it does not work with."""
    if model == "multitask":
        return f"model: multitask needs policy {' or '.join(CHOOSER_POLICIES)}, not '{info.name}'"
    if info.family == "baseline":
        return f"baseline policy '{info.name}' has no model; remove model: {model}"
    if info.family in ("thompson", "dkl"):
        return f"policy '{info.name}' needs model: dkl; use ei, ucb or maxvar with gp"
    return f"policy '{info.name}' works with model {' (or '.join(info.models)}), not '{model}'"


def _check_latent(params: Mapping[str, float]) -> None:
    """ValueError unless the VAE-latent params of a chooser policy go together."""
    dim = params.get("latent_dim", 0)
    extra = sorted(k for k in ("vae_epochs", "vae_growth") if k in params)
    if extra and dim == 0:
        raise ValueError(f"policy params {extra} need latent_dim >= 1; set latent_dim or drop them")
    if dim and params.get("background_fit", 0):
        raise ValueError("latent_dim does not work with background_fit: set background_fit: 0")
