"""Mixed precision for training: which autocast dtype, and whether a GradScaler is needed."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from cxrkit.errors import CxrkitError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """An autocast setting: `dtype` None means full fp32; `scaler` is True for fp16 only."""

    name: str
    device_type: str
    dtype: torch.dtype | None

    @property
    def scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range."""
        return self.dtype is torch.float16

    def autocast(self):
        """The autocast context for forward passes (a no-op in fp32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """`auto` is bf16 on GPUs that support it, else fp16 on GPUs, and fp32 on CPUs.

    `bf16` works on CPUs too (slower than fp32 on most of them; useful for tests);
    `fp16` needs a GPU.
    """
    if name not in PRECISIONS:
        raise CxrkitError(f"precision must be one of {PRECISIONS}, got {name!r}")
    cuda = device.type == "cuda"
    if name == "auto":
        if not cuda:
            return Precision("fp32", device.type, None)
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return Precision(name, device.type, None)
    if name == "fp16" and not cuda:
        raise CxrkitError("`precision` fp16 needs a GPU; use bf16 or fp32 on a CPU")
    return Precision(name, device.type, torch.bfloat16 if name == "bf16" else torch.float16)
