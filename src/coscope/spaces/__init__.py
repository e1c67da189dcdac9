"""Candidate spaces: where a campaign may measure (``docs/spaces.md``).

:class:`Space` is the contract; :class:`PixelGrid`, :class:`MaskedGrid` and
:class:`CandidateTable` implement it, and :class:`Box` (a continuous box, its points
proposed one by one) lays its points out as slots of the same contract. :func:`space_of`
builds a campaign's space, :func:`space_from_description` rebuilds it from a trace.
"""

from coscope.spaces.base import LayoutSpace, Space, SpaceError, layout_features
from coscope.spaces.box import POINT_PARAM, Box, points_of
from coscope.spaces.build import (
    SPACES,
    box_from_spec,
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
    "POINT_PARAM",
    "SPACES",
    "Box",
    "CandidateTable",
    "LayoutSpace",
    "MaskedGrid",
    "PixelGrid",
    "Space",
    "SpaceError",
    "box_from_spec",
    "layout_features",
    "mask_from_spec",
    "points_of",
    "space_from_description",
    "space_of",
    "space_summary",
]
