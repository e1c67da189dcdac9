"""coscope: autonomous experiment campaigns across instruments and theory simulations.

Entry points: the ``coscope`` command (``coscope.cli``); the campaign spec
(``coscope.config.CampaignSpec``); the data contract (``coscope.types``). Nothing here opens a
client or reads settings at import.
"""

__version__ = "0.1.0"
