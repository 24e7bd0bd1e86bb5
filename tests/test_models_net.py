"""CXRNet does its own channel repeat and normalisation; its head can be trained alone."""

from __future__ import annotations

import pytest
import torch

from cxrkit.models import ClassifierHead, CXRNet, create_model


@pytest.fixture(scope="module")
def cnn() -> CXRNet:
    torch.manual_seed(0)
    return create_model("small_cnn", 2).eval()


@pytest.fixture(scope="module")
def resnet() -> CXRNet:
    torch.manual_seed(0)
    return create_model("resnet18", 4, random_init=True, head_hidden=16, dropout=0.2).eval()


def test_grey_film_is_repeated_and_normalised_inside(resnet: CXRNet) -> None:
    film = torch.full((2, 1, 64, 64), 0.5)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    manual = (film.repeat(1, 3, 1, 1) - mean) / std
    with torch.no_grad():
        expected = resnet.head(resnet.backbone(manual))
        assert torch.allclose(resnet(film), expected, atol=1e-6)
        assert torch.allclose(resnet.preprocess(film), manual)


def test_single_channel_model_normalises_with_half(cnn: CXRNet) -> None:
    film = torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        assert torch.allclose(cnn(film), cnn.head(cnn.backbone((film - 0.5) / 0.5)))
    assert cnn.preprocess(film).shape == (1, 1, 128, 128)


def test_small_cnn_runs_on_sizes_other_than_128(cnn: CXRNet) -> None:
    with torch.no_grad():
        for size in (32, 200):
            assert cnn.features(torch.rand(1, 1, size, size)).shape == (1, 512)


def test_mean_and_std_travel_with_the_weights(cnn: CXRNet) -> None:
    state = cnn.state_dict()
    assert state["mean"].flatten().tolist() == [0.5]
    assert state["std"].flatten().tolist() == [0.5]


def test_bad_inputs_give_clear_errors(cnn: CXRNet) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        cnn(torch.rand(1, 128, 128))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        cnn(torch.rand(1, 2, 128, 128))
    with pytest.raises(TypeError, match="float"):
        cnn(torch.zeros(1, 1, 128, 128, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 8 px"):
        cnn(torch.rand(1, 1, 4, 4))


def test_head_trained_on_cached_features_loads_into_the_model(resnet: CXRNet) -> None:
    films = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        cached = resnet.features(films)
    head = ClassifierHead(resnet.feature_dim, 4, hidden=16, dropout=0.2)
    torch.nn.init.constant_(head.fc.bias, 1.0)
    resnet.head.load_state_dict(head.state_dict())
    head.eval()
    with torch.no_grad():
        assert torch.allclose(resnet(films), head(cached), atol=1e-6)
    assert set(head.state_dict()) == {"hidden.weight", "hidden.bias", "fc.weight", "fc.bias"}


def test_config_describes_the_model(resnet: CXRNet) -> None:
    cfg = resnet.config()
    assert cfg["arch"] == "resnet18" and cfg["num_classes"] == 4 and cfg["head_hidden"] == 16
    assert cfg["input_size"] == 224 and cfg["feature_dim"] == 512
    assert cfg["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert cfg["weights_source"] == "random"
