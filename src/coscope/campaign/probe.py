"""Try a scalarizer on the campaign's real axis (and signals) before anything relies on it.

A scalarizer's parameters are checked against its signature when a spec or an intervention
is parsed, but a window that lies outside the modality's axis, a user function that returns
an array or raises, or a builtin such as ``builtins:max`` only shows when the scalarizer is
applied. :func:`probe_scalarizer` applies it to a few probe signals of the modality — the
stored measurements when there are some, the sample's known signals, else a smooth synthetic
signal on the axis — so that such a scalarizer is refused with one sentence before it is
recorded in a trace or before the engines start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coscope.errors import ConfigError

N_PROBES = 4
"""Stored signals a probe tries at most (evenly spaced over the trace)."""


def synthetic_probe(axis: np.ndarray) -> np.ndarray:
    """A smooth, non-degenerate signal ``(L,)`` on ``axis`` ``(L,)``: a bump over a slope."""
    axis = np.asarray(axis, dtype=np.float64)
    span = float(np.ptp(axis)) or 1.0
    x = (axis - float(np.min(axis))) / span
    return 1.0 + 0.5 * x + np.exp(-(((x - 0.5) / 0.15) ** 2))


def probe_signals(signals: Sequence[np.ndarray], axis: np.ndarray) -> list[np.ndarray]:
    """Up to :data:`N_PROBES` of ``signals`` (evenly spaced), or the synthetic probe."""
    if not len(signals):
        return [synthetic_probe(axis)]
    idx = np.unique(np.linspace(0, len(signals) - 1, min(N_PROBES, len(signals))).astype(int))
    return [np.asarray(signals[int(i)], dtype=np.float64) for i in idx]


def probe_scalarizer(
    scalarizer: Mapping[str, Any], axis: np.ndarray, signals: Sequence[np.ndarray] = ()
) -> None:
    """Apply the scalarizer ``{name, modality, params}`` to probe signals of its modality.

    Args:
        scalarizer: The scalarizer spec as a JSON dict.
        axis: The modality's axis, ``(L,)``.
        signals: Known signals of the modality, each ``(L,)`` (stored or ground truth).

    Raises:
        ConfigError: One sentence naming the scalarizer and what it did on the probe.
    """
    from coscope.scalarizers import scalarize

    name, params = str(scalarizer["name"]), dict(scalarizer.get("params") or {})
    modality = scalarizer.get("modality", "?")
    for signal in probe_signals(signals, axis):
        try:
            scalarize(name, signal, axis, params)
        except ConfigError as exc:
            raise ConfigError(
                f"scalarizer {name!r} cannot score {modality} signals: {str(exc).rstrip('.')}."
            ) from None


def truth_probes(sample: Any, modality: str) -> list[np.ndarray]:
    """A few ground-truth signals ``(L,)`` of ``modality`` (evenly spaced pixels), if known."""
    truth = sample.truth.get(modality) if sample.truth else None
    if truth is None:
        return []
    flat = np.asarray(truth).reshape(-1, np.asarray(truth).shape[-1])
    return probe_signals(list(flat[:: max(1, len(flat) // N_PROBES)]), np.zeros(flat.shape[-1]))


def check_before_run(spec: Any, sample: Any, space: Any = None) -> None:
    """Everything a run would only find out on the engines, checked in this process first:
    every scalarizer of the spec tried on its modality (user code is imported here, as the
    campaign will), every instrument's options against its kind, and every instrument on a
    space (a plug-in, ``epics``) built, connected and checked against the sample.

    Raises:
        ConfigError: One sentence naming the scalarizer or instrument.
    """
    from coscope.instruments.registry import (
        build_base,
        check_fits_sample,
        check_options,
        reads_sample,
    )

    for scalarizer in (spec.scalarizer, *spec.auxiliary, *spec.objectives):
        if scalarizer.modality not in sample.modalities:
            continue  # named by check_spec_fits_sample
        data = scalarizer.model_dump(mode="json")
        axis = sample.info(scalarizer.modality).axis
        probe_scalarizer(data, axis, truth_probes(sample, scalarizer.modality))
    for inst in spec.instruments:
        check_options(inst.name, inst.kind, sample, inst.modalities, inst.options, space)
        if not reads_sample(inst.kind):
            base = build_base(
                inst.name,
                sample,
                kind=inst.kind,
                modalities=inst.modalities,
                options=inst.options,
                space=space,
            )
            check_fits_sample(base, sample, inst.modalities)
