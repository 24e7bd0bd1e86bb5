"""Deprecated paths, kept for one release: `cxrkit.infer.*` re-exports what moved.

The classifier and what it is made of are `cxrkit.classifier` (films, screen, runtimes,
onnx_export, onnx_runtime, paths; `predict` is `cxrkit.classifier.api`); the jobs that use
one moved to their folders: `evaluate_model` and `external` are `cxrkit.evaluate.model`,
`drift` is `cxrkit.evaluate.drift`, `quantize` is `cxrkit.export.quantize`. No cxrkit
module imports this package.
"""

import warnings

warnings.warn(
    "cxrkit.infer is deprecated: use cxrkit.classifier, cxrkit.evaluate.model, "
    "cxrkit.evaluate.drift or cxrkit.export.quantize",
    DeprecationWarning,
    stacklevel=2,
)
