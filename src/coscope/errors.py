"""Error hierarchy. Every message is one sentence that names what is wrong and how to fix it.

The command line catches :class:`CoscopeError` and prints its message without a traceback.
"""

from __future__ import annotations


class CoscopeError(Exception):
    """Base class of every error coscope raises on purpose."""


class ConfigError(CoscopeError):
    """A campaign spec or setting is invalid."""


class InstrumentError(CoscopeError):
    """An instrument was asked something it cannot do, or returned an invalid signal."""


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
