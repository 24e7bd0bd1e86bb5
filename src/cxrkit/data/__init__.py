"""Datasets: label tables, patient-level splits, decode cache, augmentation.

The torch Dataset of a table's films (`CXRDataset`, with the card's crop and resize) is
`cxrkit.classifier.dataset`: it applies the lung crop, which needs the lung model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

# Public name -> submodule. Imported on first use so that `cxr data summary` and table
# loading never pay for torch.
_EXPORTS = {
    "Record": "table",
    "LabelTable": "table",
    "load_table": "table",
    "make_splits": "splits",
    "write_split_csv": "splits",
    "read_split_csv": "splits",
    "DecodeCache": "cache",
    "build_augmentation": "augment",
    "build_augmentation_from_dict": "augment",
    "class_weights": "balance",
    "balanced_sampler": "balance",
    "summarize": "summary",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.data.augment import build_augmentation as build_augmentation
    from cxrkit.data.augment import build_augmentation_from_dict as build_augmentation_from_dict
    from cxrkit.data.balance import balanced_sampler as balanced_sampler
    from cxrkit.data.balance import class_weights as class_weights
    from cxrkit.data.cache import DecodeCache as DecodeCache
    from cxrkit.data.splits import make_splits as make_splits
    from cxrkit.data.splits import read_split_csv as read_split_csv
    from cxrkit.data.splits import write_split_csv as write_split_csv
    from cxrkit.data.summary import summarize as summarize
    from cxrkit.data.table import LabelTable as LabelTable
    from cxrkit.data.table import Record as Record
    from cxrkit.data.table import load_table as load_table


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
