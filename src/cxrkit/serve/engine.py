"""`FilmPredictor`: a model loaded once; upload bytes in, the API's prediction dict out."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrkit.data.crop import apply_crop
from cxrkit.errors import (
    CorruptImageError,
    DecoderCrashError,
    DecodeTimeoutError,
    DecompressionBombError,
    DicomError,
    EmptyFileError,
    FilmTooSmallError,
    ImageReadError,
    ModelFileError,
    UnsupportedFormatError,
)
from cxrkit.infer.predict import label_row, split_outputs
from cxrkit.io import read_image_bytes, resize_film
from cxrkit.io.pool import DecodePool
from cxrkit.models.calibration import apply_card_calibration
from cxrkit.models.inference import logits_to_probs
from cxrkit.models.ood import OOD_WARNING, ScoredClassifier, load_feature_reference, ood_fields
from cxrkit.serve.extras import Extras
from cxrkit.serve.images import film_preview, heatmap_rgba, png_base64, resize_float
from cxrkit.serve.limits import ApiError

RUNTIMES = ("torch", "onnx")

# Reader errors -> (HTTP status, machine-readable code); the message is the reader's reason.
_READ_ERRORS: tuple[tuple[type[ImageReadError], int, str], ...] = (
    (EmptyFileError, 400, "empty_file"),
    (UnsupportedFormatError, 415, "unsupported_format"),
    (DecompressionBombError, 413, "too_many_pixels"),
    (DicomError, 422, "unsupported_dicom"),
    (FilmTooSmallError, 422, "film_too_small"),
    (DecodeTimeoutError, 422, "decode_timeout"),
    (DecoderCrashError, 422, "decoder_crashed"),
    (CorruptImageError, 422, "corrupt_image"),
    (ImageReadError, 422, "unreadable_image"),
)


def _with_reference(net: torch.nn.Module, path: Path) -> torch.nn.Module:
    """The net wrapped to also return OOD scores when its model file has a feature reference."""
    reference = load_feature_reference(path)
    return net if reference is None else ScoredClassifier(net, reference).eval()


class FilmPredictor:
    """Holds the classifier (torch, or onnxruntime plus torch for CAM) and the extras.

    `model_path` is a model file, a run directory or an exported `.onnx` file (ONNX only:
    no CAM). `runtime='onnx'` computes probabilities on onnxruntime, exporting a model
    file into `workdir` (a temporary directory) first. With `decode_pool`, uploads are
    decoded in its worker processes (memory and time limits); without, in this process.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        runtime: str = "torch",
        workdir: str | Path | None = None,
        max_pixels: int = 50_000_000,
        preview_size: int = 512,
        threads: int | None = None,
        decode_pool: DecodePool | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ModelFileError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.max_pixels, self.preview_size = max_pixels, preview_size
        self.decode_pool = decode_pool
        self.torch_model: torch.nn.Module | None = None
        self._scored_model: Any = None  # the torch model, returning OOD scores too if it can
        self.onnx_model: Any = None
        path = Path(model_path)
        if path.suffix.lower() == ".onnx":
            runtime = "onnx"
            self._load_onnx(path, threads)
        else:
            from cxrkit.models.model_file import load_model_file

            self.torch_model, self.card = load_model_file(path)
            self._scored_model = _with_reference(self.torch_model, path)
            if runtime == "onnx":
                self._export_and_load_onnx(workdir, threads)
        self.runtime = runtime
        self.classes: list[str] = list(self.card["class_names"])
        self.extras = Extras()
        self._cam_model = copy.deepcopy(self.torch_model) if self.torch_model else None
        self._cam_lock = threading.Lock()  # CAM hooks a layer: one CAM at a time

    def _load_onnx(self, path: Path, threads: int | None) -> None:
        from cxrkit.infer.onnx_runtime import OnnxModel

        self.onnx_model = OnnxModel(path, threads=threads)
        self.card = self.onnx_model.card

    def _export_and_load_onnx(self, workdir: str | Path | None, threads: int | None) -> None:
        import tempfile

        from cxrkit.infer.onnx_export import export_model_onnx
        from cxrkit.infer.onnx_runtime import OnnxModel

        assert self.torch_model is not None
        with tempfile.TemporaryDirectory(dir=workdir, prefix="onnx-") as tmp:
            onnx_path = export_model_onnx(self._scored_model, self.card, Path(tmp) / "model.onnx")
            self.onnx_model = OnnxModel(onnx_path, threads=threads)

    def probabilities(self, films: np.ndarray) -> np.ndarray:
        """(B, C) probabilities of films (B, 1, S, S) float32 in [0, 1]."""
        return self.probabilities_and_scores(films)[0]

    def probabilities_and_scores(self, films: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, C) probabilities and (B,) out-of-distribution scores (None: no reference)."""
        if self.onnx_model is not None:
            logits, scores = self.onnx_model.outputs(films)
            probs = logits_to_probs(torch.from_numpy(logits), self.card["task"]).numpy()
        else:
            with torch.inference_mode():
                x = torch.from_numpy(films).contiguous(memory_format=torch.channels_last)
                logits_t, scores_t = split_outputs(self._scored_model(x))
                probs = logits_to_probs(logits_t, self.card["task"]).float().numpy()
                scores = None if scores_t is None else scores_t.float().numpy()
        return apply_card_calibration(probs, self.card), scores  # site calibration, if any

    def decode(self, data: bytes, name: str) -> tuple[np.ndarray, Any]:
        """Decode an upload (format sniffed from content) or raise ApiError with a clear 4xx."""
        try:
            if self.decode_pool is not None:
                return self.decode_pool.decode(data, name, max_pixels=self.max_pixels)
            return read_image_bytes(data, name, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            for cls, status, code in _READ_ERRORS:
                if isinstance(exc, cls):
                    raise ApiError(status, code, str(exc)) from exc
            raise  # pragma: no cover - the table ends with the base class
        except MemoryError as exc:
            raise ApiError(413, "too_many_pixels", f"{name}: image too large to decode") from exc

    def predict(
        self, data: bytes, name: str = "upload", *, cam: bool = False, preview: bool = False
    ) -> dict[str, Any]:
        """The API's answer for one uploaded film (see `POST /v1/predict`)."""
        image, meta = self.decode(data, name)
        pre = self.card["preprocessing"]
        film = resize_film(  # exactly as predict: the card's crop (if any), then resize
            apply_crop(image, pre.get("crop")), int(pre["size"]), pre.get("resize_mode", "squash")
        )
        probs_b, scores = self.probabilities_and_scores(film[None, None])
        probs = probs_b[0]
        row = label_row(probs, self.classes, self.card["task"], self.card.get("thresholds") or [])
        if "error" in row:  # never a label without finite probabilities
            raise ApiError(422, "no_prediction", f"{name}: {row['error']}")
        ood = ood_fields(None if scores is None else float(scores[0]), self.card)
        screening = self.extras.screen(image)
        unavailable = dict(screening.unavailable)
        out: dict[str, Any] = {
            "filename": name,
            "format": meta.format,
            "original_size": list(meta.original_size),
            "inverted_on_read": bool(meta.inverted),
            "task": self.card["task"],
            "label": row["label"],
            "probabilities": row["probabilities"],
            "polarity": screening.polarity,
            "not_cxr": screening.not_cxr,
            **ood,
            "warnings": screening.warnings + ([OOD_WARNING] if ood["out_of_distribution"] else []),
            "cam": None,
            "preview_png": None,
            "runtime": self.runtime,
        }
        hw = image.shape
        if preview or cam:
            small = film_preview(image, self.preview_size)
            hw = small.shape
            if preview:
                out["preview_png"] = png_base64(small)
        if cam:
            out["cam"], reason = self._cam(image, hw)
            if reason:
                unavailable["cam"] = reason
        else:
            unavailable["cam"] = "not requested (add ?cam=true)"
        out["unavailable"] = unavailable
        return out

    def _cam(self, image: np.ndarray, hw: tuple[int, int]) -> tuple[dict | None, str | None]:
        with self._cam_lock:
            heat, info = self.extras.cam(self._cam_model, self.card, image)
        if heat is None:
            return None, str(info)
        assert isinstance(info, dict)
        from cxrkit.explain import overlay_heatmap

        small_film = resize_float(image, hw)
        small_heat = resize_float(heat, hw)
        return {
            "class": info.get("class"),
            "method": info.get("method"),
            "size": list(hw),
            "heatmap_png": png_base64(heatmap_rgba(heat, hw)),
            "overlay_png": png_base64(overlay_heatmap(small_film, small_heat)),
        }, None

    def model_card(self) -> dict[str, Any]:
        """The card for `GET /v1/model`, without server paths or the full training config."""
        card = copy.deepcopy(self.card)
        training = card.get("training")
        if isinstance(training, dict):
            training.pop("config", None)
            for key in ("data", "weights"):
                if isinstance(training.get(key), str):
                    training[key] = Path(training[key]).name
        card["runtime"] = self.runtime
        card["extras"] = self.extras.status()
        return card
