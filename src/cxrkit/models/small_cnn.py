"""A small from-scratch CNN for 128x128 single-channel films (3 conv blocks + dense 512)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU -> maxpool 2x2 -> dropout."""

    def __init__(self, in_chans: int, out_chans: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)
        self.act = nn.ReLU()  # not in-place, so Grad-CAM hooks on it are safe
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.act(self.bn(self.conv(x)))))


class SmallCNN(nn.Module):
    """Three conv blocks (32/64/128 filters), adaptive pool to a fixed grid, dense 512.

    Its output, the 512-d vector after the dense layer and ReLU, is the model's feature.
    At the design size of 128 the grid (16x16) is exactly the map after three poolings;
    other sizes are pooled to the same grid so the dense layer always fits.
    """

    def __init__(
        self,
        in_chans: int = 1,
        widths: tuple[int, ...] = (32, 64, 128),
        grid: int = 16,
        feature_dim: int = 512,
        conv_dropout: float = 0.25,
        dense_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = (in_chans, *widths)
        self.blocks = nn.Sequential(
            *(ConvBlock(chans[i], chans[i + 1], conv_dropout) for i in range(len(widths)))
        )
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Linear(widths[-1] * grid * grid, feature_dim)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dense_dropout)
        self.num_features = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(x))
        return self.drop(self.act(self.fc(torch.flatten(x, 1))))
