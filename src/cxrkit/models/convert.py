"""Key renaming from other libraries' checkpoint layouts to the timm backbones cxrkit builds.

Each converter takes a raw state_dict and the (already built) backbone, and returns a new
state_dict. Keys it does not recognise pass through unchanged, so a checkpoint that already
uses timm's names loads as is, and a foreign key shows up later as "unexpected".
"""

from __future__ import annotations

import re

from torch import nn

from cxrkit.models.registry import StateDict

# --- EfficientNet / MobileNetV2 family (timm `EfficientNet` class) -------------------------


def _block_slots(backbone: nn.Module) -> list[tuple[int, int, bool]]:
    """(stage, index, is_inverted_residual) of each timm block, in flat order."""
    slots = []
    for s, stage in enumerate(backbone.blocks):  # type: ignore[arg-type]
        for i, block in enumerate(stage):
            slots.append((s, i, hasattr(block, "conv_pwl")))
    return slots


def _index(text: str) -> int:
    """A block number, or -1 (matches no block) for anything else."""
    return int(text) if text.isdigit() else -1


# lukemelas/efficientnet_pytorch names -> timm names.
_LUKE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LUKE_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LUKE_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def lukemelas_efficientnet_to_timm(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """Rename `efficientnet_pytorch` keys (`_blocks.N._depthwise_conv`...) to timm's layout.

    `_blocks.N` is the N-th block in flat order; it becomes `blocks.S.I` using the stage
    lengths of the timm model (EfficientNet-Lite0: 1, 2, 2, 3, 3, 4, 1).
    """
    if not any(k.startswith("_blocks.") for k in state_dict):
        return dict(state_dict)
    slots = _block_slots(backbone)
    out: StateDict = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        new = key
        if parts[0] == "_blocks" and len(parts) >= 4 and 0 <= _index(parts[1]) < len(slots):
            s, i, inverted = slots[_index(parts[1])]
            table = _LUKE_IR if inverted else _LUKE_DS
            if parts[2] in table:
                new = ".".join(["blocks", str(s), str(i), table[parts[2]], *parts[3:]])
        elif parts[0] in _LUKE_TOP:
            new = ".".join([_LUKE_TOP[parts[0]], *parts[1:]])
        out[new] = value
    return out


# MobileNetV2 `features.N.conv.X` sub-layer names, for the two known layouts.
# tonylins/pytorch-mobilenet-v2 uses a flat Sequential (ReLU6 at 2 and 5 hold no weights);
# torchvision nests conv+bn pairs as ConvBNReLU modules.
_MBV2_DS = {
    "tonylins": {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"},
    "torchvision": {"0.0": "conv_dw", "0.1": "bn1", "1": "conv_pw", "2": "bn2"},
}
_MBV2_IR = {
    "tonylins": {
        "0": "conv_pw",
        "1": "bn1",
        "3": "conv_dw",
        "4": "bn2",
        "6": "conv_pwl",
        "7": "bn3",
    },
    "torchvision": {
        "0.0": "conv_pw",
        "0.1": "bn1",
        "1.0": "conv_dw",
        "1.1": "bn2",
        "2": "conv_pwl",
        "3": "bn3",
    },
}
_TV_NESTED = re.compile(r"^features\.\d+\.conv\.0\.0\.")


def mobilenetv2_to_timm(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """Rename torchvision / tonylins MobileNetV2 keys (`features.N...`) to timm's layout.

    `features.0.{0,1}` -> `conv_stem`, `bn1`; `features.{last}.{0,1}` -> `conv_head`, `bn2`;
    `features.N.conv.X` (1 <= N < last) -> `blocks.S.I.<name>` by the tables above;
    `classifier.1` -> `classifier`.
    """
    if not any(k.startswith("features.") for k in state_dict):
        return dict(state_dict)
    layout = "torchvision" if any(_TV_NESTED.match(k) for k in state_dict) else "tonylins"
    slots = _block_slots(backbone)
    last = len(slots) + 1
    ends = {"0.0": "conv_stem", "0.1": "bn1", f"{last}.0": "conv_head", f"{last}.1": "bn2"}
    out: StateDict = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        new = key
        if parts[0] == "features" and len(parts) >= 4:
            n = _index(parts[1])
            if ".".join(parts[1:3]) in ends:
                new = ".".join([ends[".".join(parts[1:3])], *parts[3:]])
            elif parts[2] == "conv" and 1 <= n <= len(slots):
                s, i, inverted = slots[n - 1]
                table = (_MBV2_IR if inverted else _MBV2_DS)[layout]
                rest = parts[3:]
                depth = 2 if ".".join(rest[:2]) in table else 1
                sub = ".".join(rest[:depth])
                if sub in table:
                    new = ".".join(["blocks", str(s), str(i), table[sub], *rest[depth:]])
        elif parts[0] == "classifier" and len(parts) == 3:
            new = f"classifier.{parts[2]}"
        out[new] = value
    return out


# --- torchvision VGG / DenseNet, Cadene Xception ------------------------------------------


def torchvision_vgg_to_timm(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """torchvision VGG: `classifier.0` / `classifier.3` (Linear) -> timm `pre_logits.fc1` /
    `pre_logits.fc2` (7x7 and 1x1 convs, weights reshaped); `classifier.6` -> `head.fc`."""
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith("classifier.0."):
            key = "pre_logits.fc1." + key.split(".", 2)[2]
            if value.ndim == 2:
                value = value.reshape(value.shape[0], -1, 7, 7)
        elif key.startswith("classifier.3."):
            key = "pre_logits.fc2." + key.split(".", 2)[2]
            if value.ndim == 2:
                value = value.reshape(value.shape[0], value.shape[1], 1, 1)
        elif key.startswith("classifier.6."):
            key = "head.fc." + key.split(".", 2)[2]
        out[key] = value
    return out


_TV_DENSE = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$"
)


def torchvision_densenet_to_timm(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """Old torchvision DenseNet files: `denselayerK.norm.1.weight` -> `denselayerK.norm1.weight`."""
    return {_TV_DENSE.sub(r"\1\2", k): v for k, v in state_dict.items()}


def cadene_xception_to_timm(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """Cadene `pretrainedmodels` Xception: 2-d `pointwise` weights become 1x1 convs."""
    return {
        k: (v[:, :, None, None] if "pointwise" in k and v.ndim == 2 else v)
        for k, v in state_dict.items()
    }
