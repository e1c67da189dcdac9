"""coscope: autonomous experiment campaigns across instruments and theory simulations.

Entry points: the ``coscope`` command (``coscope.cli``); the Python API (``coscope.Campaign``,
``coscope.run``: docs/python-api.md, imported on first use); the campaign spec
(``coscope.config.CampaignSpec``); the data contract (``coscope.types``). Nothing here opens a
client or reads settings at import.
"""

from coscope.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__ = lazy_exports(__name__, {"Campaign": "api", "Proposals": "api", "run": "api"})
