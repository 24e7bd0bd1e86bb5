"""The classifier: one `Classifier` (network + model card) and everything it is made of.

- `classifier.py`: `Classifier`, the one forward pass, rows, predict, explain, export;
- `films.py`: film preparation (`FilmPrep`: the card's crop and resize) and `FilmFiles`,
  the DataLoader dataset of films to predict; `dataset.py`: `CXRDataset`, the same
  preparation for a labelled table (training and evaluation);
- `screen.py`: polarity / view / not-a-chest-film screening of the films it predicts;
- `runtimes.py`, `onnx_export.py`, `onnx_runtime.py`: torch, onnxruntime, int8, OpenVINO;
- `paths.py`: films named by files, folders and globs; `api.py`: `predict(model_path,
  paths)` and the deprecated `(model, card)` wrappers.

The jobs that use a classifier live elsewhere: `cxrkit.evaluate.model` (evaluate, external
sets), `cxrkit.export.quantize`, `cxrkit.site`, `cxrkit.serve`, `cxrkit.dicom_out`.
Names are imported on first use, so `import cxrkit.classifier.paths` loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

_EXPORTS = {
    "Classifier": "classifier",
    "FilmInput": "classifier",
    "INT8_FILE": "classifier",
    "RUNTIMES": "classifier",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.classifier.classifier import INT8_FILE as INT8_FILE
    from cxrkit.classifier.classifier import RUNTIMES as RUNTIMES
    from cxrkit.classifier.classifier import Classifier as Classifier
    from cxrkit.classifier.classifier import FilmInput as FilmInput

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
