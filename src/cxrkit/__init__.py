"""cxrkit: from a folder of chest X-rays to a trained, evaluated, explained and served model.

The public face: every name below is imported on first use, so `import cxrkit` stays
cheap (no torch) and a missing optional dependency only bites the name that needs it.

```python
import cxrkit as cx

run = cx.train("data/", "runs/a", cx.TrainConfig(weights="imagenet.pth", epochs=2))
clf = cx.Classifier.load("runs/a/model.safetensors")
rows = clf.predict(["film.png"])
```
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from cxrkit.errors import CxrkitError, DatasetError, ImageReadError, ModelFileError
from cxrkit.lazy import lazy_exports
from cxrkit.version import __version__

# Public name -> submodule, imported on first use.
_EXPORTS = {
    "read_image": "io.read",
    "load_table": "data.table",
    "TrainConfig": "train.config",
    "TrainResult": "train.result",
    "train": "train.runner",
    "Classifier": "classifier",
    "create_model": "models.factory",
    "list_backbones": "models.registry",
    "segment_lungs": "segment.infer",
    "load_lung_model": "segment.infer",
    "check_polarity": "polarity.check",
}

__all__ = [
    "Classifier",
    "CxrkitError",
    "DatasetError",
    "ImageReadError",
    "ModelFileError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "check_polarity",
    "create_model",
    "list_backbones",
    "load_lung_model",
    "load_table",
    "read_image",
    "segment_lungs",
    "train",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.classifier import Classifier as Classifier
    from cxrkit.data.table import load_table as load_table
    from cxrkit.io.read import read_image as read_image
    from cxrkit.models.factory import create_model as create_model
    from cxrkit.models.registry import list_backbones as list_backbones
    from cxrkit.polarity.check import check_polarity as check_polarity
    from cxrkit.segment.infer import load_lung_model as load_lung_model
    from cxrkit.segment.infer import segment_lungs as segment_lungs
    from cxrkit.train.config import TrainConfig as TrainConfig
    from cxrkit.train.result import TrainResult as TrainResult
    from cxrkit.train.runner import train as train

# `cxrkit.train` names the function, not the subpackage of the same name. Importing a
# subpackage binds it on its parent, so the (light) subpackage is bound now and the
# binding dropped: later imports of `cxrkit.train.*` find it loaded and leave `train` alone.
_importlib.import_module(f"{__name__}.train")
del globals()["train"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
