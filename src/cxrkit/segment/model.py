"""The lung U-Net (segmentation-models-pytorch on a timm encoder), its weights and its file."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrkit.errors import ModelFileError
from cxrkit.models.registry import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_ENCODER = "mobilenetv2_100"
DEFAULT_DECODER = (128, 64, 32, 16, 8)
DEFAULT_SIZE = 256
KIND = "lung_segmentation"


class LungNet(nn.Module):
    """U-Net over 1-channel films in [0, 1] -> (B, 1, H, W) lung logits.

    Like `CXRNet`, it repeats the gray channel to 3 and applies the ImageNet mean/std
    itself (buffers saved with the weights), so callers pass raw films.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        decoder_channels: tuple[int, ...] = DEFAULT_DECODER,
    ) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.encoder_name = encoder
        self.decoder_channels = tuple(int(c) for c in decoder_channels)
        self.unet = smp.Unet(
            encoder_name=f"tu-{encoder}",
            encoder_weights=None,
            in_channels=3,
            classes=1,
            decoder_channels=self.decoder_channels,
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @property
    def encoder(self) -> nn.Module:
        """The timm feature extractor inside the U-Net encoder."""
        return self.unet.encoder.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Films (B, 1, H, W) in [0, 1], H and W multiples of 32 -> logits (B, 1, H, W)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"LungNet expects films shaped (B, 1, H, W), got {tuple(x.shape)}")
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        return self.unet(x)


def load_encoder_weights(net: LungNet, path: str | Path) -> int:
    """Load an ImageNet checkpoint into the encoder through cxrkit.models' key renaming.

    Every encoder key must be present with the right shape (strict); keys of layers the
    U-Net encoder lacks (the classifier's `conv_head`/`bn2`/`classifier`) are dropped.
    Returns the number of tensors loaded. Files are read with `weights_only=True`.
    """
    from cxrkit.models.registry import get_spec
    from cxrkit.models.weights import read_state_dict, strip_prefixes

    encoder = net.encoder
    spec = get_spec(net.encoder_name)
    state = spec.weight_loader(strip_prefixes(read_state_dict(path)), encoder)
    expected = encoder.state_dict()
    head = ("conv_head.", "bn2.", "classifier.", "fc.", "head.")
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(head)}
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{path}: weights do not fit encoder {net.encoder_name!r} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]})"
        )
    encoder.load_state_dict(state, strict=True)
    return len(state)


def default_model_path() -> Path:
    """The lung model shipped inside the package (`cxrkit/assets/lungs/model.safetensors`)."""
    return Path(str(importlib.resources.files("cxrkit") / "assets" / "lungs" / "model.safetensors"))


def save_lung_model(path: str | Path, net: LungNet, card: dict[str, Any]) -> Path:
    """Write weights as float16 safetensors with the JSON card in its metadata."""
    from cxrkit.models.model_file import save_model_file

    half = LungNet(net.encoder_name, net.decoder_channels)
    half.load_state_dict(net.state_dict())
    half = half.half()
    full = {
        **card,
        "kind": KIND,
        "architecture": "unet",
        "encoder": net.encoder_name,
        "decoder_channels": list(net.decoder_channels),
        "weights_dtype": "float16",
    }
    return save_model_file(path, half, full)


def read_lung_card(path: str | Path) -> dict[str, Any]:
    """The JSON card of a lung model file (or a run folder holding `model.safetensors`)."""
    from cxrkit.models.model_file import read_card

    card = read_card(path)
    if card.get("kind") != KIND:
        raise ModelFileError(
            f"{path}: not a cxrkit lung segmentation model (kind {card.get('kind')})"
        )
    return card


def load_lung_net(path: str | Path) -> tuple[LungNet, dict[str, Any]]:
    """Rebuild the U-Net from a model file's card and load its weights (float32, eval mode)."""
    from safetensors.torch import load_file

    from cxrkit.models.model_file import find_model_file

    file = find_model_file(path)
    card = read_lung_card(file)
    net = LungNet(card["encoder"], tuple(card["decoder_channels"]))
    state = {k: v.float() for k, v in load_file(str(file), device="cpu").items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{file}: weights do not fit the card's U-Net ({exc})") from exc
    return net.eval(), card


@functools.lru_cache(maxsize=4)
def file_id(path: str) -> str:
    """First 16 hex digits of a file's sha256 (names the lung model in cache keys)."""
    if not Path(path).is_file():
        raise ModelFileError(f"{path}: lung model file not found")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
