"""Training: config, the epoch loop, features and finetune modes, the `train()` entry point."""

from cxrkit.train.config import TrainConfig, load_config
from cxrkit.train.runner import train

__all__ = ["TrainConfig", "load_config", "train"]
