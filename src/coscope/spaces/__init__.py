"""Candidate spaces: where a campaign may measure (``docs/spaces.md``).

:class:`Space` is the contract; :class:`PixelGrid`, :class:`MaskedGrid` and
:class:`CandidateTable` implement it. :func:`space_of` builds a campaign's space,
:func:`space_from_description` rebuilds it from a trace.
"""

from coscope.spaces.base import LayoutSpace, Space, SpaceError, layout_features
from coscope.spaces.build import (
    SPACES,
    mask_from_spec,
    space_from_description,
    space_of,
    space_summary,
)
from coscope.spaces.grid import MaskedGrid, PixelGrid
from coscope.spaces.table import CandidateTable
from coscope.storage.dataset_tables import MASK_CHANNEL

__all__ = [
    "MASK_CHANNEL",
    "SPACES",
    "CandidateTable",
    "LayoutSpace",
    "MaskedGrid",
    "PixelGrid",
    "Space",
    "SpaceError",
    "layout_features",
    "mask_from_spec",
    "space_from_description",
    "space_of",
    "space_summary",
]
