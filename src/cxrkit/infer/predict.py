"""`predict`: probabilities for films on disk, batched in DataLoader workers, streaming rows out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cxrkit.data.crop import apply_crop
from cxrkit.errors import ImageReadError
from cxrkit.io import read_image, resize_film
from cxrkit.models.calibration import apply_card_calibration
from cxrkit.models.inference import logits_to_probs, prepare_for_device, resolve_device
from cxrkit.models.model_file import load_model_file
from cxrkit.models.ood import (
    OOD_WARNING,
    FeatureReference,
    ScoredClassifier,
    load_feature_reference,
    ood_fields,
)

if TYPE_CHECKING:
    from cxrkit.infer.onnx_runtime import OnnxModel


class FilmFiles(Dataset):
    """Films read and resized exactly as the model card says; a bad file yields its error."""

    def __init__(
        self,
        paths: list[Path],
        size: int,
        resize_mode: str,
        screen_size: int | None = None,
        crop: str | None = None,
    ) -> None:
        self.paths, self.size, self.resize_mode = paths, size, resize_mode
        self.crop = crop  # the card's `crop` (None | 'lungs'), applied before resizing
        self.screen_size = screen_size  # also a polarity/guard-size copy (cxrkit.guard)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            image, _ = read_image(self.paths[i])
            film = resize_film(apply_crop(image, self.crop), self.size, self.resize_mode)
        except ImageReadError as exc:
            return {"index": i, "error": exc.reason}
        except Exception as exc:  # one odd file must not stop a batch job
            return {"index": i, "error": f"unexpected {type(exc).__name__}: {exc}"}
        item = {"index": i, "image": torch.from_numpy(np.ascontiguousarray(film))[None]}
        if self.screen_size:
            from cxrkit.guard import rule_reason

            item["screen"] = resize_film(image, self.screen_size, "squash")
            item["rule"] = rule_reason(image)
        return item


def collate_films(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good films; keep the bad ones' (index, error) aside; `order` is all indices."""
    good = [it for it in items if "image" in it]
    return {
        "image": torch.stack([it["image"] for it in good]) if good else None,
        "index": [it["index"] for it in good],
        "errors": [(it["index"], it["error"]) for it in items if "error" in it],
        "order": [it["index"] for it in items],
        "screen": np.stack([it["screen"] for it in good]) if good and "screen" in good[0] else None,
        "rule": [it.get("rule", "") for it in good],
    }


def predict_batches(
    model: torch.nn.Module | OnnxModel,
    card: dict,
    paths: list[Path],
    *,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str = "auto",
    screen: bool = True,
    reference: FeatureReference | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one row per film, in the order of `paths`: probabilities and label, or its error.

    With `screen`, rows also carry `not_cxr`, `polarity` and `warning` from the shipped
    polarity / not-a-chest-film model (`cxrkit.guard.screen_fields`).
    `model` is a torch module (run channels-last under inference mode) or an `OnnxModel`
    (onnxruntime, CPU); films are decoded and resized in DataLoader workers and rows
    stream out batch by batch, so memory stays flat for any number of films.
    Rows carry `out_of_distribution` / `ood_score` when the model has a feature reference
    (`reference` for a torch model; an exported ONNX graph computes the score itself).
    """
    torch_model = isinstance(model, torch.nn.Module)
    dev = resolve_device(device) if torch_model else torch.device("cpu")
    guard_model = _guard_model() if screen else None
    if torch_model:
        if reference is not None:
            model = ScoredClassifier(model, reference)
        model = prepare_for_device(model, dev).eval().to(memory_format=torch.channels_last)
    pre = card["preprocessing"]
    loader = DataLoader(
        FilmFiles(
            paths,
            pre["size"],
            pre["resize_mode"],
            guard_model and guard_model.input_size,
            crop=pre.get("crop"),
        ),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_films,
    )
    classes, task = card["class_names"], card["task"]
    thresholds = card.get("thresholds") or []
    for batch in loader:
        rows: dict[int, dict[str, Any]] = {
            i: {"path": str(paths[i]), "error": err} for i, err in batch["errors"]
        }
        if batch["image"] is not None:
            x = batch["image"].to(dev)
            if torch_model:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(dev.type, enabled=dev.type == "cuda"):
                logits, scores = split_outputs(model(x))
                probs = logits_to_probs(logits, task).float().cpu().numpy()
            probs = apply_card_calibration(probs, card)  # site calibration, if any
            for k, (i, p) in enumerate(zip(batch["index"], probs, strict=True)):
                score = None if scores is None else float(scores[k])
                rows[i] = {
                    "path": str(paths[i]),
                    **label_row(p, classes, task, thresholds),
                    **ood_fields(score, card),
                }
            if guard_model is not None and batch["screen"] is not None:
                _add_screen(rows, batch, guard_model)
            for i in batch["index"]:
                add_ood_warning(rows[i])
        for i in batch["order"]:
            yield rows[i]


def split_outputs(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, ood scores or None) from a model's output: a tensor or a (logits, score) pair."""
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


def add_ood_warning(row: dict[str, Any]) -> None:
    """Append the out-of-distribution warning to a flagged row's `warning` text."""
    if row.get("out_of_distribution"):
        row["warning"] = "; ".join(w for w in (row.get("warning"), OOD_WARNING) if w)


def _guard_model() -> Any:
    """The shipped polarity / not-a-chest-film model, or None (with a warning) if missing."""
    import logging

    from cxrkit.errors import ModelFileError
    from cxrkit.polarity import load_polarity_model

    try:
        return load_polarity_model()
    except ModelFileError as exc:
        logging.getLogger("cxrkit").warning("film screening off: %s", exc)
        return None


def _add_screen(rows: dict[int, dict[str, Any]], batch: dict[str, Any], model: Any) -> None:
    """Add not_cxr / polarity / warning to the rows of a batch's good films."""
    from cxrkit.guard import screen_fields

    probs3 = model.probs(batch["screen"])
    for i, p, rule in zip(batch["index"], probs3, batch["rule"], strict=True):
        rows[i].update(screen_fields(p, rule, model))


def label_row(
    p: np.ndarray, classes: list[str], task: str, thresholds: list[float]
) -> dict[str, Any]:
    """Per-class probabilities plus the decided label(s), using the model's own thresholds.

    Probabilities that are not finite numbers in [0, 1] give `{"error": reason}` and no
    label: a broken model output must never turn into a diagnosis.
    """
    values = np.asarray(p, dtype=np.float64)
    if values.shape != (len(classes),) or not np.all((values >= 0) & (values <= 1)):
        return {"error": "the model gave non-finite or out-of-range probabilities; no label"}
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
    kw.setdefault("reference", load_feature_reference(model_path))
    return list(predict_batches(model, card, expand_paths(paths), **kw))
