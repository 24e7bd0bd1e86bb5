"""Out-of-distribution score: how far a film's CNN codes lie from the training films' codes.

The model file keeps a Gaussian summary of the training films' pooled backbone features
(the classifier head's input): their mean, the top-k principal directions with their
variances, and one variance for everything else (probabilistic PCA; Tipping & Bishop
1999). A film's score is its Mahalanobis distance under that Gaussian divided by
sqrt(feature dimension), so scores are comparable across backbones. The flag threshold is
a high quantile of the validation films' scores (films the model never trained on, from
the same source), so about 1 - quantile of in-distribution films are flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cxrkit.models.outputs import OOD_WARNING, ood_fields  # noqa: F401  (their torch-free home)

#: Prefix of the reference's tensors inside a model file (kept apart from the network's).
TENSOR_PREFIX = "ood."
DEFAULT_COMPONENTS = 64
DEFAULT_QUANTILE = 0.99
#: Bin edges of the stored validation-score histogram (drift reports compare against it).
HISTOGRAM_BINS = 40


@dataclass
class FeatureReference:
    """Gaussian summary of training features plus the validation-set flag threshold."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) orthonormal rows
    variances: np.ndarray  # (k,)
    residual_variance: float
    threshold: float
    quantile: float
    val_histogram: np.ndarray  # (HISTOGRAM_BINS,) counts of validation scores
    val_edges: np.ndarray  # (HISTOGRAM_BINS + 1,)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N,) distance of each feature row from the training films (larger = stranger)."""
        x = np.asarray(features, dtype=np.float64) - self.mean
        proj = x @ self.components.T
        inside = np.sum(proj**2 / self.variances, axis=1)
        residual = np.maximum(np.sum(x**2, axis=1) - np.sum(proj**2, axis=1), 0.0)
        d2 = inside + residual / self.residual_variance
        return np.sqrt(d2 / x.shape[1]).astype(np.float32)

    def flags(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, flagged) for feature rows: flagged where score > threshold."""
        scores = self.score(features)
        return scores, scores > self.threshold

    def card(self) -> dict[str, Any]:
        """The JSON part kept in the model card (the arrays travel as tensors)."""
        return {
            "method": "ppca-mahalanobis",
            "features": "pooled backbone features (the head's input)",
            "components": int(self.components.shape[0]),
            "threshold": float(self.threshold),
            "quantile": float(self.quantile),
            "val_histogram": [int(v) for v in self.val_histogram],
            "val_edges": [round(float(v), 5) for v in self.val_edges],
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """The arrays as named tensors for the model file (prefix `ood.`)."""
        arrays = {
            "mean": self.mean,
            "components": self.components,
            "variances": self.variances,
            "residual_variance": np.array([self.residual_variance]),
            "threshold": np.array([self.threshold, self.quantile]),
            "val_histogram": self.val_histogram,
            "val_edges": self.val_edges,
        }
        return {
            TENSOR_PREFIX + k: torch.as_tensor(np.asarray(v, dtype=np.float32))
            for k, v in arrays.items()
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> FeatureReference | None:
        """Rebuild from a model file's tensors; None when the file has no reference."""
        t = {k[len(TENSOR_PREFIX) :]: v.double().numpy() for k, v in tensors.items()}
        if "mean" not in t:
            return None
        return cls(
            mean=t["mean"],
            components=t["components"],
            variances=t["variances"],
            residual_variance=float(t["residual_variance"][0]),
            threshold=float(t["threshold"][0]),
            quantile=float(t["threshold"][1]),
            val_histogram=t["val_histogram"],
            val_edges=t["val_edges"],
        )


def fit_feature_reference(
    train_features: np.ndarray,
    val_features: np.ndarray,
    *,
    components: int = DEFAULT_COMPONENTS,
    quantile: float = DEFAULT_QUANTILE,
) -> FeatureReference:
    """Fit the Gaussian on training features, set the flag threshold on validation ones."""
    x = np.asarray(train_features, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 2:
        raise ValueError("need at least two training feature rows")
    mean = x.mean(axis=0)
    centred = x - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    eig = s**2 / max(len(x) - 1, 1)
    k = int(min(components, len(eig) - 1, x.shape[1] - 1))
    k = max(k, 1)
    rest = eig[k:]
    floor = max(float(eig[0]) * 1e-6, 1e-12)
    # The rest of the spectrum (including directions unseen in training) shares one variance.
    residual = max(float(rest.sum()) / max(x.shape[1] - k, 1), floor)
    ref = FeatureReference(
        mean=mean,
        components=vt[:k],
        variances=np.maximum(eig[:k], floor),
        residual_variance=residual,
        threshold=np.inf,
        quantile=quantile,
        val_histogram=np.zeros(HISTOGRAM_BINS),
        val_edges=np.linspace(0, 1, HISTOGRAM_BINS + 1),
    )
    val = np.asarray(val_features, dtype=np.float64)
    val = val[np.isfinite(val).all(axis=1)]
    scores = ref.score(val) if len(val) else ref.score(x)
    ref.threshold = float(np.quantile(scores, quantile))
    top = max(float(np.max(scores)), ref.threshold) * 3.0
    ref.val_histogram, ref.val_edges = np.histogram(scores, bins=HISTOGRAM_BINS, range=(0, top))
    return ref


def load_feature_reference(model_path: Any) -> FeatureReference | None:
    """The feature reference stored in a model file, or None (older files have none)."""
    from cxrkit.models.model_file import read_extra_tensors

    return FeatureReference.from_tensors(read_extra_tensors(model_path, TENSOR_PREFIX))


class OodScorer(torch.nn.Module):
    """`FeatureReference.score` as a torch module, so an exported graph computes it too."""

    def __init__(self, reference: FeatureReference) -> None:
        super().__init__()
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        self.register_buffer("mean", as_t(reference.mean))
        self.register_buffer("components", as_t(reference.components))
        self.register_buffer("inv_variances", as_t(1.0 / reference.variances))
        self.inv_residual = float(1.0 / reference.residual_variance)
        self.dim = int(reference.mean.shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) scores of pooled features (B, D)."""
        x = features.float() - self.mean
        proj = x @ self.components.T
        proj_sq = proj * proj
        inside = (proj_sq * self.inv_variances).sum(dim=1)
        residual = torch.clamp((x * x).sum(dim=1) - proj_sq.sum(dim=1), min=0.0)
        return torch.sqrt((inside + residual * self.inv_residual) / self.dim)


class ScoredClassifier(torch.nn.Module):
    """A CXRNet that returns (logits, ood_score) from one forward pass."""

    def __init__(self, net: torch.nn.Module, reference: FeatureReference) -> None:
        super().__init__()
        self.net = net
        self.scorer = OodScorer(reference)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and OOD scores (B,) of films (B, 1, S, S) in [0, 1]."""
        feats = self.net.features(x)
        return self.net.head(feats), self.scorer(feats)
