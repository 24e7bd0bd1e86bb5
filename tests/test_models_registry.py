"""The backbone registry: names, aliases, specs agreeing with timm's pretrained configs."""

from __future__ import annotations

import pytest
import timm

from cxrkit.errors import CxrkitError
from cxrkit.models import BackboneSpec, UnknownBackboneError, get_spec, list_backbones

EXPECTED = {
    "small_cnn",
    "vgg16",
    "inception_v3",
    "xception",
    "mobilenet_v2_035",
    "mobilenet_v2",
    "efficientnet_lite0",
    "densenet121",
    "resnet18",
    "resnet50",
}


def test_every_backbone_is_registered() -> None:
    assert set(list_backbones()) == EXPECTED
    assert list_backbones() == sorted(list_backbones())


def test_aliases_and_spelling_resolve_to_the_same_spec() -> None:
    spec = get_spec("efficientnet_lite0")
    assert isinstance(spec, BackboneSpec)
    assert get_spec("EfficientNet-Lite0") is spec
    assert get_spec("tf_efficientnet_lite0") is spec
    assert get_spec("mobilenetv2_100").name == "mobilenet_v2"


def test_unknown_backbone_is_a_clear_cxrkit_error() -> None:
    with pytest.raises(UnknownBackboneError, match="did you mean 'densenet121'") as info:
        get_spec("densenet12")
    assert isinstance(info.value, CxrkitError)
    assert "resnet50" in str(info.value)


def test_small_cnn_spec_is_single_channel_and_needs_no_weights() -> None:
    spec = get_spec("small_cnn")
    assert (spec.in_chans, spec.input_size, spec.feature_dim) == (1, 128, 512)
    assert spec.mean == (0.5,) and spec.std == (0.5,)
    assert not spec.requires_weights and spec.hub_name is None


@pytest.mark.parametrize("name", sorted(EXPECTED - {"small_cnn", "mobilenet_v2_035"}))
def test_normalisation_matches_the_hub_weights(name: str) -> None:
    spec = get_spec(name)
    cfg = timm.get_pretrained_cfg(spec.hub_name)
    assert cfg is not None
    assert spec.mean == pytest.approx(cfg.mean)
    assert spec.std == pytest.approx(cfg.std)
    assert spec.input_size == cfg.input_size[-1]
