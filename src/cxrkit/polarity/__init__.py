"""Film polarity: is a film displayed as read (positive) or inverted (negative)? Check and fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

_EXPORTS = {
    "PolarityModel": "model",
    "load_polarity_model": "model",
    "polarity_of": "model",
    "check_paths": "predict",
    "fix_paths": "predict",
    "invert_film": "predict",
    "screen_films": "predict",
    "fix_table_polarity": "fix",
    "train_polarity": "train",
    "PolarityTrainConfig": "train",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from cxrkit.polarity.fix import fix_table_polarity as fix_table_polarity
    from cxrkit.polarity.model import PolarityModel as PolarityModel
    from cxrkit.polarity.model import load_polarity_model as load_polarity_model
    from cxrkit.polarity.model import polarity_of as polarity_of
    from cxrkit.polarity.predict import check_paths as check_paths
    from cxrkit.polarity.predict import fix_paths as fix_paths
    from cxrkit.polarity.predict import invert_film as invert_film
    from cxrkit.polarity.predict import screen_films as screen_films
    from cxrkit.polarity.train import PolarityTrainConfig as PolarityTrainConfig
    from cxrkit.polarity.train import train_polarity as train_polarity


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
