"""`CXRNet`: grayscale film in [0, 1] -> channel repeat -> normalise -> backbone -> head."""

from __future__ import annotations

import torch
from torch import nn

from cxrkit.models.registry import BackboneSpec


class ClassifierHead(nn.Module):
    """dropout -> Linear, or dropout -> Linear(hidden) -> ReLU -> dropout -> Linear.

    Keys are the same for every config (`fc`, plus `hidden` for the MLP), so a head
    trained alone on cached features loads straight into `CXRNet.head`.
    """

    def __init__(
        self, in_features: int, num_classes: int, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.drop = nn.Dropout(dropout)
        self.hidden = nn.Linear(in_features, hidden) if hidden else None
        self.act = nn.ReLU() if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        if self.hidden is not None:
            x = self.drop(self.act(self.hidden(x)))
        return self.fc(x)


class CXRNet(nn.Module):
    """A classifier over 1-channel films in [0, 1]; callers never normalise by hand.

    `forward(x)` and `features(x)` take x of shape (B, 1, H, W) (or already (B, in_chans,
    H, W)), repeat the channel to `in_chans`, normalise with the `mean`/`std` buffers
    (saved with the weights), and run the backbone; `forward` adds the head -> logits.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        spec: BackboneSpec,
        num_classes: int,
        head_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.arch = spec.name
        self.num_classes = num_classes
        self.in_chans = spec.in_chans
        self.input_size = spec.input_size
        self.min_input_size = spec.min_input_size
        self.feature_dim = spec.feature_dim
        self.cam_layer = spec.cam_layer
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.weights_source = "random"
        self.backbone = backbone
        self.head = ClassifierHead(spec.feature_dim, num_classes, head_hidden, dropout)
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1))
        cam = self.get_cam_layer()
        if getattr(cam, "inplace", False):
            cam.inplace = False  # in-place output breaks backward hooks used by Grad-CAM

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Films (B, 1, H, W) in [0, 1] -> normalised (B, in_chans, H, W) backbone input."""
        if x.ndim != 4 or x.shape[1] not in (1, self.in_chans):
            raise ValueError(f"{self.arch} expects films shaped (B, 1, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{self.arch} expects float films in [0, 1], got {x.dtype}")
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"{self.arch} needs films of at least {self.min_input_size} px, "
                f"got {tuple(x.shape[-2:])} (its native size is {self.input_size})"
            )
        x = x.expand(-1, self.in_chans, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, feature_dim) of films (B, 1, H, W) in [0, 1]."""
        return self.backbone(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of films (B, 1, H, W) in [0, 1]."""
        return self.head(self.features(x))

    def get_cam_layer(self) -> nn.Module:
        """The module named by `cam_layer` (the last conv block, for Grad-CAM)."""
        return self.get_submodule(self.cam_layer)

    def config(self) -> dict[str, object]:
        """JSON-ready description of the model (architecture, preprocessing, head)."""
        return {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "head_hidden": self.head_hidden,
            "dropout": self.dropout,
            "in_chans": self.in_chans,
            "input_size": self.input_size,
            "mean": [float(v) for v in self.mean.flatten()],
            "std": [float(v) for v in self.std.flatten()],
            "feature_dim": self.feature_dim,
            "cam_layer": self.cam_layer,
            "weights_source": self.weights_source,
        }
