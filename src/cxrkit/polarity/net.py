"""`PolarityNet`: a tiny CNN for film polarity, not-a-chest-film and the view (frontal / lateral).

Two heads share one trunk. The class head is a softmax over `CLASSES` (positive, negative,
not_cxr); the view head is one independent logit, p(lateral | chest film). A lateral film
can be inverted just like a frontal one, so view and polarity are separate questions: a
fourth softmax class "lateral" would have to swallow the polarity of every lateral film.
"""

from __future__ import annotations

import torch
from torch import nn

from cxrkit.polarity.classes import (  # noqa: F401  (the columns, re-exported)
    CLASSES,
    LATERAL,
    NEGATIVE,
    NOT_CXR,
    POSITIVE,
    VIEWS,
)


def conv_bn(in_chans: int, out_chans: int, stride: int, kernel: int = 3) -> nn.Sequential:
    """conv (no bias) -> BatchNorm -> ReLU; 3x3 convs are padded, a patchify stem is not."""
    pad = 1 if kernel == 3 else 0
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel, stride=stride, padding=pad, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    )


class PolarityNet(nn.Module):
    """Films (B, 1, S, S) in [0, 1] -> logits (B, 4): `CLASSES`, then the lateral-view logit.

    A 4x4 stride-4 patchify stem, four 3x3 convs (two of stride 2), then global average
    and max pooling: the decision is mostly global (bright bone and mediastinum against
    dark air, or the reverse), so a 64x64 input is enough. About 0.16 M parameters and
    4 M multiply-adds per 64x64 film.
    """

    def __init__(self, widths: tuple[int, ...] = (24, 48, 48, 96, 96), dropout: float = 0.2):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"PolarityNet needs 5 widths, got {widths}")
        strides = (4, 2, 1, 2, 1)
        chans = (1, *widths)
        self.features = nn.Sequential(
            conv_bn(1, widths[0], 4, kernel=4),
            *(conv_bn(chans[i], chans[i + 1], strides[i]) for i in range(1, len(widths))),
        )
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * widths[-1], len(CLASSES))
        self.view = nn.Linear(2 * widths[-1], 1)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 4) for films (B, 1, S, S) in [0, 1]: three class logits, one view logit."""
        x = self.features((x - 0.5) * 4.0)
        pooled = self.drop(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1))
        return torch.cat([self.fc(pooled), self.view(pooled)], dim=1)


def fuse_for_inference(net: PolarityNet) -> nn.Module:
    """An eval-mode copy with each BatchNorm folded into its conv (same outputs, faster)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(net).eval()
    for block in fused.features:
        block[0] = fuse_conv_bn_eval(block[0], block[1])
        block[1] = nn.Identity()
    return fused
