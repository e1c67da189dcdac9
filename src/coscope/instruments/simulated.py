"""An instrument that returns a sample's exact ground-truth signals (a noise-free twin)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from coscope.errors import ConfigError
from coscope.instruments.base import validate_request, validate_signal
from coscope.instruments.sample import Sample
from coscope.types import Measurement, MeasurementRequest, ModalityInfo


class SimulatedInstrument:
    """Measures a :class:`Sample` by reading its ground truth.

    Wrap it with :mod:`coscope.instruments.wrappers` for latency and noise and with
    :class:`~coscope.instruments.pricing.WithCost` for a price; alone it charges the unit
    cost 1 per measurement.

    Args:
        name: Instrument name.
        sample: The sample measured; must carry ground truth for every modality offered.
        modalities: Modalities offered (default: all with ground truth in ``sample``).
    """

    def __init__(
        self,
        name: str,
        sample: Sample,
        modalities: Sequence[str] | None = None,
    ) -> None:
        mods = tuple(sample.truth) if modalities is None else tuple(modalities)
        missing = [m for m in mods if m not in sample.truth]
        if not mods or missing:
            raise ConfigError(
                f"instrument {name!r} cannot offer modalities {missing or list(mods)}: sample "
                f"{sample.name!r} has ground truth only for {sorted(sample.truth)}."
            )
        self.name = name
        self.sample = sample
        self.modalities: tuple[str, ...] = mods

    def __repr__(self) -> str:
        return f"SimulatedInstrument({self.name!r}, sample={self.sample.name!r})"

    def info(self, modality: str) -> ModalityInfo:
        """Signal description of ``modality`` (from the sample)."""
        return self.sample.info(modality)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """The ground-truth signal at ``request.location``, ``(L,)`` float64."""
        t_start = time.time()
        validate_request(self, self.sample.shape, request)
        signal = validate_signal(
            self.info(request.modality), self.sample.signal(request.modality, request.location)
        )
        return Measurement.answering(request, self.name, signal, t_start)
