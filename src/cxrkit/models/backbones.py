"""The registered backbones: a small custom CNN and timm ImageNet models as feature extractors."""

from __future__ import annotations

import timm
from torch import nn

from cxrkit.models import convert
from cxrkit.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    register_backbone,
)
from cxrkit.models.small_cnn import SmallCNN


def timm_features(name: str, pretrained: bool, drop_rate: float | None) -> nn.Module:
    """A timm model without classifier: (B, 3, H, W) -> globally pooled features (B, D)."""
    kwargs: dict[str, object] = {"num_classes": 0, "global_pool": "avg"}
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    return timm.create_model(name, pretrained=pretrained, **kwargs)


@register_backbone(
    "small_cnn",
    input_size=128,
    mean=(0.5,),
    std=(0.5,),
    in_chans=1,
    feature_dim=512,
    cam_layer="backbone.blocks.2.act",
    requires_weights=False,
    min_input_size=8,
    aliases=("cnn", "simple_cnn"),
    description="3 conv blocks (32/64/128) + dense 512, from scratch, 1-channel 128x128",
)
def small_cnn(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """The custom small CNN; it has no pretrained weights."""
    if pretrained:
        raise ValueError("small_cnn has no pretrained weights")
    if drop_rate is None:
        return SmallCNN()
    return SmallCNN(conv_dropout=drop_rate, dense_dropout=drop_rate)


@register_backbone(
    "vgg16",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=4096,
    cam_layer="backbone.features.29",
    weight_loader=convert.torchvision_vgg_to_timm,
    hub_name="vgg16",
    description="VGG-16 (138 M params); features = fc7 (4096)",
)
def vgg16(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `vgg16` (accepts torchvision VGG-16 files)."""
    return timm_features("vgg16", pretrained, drop_rate)


@register_backbone(
    "inception_v3",
    input_size=299,
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    in_chans=3,
    feature_dim=2048,
    cam_layer="backbone.Mixed_7c",
    hub_name="inception_v3",
    min_input_size=75,
    aliases=("inceptionv3",),
    description="Inception-v3, 299x299",
)
def inception_v3(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `inception_v3` (torchvision keys match; `AuxLogits` are dropped)."""
    return timm_features("inception_v3", pretrained, drop_rate)


_XCEPTION = "legacy_xception" if timm.list_models("legacy_xception") else "xception41"


@register_backbone(
    "xception",
    input_size=299,
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    in_chans=3,
    feature_dim=2048,
    cam_layer="backbone.act4" if _XCEPTION == "legacy_xception" else "backbone.act",
    weight_loader=convert.cadene_xception_to_timm,
    hub_name=_XCEPTION,
    min_input_size=71,
    aliases=("legacy_xception",),
    description=f"Xception (timm {_XCEPTION}), 299x299",
)
def xception(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `legacy_xception` (Chollet's original), or `xception41` where timm lacks it."""
    return timm_features(_XCEPTION, pretrained, drop_rate)


@register_backbone(
    "mobilenet_v2",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=1280,
    cam_layer="backbone.bn2",
    weight_loader=convert.mobilenetv2_to_timm,
    hub_name="mobilenetv2_100",
    aliases=("mobilenetv2", "mobilenetv2_100", "mobilenet_v2_100"),
    description="MobileNetV2 width 1.0 (loads torchvision / tonylins files)",
)
def mobilenet_v2(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `mobilenetv2_100`."""
    return timm_features("mobilenetv2_100", pretrained, drop_rate)


@register_backbone(
    "mobilenet_v2_035",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=1280,
    cam_layer="backbone.bn2",
    weight_loader=convert.mobilenetv2_to_timm,
    hub_name=None,  # timm publishes no weights for width 0.35
    aliases=("mobilenetv2_035",),
    description="MobileNetV2 width 0.35 (0.4 M params in the body)",
)
def mobilenet_v2_035(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `mobilenetv2_035`."""
    return timm_features("mobilenetv2_035", pretrained, drop_rate)


@register_backbone(
    "efficientnet_lite0",
    input_size=224,
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    in_chans=3,
    feature_dim=1280,
    cam_layer="backbone.bn2",
    weight_loader=convert.lukemelas_efficientnet_to_timm,
    hub_name="tf_efficientnet_lite0",
    aliases=("tf_efficientnet_lite0", "efficientnet-lite0"),
    description="EfficientNet-Lite0, TF 'same' padding (loads lukemelas-style files)",
)
def efficientnet_lite0(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `tf_efficientnet_lite0` (TF padding, matching TF-converted weights)."""
    return timm_features("tf_efficientnet_lite0", pretrained, drop_rate)


@register_backbone(
    "densenet121",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=1024,
    cam_layer="backbone.features.norm5",
    weight_loader=convert.torchvision_densenet_to_timm,
    hub_name="densenet121",
    description="DenseNet-121 (CheXNet's backbone)",
)
def densenet121(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `densenet121` (accepts torchvision files, old and new key styles)."""
    return timm_features("densenet121", pretrained, drop_rate)


@register_backbone(
    "resnet18",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=512,
    cam_layer="backbone.layer4",
    hub_name="resnet18",
    description="ResNet-18",
)
def resnet18(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `resnet18` (torchvision keys match)."""
    return timm_features("resnet18", pretrained, drop_rate)


@register_backbone(
    "resnet50",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    in_chans=3,
    feature_dim=2048,
    cam_layer="backbone.layer4",
    hub_name="resnet50",
    description="ResNet-50",
)
def resnet50(*, pretrained: bool = False, drop_rate: float | None = None) -> nn.Module:
    """timm `resnet50` (torchvision keys match)."""
    return timm_features("resnet50", pretrained, drop_rate)
