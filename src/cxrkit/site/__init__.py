"""Site transfer: calibrate a model on a new site's labelled films, or adapt it without labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

# Public name -> submodule, imported on first use (the prior EM never pays for torch).
_EXPORTS = {
    "calibrate_model": "api",
    "adapt_model": "api",
    "adapt_batchnorm": "adapt",
    "em_prior": "prior",
    "training_prior": "prior",
    "fit_probability_calibration": "calibrate",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.site.adapt import adapt_batchnorm as adapt_batchnorm
    from cxrkit.site.api import adapt_model as adapt_model
    from cxrkit.site.api import calibrate_model as calibrate_model
    from cxrkit.site.calibrate import fit_probability_calibration as fit_probability_calibration
    from cxrkit.site.prior import em_prior as em_prior
    from cxrkit.site.prior import training_prior as training_prior

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
