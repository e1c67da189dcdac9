"""Surrogate models. They fit data and predict; they know nothing of acquisition.

Names are imported on first use, so that a light module of this package (the numpy
:class:`~coscope.models.icm.IcmKernel`) loads without torch.
"""

from __future__ import annotations

from coscope.lazy import lazy_exports

_EXPORTS = {
    "DKLState": "dkl",
    "GPState": "gp",
    "embed": "dkl",
    "fit_dkl": "dkl",
    "fit_gp": "gp",
    "fit_model": "fitting",
    "load_latent_model": "dkl",
    "load_model": "gp",
    "model_kinds": "fitting",
    "patch_features": "patches",
    "predict": "gp",
    "predict_dkl": "dkl",
    "register_model": "fitting",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
