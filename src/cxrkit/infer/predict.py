"""`predict`: probabilities for films on disk, batched in DataLoader workers, streaming rows out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cxrkit.errors import ImageReadError
from cxrkit.io import read_image, resize_film
from cxrkit.models.inference import logits_to_probs, prepare_for_device, resolve_device
from cxrkit.models.model_file import load_model_file


class FilmFiles(Dataset):
    """Films read and resized exactly as the model card says; a bad file yields its error."""

    def __init__(self, paths: list[Path], size: int, resize_mode: str) -> None:
        self.paths, self.size, self.resize_mode = paths, size, resize_mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            image, _ = read_image(self.paths[i])
        except ImageReadError as exc:
            return {"index": i, "error": exc.reason}
        film = resize_film(image, self.size, self.resize_mode)
        return {"index": i, "image": torch.from_numpy(np.ascontiguousarray(film))[None]}


def collate_films(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good films; keep the bad ones' (index, error) aside."""
    good = [it for it in items if "image" in it]
    return {
        "image": torch.stack([it["image"] for it in good]) if good else None,
        "index": [it["index"] for it in good],
        "errors": [(it["index"], it["error"]) for it in items if "error" in it],
    }


def predict_batches(
    model: torch.nn.Module,
    card: dict,
    paths: list[Path],
    *,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str = "auto",
) -> Iterator[dict[str, Any]]:
    """Yield one row per film, path plus probabilities and label, or its error."""
    dev = resolve_device(device)
    model = prepare_for_device(model, dev).eval()
    pre = card["preprocessing"]
    loader = DataLoader(
        FilmFiles(paths, pre["size"], pre["resize_mode"]),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_films,
    )
    classes, task = card["class_names"], card["task"]
    thresholds = card.get("thresholds") or []
    for batch in loader:
        for i, err in batch["errors"]:
            yield {"path": str(paths[i]), "error": err}
        if batch["image"] is None:
            continue
        x = batch["image"].to(dev)
        if dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(dev.type, enabled=dev.type == "cuda"):
            probs = logits_to_probs(model(x), task).float().cpu().numpy()
        for i, p in zip(batch["index"], probs, strict=True):
            yield {"path": str(paths[i]), **label_row(p, classes, task, thresholds)}


def label_row(
    p: np.ndarray, classes: list[str], task: str, thresholds: list[float]
) -> dict[str, Any]:
    """Per-class probabilities plus the decided label(s), using the model's own thresholds."""
    probs = {c: float(v) for c, v in zip(classes, p, strict=True)}
    if task == "multilabel":
        th = thresholds if len(thresholds) == len(classes) else [0.5] * len(classes)
        label = "|".join(c for c, v, t in zip(classes, p, th, strict=True) if v >= t)
    elif task == "binary":
        t = thresholds[0] if thresholds else 0.5
        label = classes[1] if p[1] >= t else classes[0]
    else:
        label = classes[int(np.argmax(p))]
    return {"label": label, "probabilities": probs}


def predict(model_path: str | Path, paths: list[str | Path], **kw: Any) -> list[dict[str, Any]]:
    """Python API: load a model file; predict every film under `paths` (files, folders, globs)."""
    from cxrkit.infer.paths import expand_paths

    model, card = load_model_file(model_path)
    return list(predict_batches(model, card, expand_paths(paths), **kw))
