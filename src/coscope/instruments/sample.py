"""Samples: a grid of locations with cheap structure, modalities and (optional) ground truth.

A :class:`Sample` is general: any ``H x W`` grid with any modalities. Synthetic samples carry
exact noise-free ground truth for every modality; a real instrument's sample may carry none.
Samples are built by kind through a small registry (:func:`build_sample`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coscope.catalog import SAMPLE_KINDS
from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import physics
from coscope.registry import Registry
from coscope.types import Location, ModalityInfo


@dataclass(frozen=True, eq=False)
class Sample:
    """What a campaign explores.

    Attributes:
        name: Sample name.
        structure: Cheap structure image known up front, ``H x W`` float64.
        pixel_size_um: Pixel pitch, micrometres.
        modalities: Signal description per modality name.
        truth: Noise-free ground-truth signals per modality, each ``H x W x L`` float64
            (``L`` = that modality's axis length). May be empty (real instrument).
        features: Named feature columns of a *table* sample (``docs/spaces.md``), each
            ``H x W`` float64 (a table of ``N`` candidates is ``N x 1``); empty for a grid.
            When given, the campaign's space is a :class:`~coscope.spaces.CandidateTable`
            over them.
    """

    name: str
    structure: np.ndarray = field(repr=False)
    pixel_size_um: float = 1.0
    modalities: dict[str, ModalityInfo] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.structure.ndim != 2 or self.structure.dtype != np.float64:
            raise ConfigError(
                f"sample {self.name!r}: structure must be a 2-D float64 array, got shape "
                f"{self.structure.shape} and dtype {self.structure.dtype}."
            )
        for mod, arr in self.truth.items():
            if mod not in self.modalities:
                raise ConfigError(
                    f"sample {self.name!r}: ground truth for {mod!r} has no ModalityInfo; "
                    f"add it to modalities (known: {sorted(self.modalities)})."
                )
            want = self.shape + (self.modalities[mod].length,)
            if arr.shape != want:
                raise ConfigError(
                    f"sample {self.name!r}: ground truth for {mod!r} has shape {arr.shape}, "
                    f"expected {want} (grid x signal length)."
                )

        for name, column in self.features.items():
            if np.shape(column) != self.shape:
                raise ConfigError(
                    f"sample {self.name!r}: feature {name!r} has shape {np.shape(column)}, "
                    f"expected {self.shape} (one value per candidate)."
                )

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(H, W)``."""
        return (int(self.structure.shape[0]), int(self.structure.shape[1]))

    def contains(self, location: Location) -> bool:
        """Whether ``location`` is a pixel of this sample's grid."""
        h, w = self.shape
        return 0 <= location.row < h and 0 <= location.col < w

    def info(self, modality: str) -> ModalityInfo:
        """The :class:`ModalityInfo` of ``modality``; InstrumentError if unknown."""
        if modality not in self.modalities:
            raise InstrumentError(
                f"sample {self.name!r} has no modality {modality!r}: use one of "
                f"{sorted(self.modalities)}."
            )
        return self.modalities[modality]

    def signal(self, modality: str, location: Location) -> np.ndarray:
        """A copy of the ground-truth signal at ``location``, shape ``(L,)`` float64."""
        self.info(modality)
        if modality not in self.truth:
            raise InstrumentError(
                f"sample {self.name!r} has no ground truth for {modality!r}: measure it on a "
                "real instrument instead of a simulated one."
            )
        if not self.contains(location):
            h, w = self.shape
            raise InstrumentError(
                f"location ({location.row}, {location.col}) is off the sample: rows must be in "
                f"0..{h - 1} and columns in 0..{w - 1}."
            )
        return np.array(self.truth[modality][location.row, location.col], dtype=np.float64)


SampleFactory = Callable[..., Sample]
SAMPLES: Registry[SampleFactory] = Registry("sample kind", SAMPLE_KINDS)
register_sample = SAMPLES.register
"""Decorator registering a sample factory ``f(*, seed, **params) -> Sample`` as a kind."""
sample_kinds = SAMPLES.names


def build_sample(kind: str, params: dict[str, Any], seed: int) -> Sample:
    """Build a registered sample kind with ``params``; ConfigError for bad kind or params."""
    factory = SAMPLES.get(kind)
    try:
        inspect.signature(factory).bind(seed=seed, **params)
    except TypeError as exc:
        valid = [p for p in inspect.signature(factory).parameters if p not in ("seed", "kwargs")]
        raise ConfigError(
            f"sample kind {kind!r} got invalid parameters {sorted(params)} ({exc}): valid "
            f"parameters are {valid}."
        ) from None
    return factory(seed=seed, **params)


_PHYSICS_PARAMS = tuple(
    p
    for p in inspect.signature(physics.simulate_film).parameters
    if p not in ("shape", "voltage", "rng")
)
_POSITIVE = ("correlation_length", "wall_width", "coercive_field", "defect_radius", "gamma")


def _check_physics(params: dict[str, float]) -> None:
    """ConfigError naming the first unknown or out-of-range physics parameter."""
    unknown = sorted(set(params) - set(_PHYSICS_PARAMS))
    if unknown:
        raise ConfigError(
            f"unknown synthetic_film parameter(s) {unknown}: valid physics parameters are "
            f"{list(_PHYSICS_PARAMS)}."
        )
    for key, value in params.items():
        if not isinstance(value, int | float) or not np.isfinite(value):
            raise ConfigError(f"{key}={value!r} is invalid: give a finite number.")
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{key}={value!r} is invalid: it must be > 0.")
        if key == "n_sub" and (int(value) != value or value < 1):
            raise ConfigError(f"n_sub={value!r} is invalid: give an integer >= 1.")
        if key in ("strain_coercive_gain", "strain_polarization_gain") and not 0 <= value <= 0.9:
            raise ConfigError(f"{key}={value!r} is invalid: use 0..0.9.")
        if key == "strain_length" and value < 0:
            raise ConfigError(
                f"strain_length={value!r} is invalid: use >= 0 (0: a quarter of the side)."
            )
        if key == "defect_density" and not 0 <= value <= 0.05:
            raise ConfigError(f"defect_density={value!r} is invalid: use 0..0.05 per pixel.")


@register_sample("synthetic_film")
def synthetic_film(
    size: int | tuple[int, int] = 50,
    seed: int = 0,
    n_voltage: int = 64,
    v_max: float = 8.5,
    pixel_size_um: float = 0.05,
    name: str = "synthetic_film",
    **physics_params: Any,
) -> Sample:
    """A synthetic ferroelectric film with exact BEPS-loop ground truth.

    Args:
        size: Grid side ``N`` (``N x N``) or ``(H, W)``; each side in 8..1024.
        seed: Seed of the film's randomness (domains, defects).
        n_voltage: Points ``L`` per loop; a multiple of 4, at least 8.
        v_max: Sweep amplitude, V, > 0.
        pixel_size_um: Pixel pitch, micrometres.
        name: Sample name.
        **physics_params: Overrides of :func:`coscope.instruments.physics.simulate_film`.

    Returns:
        A :class:`Sample` with modality ``"beps_loop"`` (axis: voltage, V), structure the
        PFM-like image ``H x W``, truth ``{"beps_loop": H x W x L}``.
    """
    shape = (size, size) if isinstance(size, int | np.integer) else tuple(np.atleast_1d(size))
    sides_ok = all(isinstance(s, int | np.integer) and 8 <= s <= 1024 for s in shape)
    if len(shape) != 2 or not sides_ok:
        raise ConfigError(f"size={size!r} is invalid: give an int or (H, W) with sides in 8..1024.")
    if not isinstance(n_voltage, int | np.integer) or n_voltage < 8 or n_voltage % 4:
        raise ConfigError(f"n_voltage={n_voltage!r} is invalid: use a multiple of 4, at least 8.")
    if not np.isfinite(v_max) or v_max <= 0:
        raise ConfigError(f"v_max={v_max!r} is invalid: use a positive voltage in V.")
    _check_physics(physics_params)
    voltage = physics.triangle_sweep(int(n_voltage), float(v_max))
    truth = physics.simulate_film(
        (int(shape[0]), int(shape[1])), voltage, np.random.default_rng(seed), **physics_params
    )
    info = ModalityInfo("beps_loop", voltage, "voltage", "V", "P/P_s")
    return Sample(
        name=name,
        structure=truth.structure,
        pixel_size_um=float(pixel_size_um),
        modalities={"beps_loop": info},
        truth={"beps_loop": truth.loops},
    )


__all__ = ["Sample", "build_sample", "register_sample", "sample_kinds", "synthetic_film"]
