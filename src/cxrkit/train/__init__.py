"""Training: config, the epoch loop, features and finetune modes, the `train()` entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

# Public name -> submodule, imported on first use: `import cxrkit` binds this package
# without paying for torch (see cxrkit/__init__.py).
_EXPORTS = {
    "TrainConfig": "config",
    "load_config": "config",
    "TrainResult": "result",
    "train": "runner",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.train.config import TrainConfig as TrainConfig
    from cxrkit.train.config import load_config as load_config
    from cxrkit.train.result import TrainResult as TrainResult
    from cxrkit.train.runner import train as train


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
