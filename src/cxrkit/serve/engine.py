"""`FilmPredictor`: a model loaded once; upload bytes in, the API's prediction dict out.

One prediction is three steps, so the server can batch the middle one across requests
(`cxrkit.serve.batcher`): `intake` (decode in the worker pool, the classifier's
preparation and the screening input: per request, in parallel), `assess_batch` (the
classifier and the screening network on a batch of uploads: one forward each) and
`answer` (the API's dict; CAM and preview when asked). `predict` runs the three for one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.classifier import Classifier
from cxrkit.classifier.screen import Screening, screen_films, screen_input, training_views
from cxrkit.errors import (
    CorruptImageError,
    DecoderCrashError,
    DecodeTimeoutError,
    DecompressionBombError,
    DicomError,
    EmptyFileError,
    FilmTooSmallError,
    ImageReadError,
    UnsupportedFormatError,
)
from cxrkit.io import read_image_bytes
from cxrkit.io.pool import DecodePool
from cxrkit.serve.extras import Extras
from cxrkit.serve.images import film_preview, heatmap_rgba, png_base64, resize_float
from cxrkit.serve.limits import ApiError

log = logging.getLogger("cxrkit.serve")

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


@dataclass
class Upload:
    """One decoded upload: the film, its metadata, the classifier input and the screening
    input (the film squashed for the screening net and the guard's rule verdict) or the
    reason there is none."""

    name: str
    image: np.ndarray
    meta: Any
    film: np.ndarray
    screen: tuple[np.ndarray, str] | None
    screen_error: str | None = None


class FilmPredictor:
    """A `Classifier` (torch, or onnxruntime plus the torch net for CAM) behind the API.

    `model_path` is a model file, a run directory or an exported `.onnx` file (ONNX only:
    no CAM). `runtime='onnx'` computes probabilities on onnxruntime (a model file's graph
    from the graph cache, `cxrkit.classifier.graph_cache`). With `decode_pool`, uploads are
    decoded in its worker processes (memory and time limits); without, in this process.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        runtime: str = "torch",
        max_pixels: int = 50_000_000,
        preview_size: int = 512,
        threads: int | None = None,
        decode_pool: DecodePool | None = None,
    ) -> None:
        self.max_pixels, self.preview_size = max_pixels, preview_size
        self.decode_pool = decode_pool
        self.classifier = Classifier.load(model_path, runtime, device="cpu", threads=threads)
        # A graph runtime loads its torch network (for CAM) on first use; a server loads it
        # now, before the first request, not in a request's thread.
        _ = self.classifier.net, self.classifier.reference
        self.card = self.classifier.card
        self.runtime = self.classifier.runtime
        self.classes: list[str] = self.classifier.class_names
        self.extras = Extras()

    def probabilities(self, films: np.ndarray) -> np.ndarray:
        """(B, C) probabilities of films (B, 1, S, S) float32 in [0, 1]."""
        return self.classifier.probs(films)

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

    def intake(self, data: bytes, name: str = "upload") -> Upload:
        """Decode an upload (ApiError on a bad one) and prepare its model inputs."""
        image, meta = self.decode(data, name)
        film = self.classifier.prepare(image)
        try:
            screened, error = screen_input(image), None
            if screened is None:
                from cxrkit.classifier.screen import screen_model

                error = screen_model()[1]
        except Exception as exc:  # an optional check must not fail the prediction
            log.warning("screening failed: %s", exc)
            screened, error = None, f"screening failed ({type(exc).__name__}: {exc})"
        return Upload(name, image, meta, film, screened, error)

    def assess_batch(self, uploads: list[Upload]) -> list[tuple[dict[str, Any], Screening]]:
        """(output row, screening) of each upload, from one classifier forward and one
        screening forward over the batch; the same as `Classifier.assess` film by film."""
        screens = self._screen_batch(uploads)
        films = np.stack([u.film for u in uploads])
        rows = self.classifier.rows([u.name for u in uploads], films, screens)
        return list(zip(rows, screens, strict=True))

    def _screen_batch(self, uploads: list[Upload]) -> list[Screening]:
        screens = [Screening(error=u.screen_error) for u in uploads]
        ready = [k for k, u in enumerate(uploads) if u.screen is not None]
        if not ready:
            return screens
        try:
            small = np.stack([uploads[k].screen[0] for k in ready])  # type: ignore[index]
            rules = [uploads[k].screen[1] for k in ready]  # type: ignore[index]
            done = screen_films(small, rules, training_views(self.card))
        except Exception as exc:  # an optional check must not fail the prediction
            log.warning("screening failed: %s", exc)
            reason = f"screening failed ({type(exc).__name__}: {exc})"
            return [Screening(error=u.screen_error or reason) for u in uploads]
        for k, s in zip(ready, done, strict=True):
            screens[k] = s
        return screens

    def predict(
        self, data: bytes, name: str = "upload", *, cam: bool = False, preview: bool = False
    ) -> dict[str, Any]:
        """The API's answer for one uploaded film (see `POST /v1/predict`)."""
        upload = self.intake(data, name)
        row, screening = self.assess_batch([upload])[0]
        return self.answer(upload, row, screening, cam=cam, preview=preview)

    def answer(
        self,
        upload: Upload,
        row: dict[str, Any],
        screening: Screening,
        *,
        cam: bool = False,
        preview: bool = False,
    ) -> dict[str, Any]:
        """The API's dict for an assessed upload; CAM and preview computed here when asked."""
        image, meta, name = upload.image, upload.meta, upload.name
        if "error" in row:  # never a label without finite probabilities
            raise ApiError(422, "no_prediction", f"{name}: {row['error']}")
        out: dict[str, Any] = {
            "filename": name,
            "format": meta.format,
            "original_size": list(meta.original_size),
            "inverted_on_read": bool(meta.inverted),
            "task": self.card.task,
            "label": row["label"],
            "probabilities": row["probabilities"],
            **self.extras.screening(screening),
            "cam": None,
            "preview_png": None,
            "runtime": self.runtime,
        }
        unavailable = out.pop("unavailable")
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
        heat, info = self.extras.cam(self.classifier, image)
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
        public = copy.deepcopy(self.card.to_dict())
        training = public.get("training")
        if isinstance(training, dict):
            training.pop("config", None)
            for key in ("data", "weights"):
                if isinstance(training.get(key), str):
                    training[key] = Path(training[key]).name
        return {**public, "runtime": self.runtime, "extras": self.extras.status()}
