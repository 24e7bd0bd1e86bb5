"""Deprecated path, kept for one release: use `cxrkit.export.quantize`."""

from cxrkit.export.quantize import (
    DEFAULT_CALIBRATION_FILMS,
    MAX_ACCURACY_LOSS,
    MAX_AUC_LOSS,
    compare,
    films_record,
    fp32_export,
    kept_in_float,
    pick,
    prepared_films,
    quantize_model,
    quantize_onnx,
    split_members,
)

__all__ = [
    "DEFAULT_CALIBRATION_FILMS",
    "MAX_ACCURACY_LOSS",
    "MAX_AUC_LOSS",
    "compare",
    "films_record",
    "fp32_export",
    "kept_in_float",
    "pick",
    "prepared_films",
    "quantize_model",
    "quantize_onnx",
    "split_members",
]
