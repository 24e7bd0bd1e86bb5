"""Load and save the polarity model: safetensors weights plus a JSON card; a shipped default."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.card.decision import is_probability_row
from cxrkit.errors import ModelFileError, ModelOutputError
from cxrkit.polarity.classes import CLASSES, LATERAL, NEGATIVE, NOT_CXR, POSITIVE

if TYPE_CHECKING:
    import torch

    from cxrkit.polarity.net import PolarityNet

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "polarity"
DEFAULT_MODEL = ASSET_DIR / "polarity.safetensors"
ARCHITECTURE = "polarity_net"


@dataclass
class PolarityModel:
    """A loaded polarity network (BatchNorm folded, eval mode) and its card.

    `probs(films)` takes films already squashed to `input_size` and returns (N, 4):
    softmax probabilities over positive / negative / not_cxr (they sum to 1), then
    p(lateral view), an independent sigmoid.
    """

    net: Any  # torch.nn.Module (a `ScreenGraph` runs an ONNX graph instead)
    card: ModelCard
    path: Path | None = None
    input_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.card = ModelCard.from_dict(self.card, source=str(self.path or "polarity card"))
        self.input_size = self.card.size

    def operating_point(self, name: str, default: float) -> float:
        """The card's named threshold `name` (`operating_points`), else `default`."""
        return float((self.card.operating_points or {}).get(name, default))

    @property
    def fix_threshold(self) -> float:
        """Polarity probability above which ingestion inverts a film (the model is 'sure')."""
        return self.operating_point("fix", 0.9)

    @property
    def not_cxr_threshold(self) -> float:
        """not_cxr probability at or above which an input is flagged as no chest film."""
        return self.operating_point("not_cxr", 0.5)

    @property
    def lateral_threshold(self) -> float:
        """p(lateral) at or above which a chest film is called a lateral view."""
        return self.operating_point("lateral", 0.5)

    def probs(self, films: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """(N, 4) for films (N, S, S) or (N, 1, S, S) in [0, 1]: class softmax, p(lateral)."""
        import torch

        x = torch.as_tensor(films, dtype=torch.float32)
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected films (N, S, S) or (N, 1, S, S), got {tuple(x.shape)}")
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                chunk = x[start : start + batch_size].contiguous(memory_format=torch.channels_last)
                out.append(logits_to_probs(self.net(chunk)))
        if not out:
            return np.zeros((0, len(CLASSES) + 1), np.float32)
        return torch.cat(out).numpy()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """A full-size film (h, w) in [0, 1] squashed to the model's input size."""
        from cxrkit.io import resize_film

        return resize_film(image, self.input_size, "squash")

    def image_probs(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 4) probabilities for full-size films (each (h, w) float in [0, 1])."""
        if not images:
            return np.zeros((0, len(CLASSES) + 1), np.float32)
        return self.probs(np.stack([self.prepare(im) for im in images]))


def logits_to_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, 4) logits -> class softmax over the first three columns, sigmoid of the view logit."""
    import torch

    return torch.cat(
        [torch.softmax(logits[:, :LATERAL], dim=1), torch.sigmoid(logits[:, LATERAL:])], dim=1
    )


def logits_to_probs_np(logits: np.ndarray) -> np.ndarray:
    """`logits_to_probs` in numpy (no torch): the same columns, to about 1 float32 ulp."""
    from cxrkit.models.outputs import logits_to_probs_np as columns

    x = np.asarray(logits, dtype=np.float32)
    return np.concatenate(
        [columns(x[:, :LATERAL], "multiclass"), columns(x[:, LATERAL:], "multilabel")], axis=1
    )


def require_valid_row(p: np.ndarray) -> np.ndarray:
    """`p` as float64 when it is one finite probability row in [0, 1], else
    `ModelOutputError`: a broken output must never become a polarity, view or verdict."""
    if not is_probability_row(p, len(CLASSES) + 1):
        raise ModelOutputError(
            "the screening model gave non-finite or out-of-range probabilities; no verdict"
        )
    return np.asarray(p, dtype=np.float64)


def polarity_of(p: np.ndarray) -> tuple[str, float]:
    """('positive' | 'negative', its probability given that the input is a chest film)."""
    pos, neg = float(p[POSITIVE]), float(p[NEGATIVE])
    total = max(pos + neg, 1e-12)
    return ("negative", neg / total) if neg > pos else ("positive", pos / total)


def not_cxr_probability(p: np.ndarray) -> float:
    """Probability that the input is not a chest film (any view)."""
    return float(p[NOT_CXR])


def view_of(p: np.ndarray, model: PolarityModel) -> tuple[str, float]:
    """('frontal' | 'lateral', p(lateral)) for one row of `PolarityModel.probs`.

    Raises ValueError when p(lateral) is not a finite probability: never a view label.
    """
    p_lat = float(p[LATERAL])
    if not 0.0 <= p_lat <= 1.0:  # also catches NaN
        raise ValueError(f"the polarity model gave p(lateral)={p_lat}: not a probability")
    return ("lateral" if p_lat >= model.lateral_threshold else "frontal"), p_lat


def save_polarity_model(
    path: str | Path, net: PolarityNet, card: ModelCard | dict[str, Any]
) -> Path:
    """Write an (unfused) `PolarityNet` and its card as one safetensors file. `card` is a
    `ModelCard` or its JSON fields (`class_names` default to the net's classes); the
    network fields (architecture, widths, view head) are set from `net`."""
    from cxrkit.models.model_file import save_model_file

    if not isinstance(card, ModelCard):
        card = ModelCard.from_dict({"class_names": list(CLASSES), **card}, source=str(path))
    full = card.merged(architecture=ARCHITECTURE, widths=list(net.widths), view_head=True)
    return save_model_file(path, net, full)


def load_polarity_model(path: str | Path | None = None) -> PolarityModel:
    """Load a polarity model file; with no path, the one shipped in the package (offline)."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _load_default() -> PolarityModel:
    if not DEFAULT_MODEL.is_file():
        raise ModelFileError(f"{DEFAULT_MODEL}: the shipped polarity model is missing")
    return _load(DEFAULT_MODEL)


def _load(path: Path) -> PolarityModel:
    import torch
    from safetensors.torch import load_file

    from cxrkit.polarity.net import PolarityNet, fuse_for_inference

    card = read_polarity_card(path)
    path = find_polarity_file(path)
    net = PolarityNet(widths=card.network.widths)
    try:
        net.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the polarity network ({exc})") from exc
    fused = fuse_for_inference(net).to(memory_format=torch.channels_last)
    return PolarityModel(fused, card, path)


def find_polarity_file(path: str | Path | None = None) -> Path:
    """The polarity model file at `path` (a file or run folder); the shipped one for None."""
    from cxrkit.models.model_file import find_model_file

    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise ModelFileError(f"{DEFAULT_MODEL}: the shipped polarity model is missing")
        return DEFAULT_MODEL
    return find_model_file(path)


def read_polarity_card(path: str | Path | None = None) -> ModelCard:
    """The checked card of a polarity model file (no weights, no torch); `ModelFileError`
    when it is no polarity model or predates the view head."""
    from cxrkit.models.model_file import read_card

    path = find_polarity_file(path)
    card = read_card(path)
    if card.architecture != ARCHITECTURE or card.network.widths is None:
        raise ModelFileError(f"{path}: not a polarity model ({card.architecture!r})")
    if not card.network.view_head:
        raise ModelFileError(
            f"{path}: a polarity model without the frontal/lateral view head (made before "
            "cxrkit learned views); retrain it with `cxr polarity train`"
        )
    return card
