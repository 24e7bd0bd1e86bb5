"""The lung U-Net (segmentation-models-pytorch on a timm encoder), its weights and its file."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrkit.card import ModelCard
from cxrkit.errors import ModelFileError
from cxrkit.models.registry import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_ENCODER = "mobilenetv2_100"
DEFAULT_DECODER = (128, 64, 32, 16, 8)
DEFAULT_SIZE = 256
KIND = "lung_segmentation"
# Weight storage of a lung model file: float16, or int8 per output channel (with a float32
# scale per channel, `<name>.int8_scale`) for every weight of 2+ dims except depthwise
# convolutions, which lose accuracy in int8; the rest stays float16.
WEIGHT_DTYPES = ("float16", "int8")
INT8_SCALE = ".int8_scale"


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


class LungEnsemble(nn.Module):
    """Several lung U-Nets averaged: logit of the mean of their probabilities.

    It returns logits like `LungNet`, so thresholds, TTA and clean-up apply unchanged.
    """

    def __init__(self, members: list[LungNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two lung U-Nets")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Films (B, 1, H, W) in [0, 1] -> logits of the members' mean probability."""
        probs = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(dim=0)
        return torch.logit(probs, eps=1e-6)


def pack_weights(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """A state dict in the file's storage `dtype` (one of WEIGHT_DTYPES)."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights dtype {dtype!r}: choose one of {WEIGHT_DTYPES}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif dtype == "int8" and value.ndim >= 2 and value.shape[1] > 1:
            dims = tuple(range(1, value.ndim))
            scale = value.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / 127.0
            out[key] = torch.round(value / scale).clamp(-127, 127).to(torch.int8)
            out[key + INT8_SCALE] = scale.float()
        else:
            out[key] = value.half()
    return out


def unpack_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 weights from a file's stored tensors (float16 or int8 with scales)."""
    out = {}
    for key, value in state.items():
        if key.endswith(INT8_SCALE):
            continue
        scale = state.get(key + INT8_SCALE)
        if scale is not None:
            out[key] = value.float() * scale
        else:
            out[key] = value.float() if value.is_floating_point() else value
    return out


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


def _net_spec(net: LungNet, dtype: str) -> dict[str, Any]:
    return {
        "encoder": net.encoder_name,
        "decoder_channels": list(net.decoder_channels),
        "weights_dtype": dtype,
    }


def save_lung_model(
    path: str | Path,
    net: LungNet | LungEnsemble,
    card: ModelCard | dict[str, Any],
    dtypes: list[str] | None = None,
) -> Path:
    """Write weights as safetensors with the card in its metadata.

    `card` is a `ModelCard` or its JSON fields (validated here: an invalid card is never
    written); the network's own fields (`kind`, `architecture`, encoder / members) are
    set from `net`. A `LungNet` is stored in float16. A `LungEnsemble` is stored as
    `members.<i>.*` tensors, member i in `dtypes[i]` (default: the card's `members`
    dtypes, else float16).
    """
    from cxrkit.models.model_file import save_model_file

    lung = ModelCard.from_dict(card, source=str(path))
    if isinstance(net, LungNet):
        spec = _net_spec(net, "float16")
        full = lung.merged(kind=KIND, architecture="unet", members=None, **spec)
        return save_model_file(path, pack_weights(net.state_dict(), "float16"), full)
    members = list(net.members)
    if dtypes is None:
        specs = lung.network.members or ({},) * len(members)
        dtypes = [str(m.get("weights_dtype", "float16")) for m in specs]
    if len(dtypes) != len(members):
        raise ValueError(f"{len(members)} members but {len(dtypes)} weight dtypes")
    state: dict[str, torch.Tensor] = {}
    for i, (member, dtype) in enumerate(zip(members, dtypes, strict=True)):
        packed = pack_weights(member.state_dict(), dtype)
        state.update({f"members.{i}.{k}": v for k, v in packed.items()})
    full = lung.merged(
        kind=KIND,
        architecture="unet_ensemble",
        members=[_net_spec(m, d) for m, d in zip(members, dtypes, strict=True)],
        encoder=None,
        decoder_channels=None,
        weights_dtype=None,
    )
    return save_model_file(path, state, full)


def read_lung_card(path: str | Path) -> ModelCard:
    """The card of a lung model file (or a run folder holding `model.safetensors`)."""
    from cxrkit.models.model_file import read_card

    card = read_card(path)
    if card.network.kind != KIND:
        raise ModelFileError(
            f"{path}: not a cxrkit lung segmentation model (kind {card.network.kind})"
        )
    if card.task != "segmentation":
        raise ModelFileError(f"{path}: a lung model card of task {card.task!r}, not segmentation")
    return card


def load_lung_net(path: str | Path) -> tuple[LungNet | LungEnsemble, ModelCard]:
    """Rebuild the U-Net (or ensemble of U-Nets) from a model file's card and load its
    weights (float32, eval mode)."""
    from safetensors.torch import load_file

    from cxrkit.models.model_file import find_model_file

    file = find_model_file(path)
    card = read_lung_card(file)
    spec = card.network
    net: LungNet | LungEnsemble
    if card.architecture == "unet_ensemble":
        specs = spec.members or ()
        if len(specs) < 2:
            raise ModelFileError(f"{file}: an ensemble card lists {len(specs)} member(s)")
        try:
            nets = [LungNet(m["encoder"], tuple(m["decoder_channels"])) for m in specs]
        except KeyError as exc:
            raise ModelFileError(f"{file}: an ensemble member's card lacks {exc}") from exc
        net = LungEnsemble(nets)
    else:
        if spec.encoder is None or spec.decoder_channels is None:
            raise ModelFileError(f"{file}: the lung card lacks 'encoder' or 'decoder_channels'")
        net = LungNet(spec.encoder, spec.decoder_channels)
    state = unpack_weights(load_file(str(file), device="cpu"))
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
