"""create_model: refusing to guess weights, the hub door, and option checks."""

from __future__ import annotations

import pytest
import timm

from cxrkit.errors import ModelFileError
from cxrkit.models import ModelConfigError, create_model


def test_imagenet_backbone_without_weights_says_what_to_do() -> None:
    with pytest.raises(ModelFileError) as info:
        create_model("densenet121", 2)
    message = str(info.value)
    assert "no pretrained weights for 'densenet121'" in message
    assert "weights=PATH" in message and "'hub'" in message and "random_init=True" in message


def test_contradictory_or_bad_options_are_refused() -> None:
    with pytest.raises(ModelConfigError, match="not both"):
        create_model("resnet18", 2, weights="x.pth", random_init=True)
    with pytest.raises(ModelConfigError, match="num_classes"):
        create_model("small_cnn", 0)


def test_hub_asks_timm_for_pretrained_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real = timm.create_model

    def fake(name: str, pretrained: bool = False, **kwargs: object):
        calls.append({"name": name, "pretrained": pretrained, **kwargs})
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", fake)
    model = create_model("resnet18", 2, weights="hub")
    assert calls == [
        {"name": "resnet18", "pretrained": True, "num_classes": 0, "global_pool": "avg"}
    ]
    assert model.weights_source == "hub:resnet18"


def test_hub_failure_offline_is_a_model_file_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ModelFileError, match="pass weights=PATH"):
        create_model("resnet18", 2, weights="hub")
    with pytest.raises(ModelFileError, match="has no hub weights"):
        create_model("mobilenet_v2_035", 2, weights="hub")
