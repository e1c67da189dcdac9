"""Error hierarchy. Every message is one sentence that names what is wrong and how to fix it.

The command line catches :class:`CoscopeError` and prints its message without a traceback.
"""

from __future__ import annotations


class CoscopeError(Exception):
    """Base class of every error coscope raises on purpose."""


class ConfigError(CoscopeError):
    """A campaign spec or setting is invalid."""


class InstrumentError(CoscopeError):
    """An instrument was asked something it cannot do, or returned an invalid signal.

    ``failure_class`` says what a failed measurement means for the campaign: a plain
    InstrumentError is an ``invalid_request`` (retrying the same request cannot help);
    the subclasses below are ``transient``, ``bad_measurement`` and ``instrument_down``.
    """

    failure_class = "invalid_request"


class StoreError(CoscopeError):
    """The experimental trace is missing, corrupt, or incompatible."""


class DatasetError(CoscopeError):
    """A dataset to import or load is malformed."""


class ProposalError(CoscopeError):
    """A result was told for a step that was never asked, told twice, or does not match it."""


class BudgetExhausted(CoscopeError):
    """The campaign has no budget left for another measurement."""


class ModelError(CoscopeError):
    """A surrogate could not be fitted or used."""


class TransientFault(InstrumentError):
    """A measurement failed for a passing reason (a hiccup, a busy controller): retry it."""

    failure_class = "transient"


class InstrumentTimeout(TransientFault):
    """A measurement took longer than the instrument's ``timeout_s``."""


class BadMeasurement(InstrumentError):
    """The instrument answered, but the signal is unusable (NaN, wrong length): measure again."""

    failure_class = "bad_measurement"


class InstrumentDown(InstrumentError):
    """The instrument is disconnected or broken: no retry helps until someone fixes it."""

    failure_class = "instrument_down"
