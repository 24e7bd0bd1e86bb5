"""cxrkit: from a folder of chest X-rays to a trained, evaluated, explained and served model."""

from cxrkit.errors import CxrkitError, DatasetError, ImageReadError, ModelFileError

__version__ = "0.1.0"

__all__ = [
    "CxrkitError",
    "DatasetError",
    "ImageReadError",
    "ModelFileError",
    "__version__",
]
