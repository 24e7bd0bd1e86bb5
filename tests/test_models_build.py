"""Every backbone builds once with random weights and runs on a small film."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from cxrkit.models import CXRNet, count_parameters, create_model, get_spec, list_backbones

NUM_CLASSES = 3
NO_BACKWARD = {"vgg16"}  # 138 M params: forward only, to keep the suite fast


def film_size(name: str) -> int:
    """Smallest convenient test size the architecture accepts."""
    return max(64, get_spec(name).min_input_size)


@pytest.fixture(scope="module")
def built() -> Callable[[str], CXRNet]:
    """Build each backbone at most once per module."""
    cache: dict[str, CXRNet] = {}

    def get(name: str) -> CXRNet:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = create_model(name, NUM_CLASSES, random_init=True).eval()
        return cache[name]

    yield get
    cache.clear()


@pytest.mark.parametrize("name", list_backbones())
def test_logits_features_and_cam_layer(name: str, built: Callable[[str], CXRNet]) -> None:
    model, spec = built(name), get_spec(name)
    size = film_size(name)
    x = torch.rand(2, 1, size, size)
    seen: dict[str, torch.Tensor] = {}

    def keep(module: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        seen["act"] = out
        if out.requires_grad:
            out.register_hook(lambda g: seen.__setitem__("grad", g))

    cam = model.get_cam_layer()
    assert isinstance(cam, torch.nn.Module)
    handle = cam.register_forward_hook(keep)
    try:
        with torch.set_grad_enabled(name not in NO_BACKWARD):
            logits = model(x)
            assert logits.shape == (2, NUM_CLASSES)
            assert torch.isfinite(logits).all()
            if name not in NO_BACKWARD:
                logits[:, 0].sum().backward()
    finally:
        handle.remove()
    act = seen["act"]
    assert act.ndim == 4 and act.shape[0] == 2, act.shape
    if name not in NO_BACKWARD:
        assert seen["grad"].shape == act.shape
    with torch.no_grad():
        assert model.features(x).shape == (2, spec.feature_dim)
    assert model.arch == spec.name and model.cam_layer == spec.cam_layer
    assert count_parameters(model) > count_parameters(model.head) > 0
