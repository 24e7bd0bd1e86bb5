"""`Classifier`: a chest-film classifier and its model card, used the same way everywhere.

`predict`, `evaluate`, `explain`, `serve` and ONNX export all go through one of these, so
there is one forward pass (`outputs`), one preparation of a film (`prepare`: the card's
crop, resize and channel handling), one place for the card's calibration, thresholds,
out-of-distribution score and not-finite checks, and one switch between torch and
onnxruntime (`Classifier.load(path, runtime=...)`).

```python
clf = Classifier.load("runs/a/model.safetensors")          # or runtime="onnx"
rows = clf.predict(["film.png", "folder/"])               # one row per film
heat, info = clf.explain(read_image("film.png")[0])       # on the very input predict uses
```
"""

from __future__ import annotations

import copy
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.classifier.films import FilmPrep
from cxrkit.classifier.graph_cache import export_record
from cxrkit.classifier.runtimes import GRAPH_RUNTIMES, RUNTIMES, check_runtime, get_runtime
from cxrkit.classifier.screen import (
    Screening,
    screen_films,
    screen_image,
    screen_model,
    training_views,
)
from cxrkit.errors import ModelFileError, ModelOutputError
from cxrkit.io.film import as_film
from cxrkit.models.outputs import OOD_WARNING, logits_to_probs_np, ood_fields

if TYPE_CHECKING:
    import torch

    from cxrkit.classifier.onnx_runtime import OnnxModel
    from cxrkit.classifier.runtimes import OpenVinoModel
    from cxrkit.models.ood import FeatureReference

__all__ = ["INT8_FILE", "RUNTIMES", "Classifier", "FilmInput", "export_record"]
#: The int8 graph `cxr export --format onnx-int8` writes beside a run's model file.
INT8_FILE = "model.int8.onnx"
#: A film to predict: a path (file, folder or glob) or an image array.
FilmInput = str | os.PathLike[str] | np.ndarray


class Classifier:
    """A classification network (torch module or ONNX session) plus its model card.

    Build one with `Classifier.load(path, runtime=...)`, or wrap an already loaded
    `(net, card)` pair: `Classifier(net, card, reference=...)`, where `net` is a
    `CXRNet`, an `OnnxModel` or an `OpenVinoModel`. `reference` is the model file's
    out-of-distribution feature reference (an exported ONNX graph carries its own).
    """

    def __init__(
        self,
        net: torch.nn.Module | OnnxModel | OpenVinoModel,
        card: ModelCard | dict[str, Any],
        *,
        reference: FeatureReference | Callable[[], FeatureReference | None] | None = None,
        torch_net: torch.nn.Module | Callable[[], torch.nn.Module] | None = None,
        device: str | torch.device | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.card = ModelCard.from_dict(card, source=str(path or "model card"))
        if not self.card.is_classifier:
            raise ModelFileError(f"{path or 'model'}: a {self.card.task} model, not a classifier")
        self.decision = self.card.require_decision()
        self.path = None if path is None else Path(path)
        self.onnx: OnnxModel | OpenVinoModel | None = None  # the graph runtime, if any
        self._module: torch.nn.Module | None = None
        self._cam_net: torch.nn.Module | None = None  # a copy: CAM hooks a layer
        self._cam_lock = threading.Lock()
        self._load_lock = threading.Lock()  # one lazy load of the torch net / reference
        self.preparation = FilmPrep.from_card(self.card)
        if _is_torch_module(net):
            self._set_torch(net, reference, device)  # type: ignore[arg-type]
        else:
            # A graph runtime: no torch until `net` (explain, export) or `reference` is read;
            # callables load them then.
            self.onnx = net  # type: ignore[assignment]
            self._net, self._reference = torch_net, reference
            self.device = "cpu" if device is None else device

    def _set_torch(
        self, net: torch.nn.Module, reference: Any, device: str | torch.device | None
    ) -> None:
        import torch

        from cxrkit.models.inference import resolve_device
        from cxrkit.models.ood import ScoredClassifier

        reference = reference() if callable(reference) else reference
        self._reference = reference
        if device is None:
            params = next(iter(net.parameters()), None)
            device = params.device if params is not None else "cpu"
        self.device = resolve_device(str(device))
        self._net = net.to(self.device).eval()
        module = self._net if reference is None else ScoredClassifier(self._net, reference)
        self._module = module.eval().to(memory_format=torch.channels_last)

    @property
    def net(self) -> torch.nn.Module | None:
        """The torch network (None for a graph alone); a graph runtime loads it from the
        model file on first use (explain, export), importing torch only then."""
        with self._load_lock:
            if callable(self._net) and not _is_torch_module(self._net):
                self._net = self._net()
        return self._net  # type: ignore[return-value]

    @net.setter
    def net(self, value: torch.nn.Module | None) -> None:
        self._net = value

    @property
    def reference(self) -> FeatureReference | None:
        """The model file's out-of-distribution feature reference (None when it has none;
        an exported graph computes the score itself)."""
        with self._load_lock:
            if callable(self._reference):
                self._reference = self._reference()
        return self._reference

    @reference.setter
    def reference(self, value: FeatureReference | None) -> None:
        self._reference = value

    # ---- loading ---------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        runtime: str = "torch",
        *,
        device: str = "auto",
        threads: int | None = None,
        workdir: str | Path | None = None,
    ) -> Classifier:
        """Load a model file, a run directory or an exported `.onnx` file.

        `runtime='onnx'` runs the network on onnxruntime (CPU): an `.onnx` file (or a run
        directory holding `model.onnx`) as it is; a model file's graph is exported once and
        cached by the model's sha256 (`cxrkit.classifier.graph_cache`: beside the model
        file, else in the cache folder), so a changed model file never runs a stale graph
        (its torch network loads on first use, for `explain`); `workdir` is deprecated and
        ignored (graphs are cached). An
        `.onnx` file is always ONNX. `runtime='openvino'` compiles the same graph with
        OpenVINO (`'openvino-bf16'`: in bfloat16, on CPUs that have it).
        `runtime='onnx-int8'` loads the calibrated int8 graph: an
        `.onnx` file written by `cxr export --format onnx-int8`, or `model.int8.onnx`
        beside the model file (`quantize_model` writes it). A runtime whose package is
        missing raises `RuntimeMissingError` naming the extra to install.
        """
        if workdir is not None:
            import warnings

            warnings.warn(
                "Classifier.load(workdir=...) is ignored: graphs are cached by the model's "
                "sha256 (cxrkit.classifier.graph_cache)",
                DeprecationWarning,
                stacklevel=2,
            )
        check_runtime(runtime)
        p = Path(path)
        if runtime == "onnx-int8":
            return cls._load_int8(p, threads=threads)
        in_run_dir = p.is_dir() and (p / "model.onnx").is_file()
        fp32_graph = runtime in GRAPH_RUNTIMES and runtime != "onnx-int8"
        if p.suffix.lower() == ".onnx" or (fp32_graph and in_run_dir):
            onnx_file = p / "model.onnx" if in_run_dir else p
            graph = _open_graph(onnx_file, runtime, threads)
            return cls(graph, graph.card, path=onnx_file)
        from cxrkit.models.model_file import check_classifier_card, find_model_file, read_card

        p = find_model_file(p)
        card = check_classifier_card(p, read_card(p))
        if runtime == "torch":
            from cxrkit.models.model_file import load_model_file
            from cxrkit.models.ood import load_feature_reference

            net, card = load_model_file(p)
            return cls(net, card, reference=load_feature_reference(p), device=device, path=p)
        from cxrkit.classifier.graph_cache import cached_graph

        def export(target: Path, sha: str) -> Path:  # only when no graph is cached: torch
            from cxrkit.classifier.onnx_export import export_model_onnx
            from cxrkit.models.model_file import load_model_file
            from cxrkit.models.ood import ScoredClassifier, load_feature_reference

            net, _ = load_model_file(p)
            reference = load_feature_reference(p)
            scored = net if reference is None else ScoredClassifier(net, reference)
            return export_model_onnx(scored, card.merged(export=export_record(p, sha)), target)

        onnx_path, sha = cached_graph(p, export)
        graph = _open_graph(onnx_path, runtime, threads)
        if (graph.card.provenance.export or {}).get("source_sha256") != sha:  # not ours
            onnx_path.unlink(missing_ok=True)
            onnx_path, _ = cached_graph(p, export, sha)
            graph = _open_graph(onnx_path, runtime, threads)
        return cls(
            graph,
            card,
            reference=lambda: _load_reference(p),
            torch_net=lambda: _load_net(p),
            path=p,
        )

    @classmethod
    def _load_int8(cls, p: Path, *, threads: int | None) -> Classifier:
        """The int8 graph of `p` (the .onnx file itself, or `model.int8.onnx` beside the model
        file / in the run directory), with the torch network for `explain` when it is there."""
        from cxrkit.models.model_file import find_model_file

        folder = p if p.is_dir() else p.parent
        int8 = p if p.suffix.lower() == ".onnx" else folder / INT8_FILE
        if not int8.is_file():
            raise ModelFileError(
                f"{int8}: no int8 model; make it with `cxr export {p} out={int8} "
                "format=onnx-int8 calibration=TRAINING_DATA` (the run's training films)"
            )
        graph = _open_graph(int8, "onnx", threads)
        if graph.card.provenance.quantization is None:
            raise ModelFileError(f"{int8}: not an int8 export (its card has no `quantization`)")
        torch_net = None
        # the model file it was made from: the one given, else the card's `export.source`
        # beside the graph (an .onnx file alone: probabilities, no CAM)
        source = (graph.card.provenance.export or {}).get("source")
        beside = folder / source if source else folder
        candidate = beside if p.suffix.lower() == ".onnx" else p
        try:
            model_file = find_model_file(candidate)
        except (ModelFileError, FileNotFoundError):
            model_file = None
        if model_file is not None:
            from cxrkit.data.cache import file_sha256

            made_from = (graph.card.provenance.export or {}).get("source_sha256")
            if made_from != file_sha256(model_file):
                raise ModelFileError(
                    f"{int8}: not made from {model_file.name} as it is now (the model file "
                    f"changed, or the graph predates this check); make it again with `cxr "
                    f"export {model_file} out={int8} format=onnx-int8 calibration=TRAINING_DATA`"
                )
            torch_net = functools.partial(_load_net, model_file)
        return cls(graph, graph.card, torch_net=torch_net, path=int8)

    # ---- the card ----------------------------------------------------------------------

    @property
    def runtime(self) -> str:
        """Where probabilities come from: 'torch', 'onnx', 'onnx-int8' (a quantized graph on
        onnxruntime), 'openvino' or 'openvino-bf16'."""
        if self.onnx is None:
            return "torch"
        if type(self.onnx).__name__ == "OpenVinoModel":
            bf16 = getattr(self.onnx, "precision", "f32") == "bf16"
            return "openvino-bf16" if bf16 else "openvino"
        return "onnx-int8" if self.card.provenance.quantization is not None else "onnx"

    @property
    def class_names(self) -> list[str]:
        """Class names, in the order of the probability columns."""
        return list(self.card.class_names)

    @property
    def task(self) -> str:
        """'binary', 'multiclass' or 'multilabel'."""
        return self.card.task

    @property
    def thresholds(self) -> list[float]:
        """The card's decision thresholds (binary 1, multi-label one per class, multi-class
        none: argmax)."""
        return list(self.decision.thresholds)

    # ---- one film in, model input out --------------------------------------------------

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The network input (S, S) float32 in [0, 1] for a film: the ONE place where the
        card's crop, resize and channel handling (grayscale, RGB averaged) are applied."""
        return self.preparation(image)

    # ---- the forward pass ----------------------------------------------------------------

    def outputs(self, films: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (B, C) after the card's calibration, OOD scores (B,) or None)
        for prepared films (B, S, S) or (B, 1, S, S)."""
        if self.onnx is not None:  # numpy only: a graph runtime imports no torch
            x = np.asarray(films, dtype=np.float32)
            logits, scores = self.onnx.outputs(x[:, None] if x.ndim == 3 else x)
            probs = logits_to_probs_np(np.asarray(logits, dtype=np.float32), self.task)
        else:
            import torch

            from cxrkit.models.inference import logits_to_probs

            assert self._module is not None
            x = torch.as_tensor(films, dtype=torch.float32)
            if x.ndim == 3:
                x = x.unsqueeze(1)
            x = x.to(self.device).contiguous(memory_format=torch.channels_last)
            cuda = self.device.type == "cuda"
            with torch.inference_mode(), torch.autocast(self.device.type, enabled=cuda):
                out = self._module(x)
                logits, scores_t = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
                probs = logits_to_probs(logits, self.task).float().cpu().numpy()
                scores = None if scores_t is None else scores_t.float().cpu().numpy()
        return self.card.calibration.apply(probs, self.task), scores

    def probs(self, films: np.ndarray | torch.Tensor) -> np.ndarray:
        """Calibrated class probabilities (B, C) of prepared films (B, [1,] S, S)."""
        return self.outputs(films)[0]

    def batch_probs(self, batches: Iterable[dict | None]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, C), dataset indices (N,)) over collated batches of prepared
        films (`image`, `index`), e.g. a `CXRDataset` loader; None batches are skipped."""
        probs, index = [], []
        for batch in batches:
            if batch is not None and batch["image"] is not None:
                probs.append(self.probs(batch["image"]))
                index.append(np.asarray(batch["index"]))
        if not probs:
            return np.zeros((0, len(self.class_names)), np.float32), np.zeros(0, np.int64)
        return np.concatenate(probs), np.concatenate(index)

    def rows(
        self,
        names: Sequence[str],
        films: np.ndarray | torch.Tensor,
        screens: list[Screening] | None = None,
    ) -> list[dict[str, Any]]:
        """Output rows of prepared films: `path`, `label` and `probabilities` (or `error`
        when they are not finite), the OOD and screening columns and `warning`."""
        probs, scores = self.outputs(films)
        return [
            self._row(
                name,
                p,
                None if scores is None else float(scores[k]),
                None if screens is None else screens[k],
            )
            for k, (name, p) in enumerate(zip(names, probs, strict=True))
        ]

    def _row(
        self, name: str, p: np.ndarray, score: float | None, screening: Screening | None
    ) -> dict[str, Any]:
        """One output row from one probability row, its OOD score and its screening."""
        ood = ood_fields(score, self.card)
        row = {"path": name, **self.label(p), **ood}
        if screening is not None:
            row.update(screening.set_ood(ood).fields())
        elif ood["out_of_distribution"]:
            row["warning"] = OOD_WARNING
        return row

    def label(self, p: np.ndarray) -> dict[str, Any]:
        """`label` and `probabilities` of one probability row, decided by the card's
        decision rule; `{"error"}` when the row is not finite numbers in [0, 1]."""
        return self.decision.row(p)

    # ---- many films ----------------------------------------------------------------------

    def predict(
        self,
        films: FilmInput | Sequence[FilmInput],
        *,
        batch_size: int = 32,
        num_workers: int | None = None,
        screen: bool = True,
    ) -> list[dict[str, Any]]:
        """One row per film: paths (files, folders searched for films, globs) and/or image
        arrays. An unreadable film gives `{"path", "error"}` instead of a label."""
        if isinstance(films, (str, os.PathLike, np.ndarray)):
            films = [films]
        if all(isinstance(f, (str, os.PathLike)) for f in films):
            from cxrkit.classifier.paths import expand_paths

            films = expand_paths(films)  # type: ignore[arg-type]
            workers = 2 if num_workers is None else num_workers
        else:
            workers = 0 if num_workers is None else num_workers
        return list(
            self.predict_iter(films, batch_size=batch_size, num_workers=workers, screen=screen)
        )

    def predict_iter(
        self,
        films: Sequence[Path | np.ndarray],
        *,
        batch_size: int = 32,
        num_workers: int = 2,
        screen: bool = True,
        jpeg_draft: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Rows in the order of `films`, streamed batch by batch (memory stays flat).

        Films are read and prepared in `num_workers` processes ahead of the network
        (`cxrkit.classifier.pipeline`); with `screen`, rows also carry
        the screening columns (`not_cxr`, `polarity`, `view`, `p_lateral`, `warning`).
        `jpeg_draft` decodes JPEG files at a reduced DCT scale near the input size: faster
        on large JPEGs, with probabilities that move slightly (PNG and DICOM unchanged).
        """
        from cxrkit.classifier.films import FilmFiles, film_name
        from cxrkit.classifier.pipeline import prepared_batches

        draft = self.preparation.draft_side if jpeg_draft else None
        graph = self.screens_on_graph
        if screen:
            screen_model(graph)  # loaded once, before the workers fork
        dataset = FilmFiles(films, self.prepare, screen=screen, draft=draft, graph=graph)
        views = training_views(self.card)
        for batch in prepared_batches(dataset, batch_size=batch_size, workers=num_workers):
            rows: dict[int, dict[str, Any]] = {
                i: {"path": film_name(films, i), "error": err} for i, err in batch["errors"]
            }
            if batch["image"] is not None:
                screens = None
                if batch["screen"] is not None:
                    screens = screen_films(batch["screen"], batch["rule"], views, graph=graph)
                elif screen:  # asked for, but no screening model: the rows say so
                    reason = screen_model(graph)[1]
                    screens = [Screening(error=reason) for _ in batch["index"]]
                names = [film_name(films, i) for i in batch["index"]]
                got = self.rows(names, batch["image"], screens)
                rows.update(zip(batch["index"], got, strict=True))
            for i in batch["order"]:
                yield rows[i]

    @property
    def screens_on_graph(self) -> bool:
        """Whether films are screened by the screening net's ONNX graph (the graph
        runtimes: no torch) rather than its torch network (the torch runtime)."""
        return self.onnx is not None

    # ---- one film, all of it -------------------------------------------------------------

    def assess(self, image: np.ndarray, name: str = "array") -> tuple[dict[str, Any], Screening]:
        """Everything about one film in one forward pass: its output row (as `predict`)
        and its `Screening` (polarity, view, not-a-chest-film, out-of-distribution)."""
        film = as_film(image, name)
        screening = screen_image(film, training_views(self.card), graph=self.screens_on_graph)
        row = self.rows([name], self.prepare(film)[None], [screening])[0]
        return row, screening

    def screen(self, image: np.ndarray) -> Screening:
        """Polarity, view, not-a-chest-film and out-of-distribution verdicts of one film,
        with the warnings a person should read (`Screening.warnings`)."""
        return self.assess(image)[1]

    def explain(
        self,
        image: np.ndarray,
        method: str = "gradcam",
        *,
        class_name: str | int | None = None,
        box_threshold: float = 0.5,
        screen: bool = True,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """(heat map (H, W) float32 in [0, 1] at the film's own size, info) by
        pytorch-grad-cam, computed on exactly the input `predict` uses (`prepare`: crop
        and resize); the map is put back through the crop's box and the resize.

        `info` carries the same flags as a `predict` row beside the class: `warning`,
        `out_of_distribution`, and with `screen` also `view`, `polarity` and `not_cxr`.
        Probabilities that are not finite raise `ModelOutputError`: no map, no class."""
        row, heatmap, info = self.explain_row(
            image, method=method, class_name=class_name, box_threshold=box_threshold, screen=screen
        )
        if heatmap is None:
            raise ModelOutputError(f"no heat map: {row['error']}")
        return heatmap, info

    def explain_row(
        self,
        image: np.ndarray,
        name: str = "array",
        *,
        method: str = "gradcam",
        class_name: str | int | None = None,
        box_threshold: float = 0.5,
        screen: bool = True,
    ) -> tuple[dict[str, Any], np.ndarray | None, dict[str, Any]]:
        """(the film's `predict` row, its heat map, the map's info) from one prepared input
        and one prediction forward pass (the CAM then runs its own gradient pass on a copy
        of the network). A row whose probabilities are not finite has an `error`, no map
        (None) and an empty info: never a class."""
        if self.net is None:
            raise ModelFileError(
                "explain needs the torch model file (.safetensors); an .onnx file has no CAM"
            )
        from cxrkit.explain.api import explain_film

        film_image = as_film(image)
        film, box = self.preparation.with_box(film_image)
        probs, scores = self.outputs(film[None])
        score = None if scores is None else float(scores[0])
        views = training_views(self.card)
        screening = screen_image(film_image, views, graph=self.screens_on_graph) if screen else None
        row = self._row(name, probs[0], score, screening)
        if "error" in row:
            return row, None, {}
        with self._cam_lock:
            if self._cam_net is None:
                self._cam_net = copy.deepcopy(self.net)
            heatmap, info = explain_film(
                self._cam_net,
                self.card,
                film,
                probs[0],
                film_image.shape,
                box,
                method=method,
                class_name=class_name,
                box_threshold=box_threshold,
            )
        if screening is not None:  # `_row` gave it the OOD verdict
            info.update(screening.fields())
        else:
            ood = ood_fields(score, self.card)
            info.update(ood, warning=OOD_WARNING if ood["out_of_distribution"] else "")
        return row, heatmap, info

    # ---- export --------------------------------------------------------------------------

    def export_onnx(self, out: str | Path, *, opset: int = 17) -> tuple[Path, ModelCard]:
        """Write the network (and its OOD scorer) as ONNX to `out`; (path, card written)."""
        import torch

        from cxrkit.classifier.onnx_export import export_model_onnx
        from cxrkit.models.ood import ScoredClassifier

        if self.net is None:
            raise ModelFileError("export needs the torch model file (.safetensors)")
        card = self.card.merged(export=export_record(self.path, opset=opset))
        net = copy.deepcopy(self.net).cpu().float().to(memory_format=torch.contiguous_format)
        module = net if self.reference is None else ScoredClassifier(net, self.reference)
        return export_model_onnx(module, card, out, opset=opset), card


def _open_graph(path: Path, runtime: str, threads: int | None) -> OnnxModel | OpenVinoModel:
    """An ONNX file on the runtime's graph opener (onnxruntime for 'torch' too)."""
    return get_runtime("onnx" if runtime == "torch" else runtime).open_graph(path, threads)


def _is_torch_module(obj: Any) -> bool:
    """Whether `obj` is a torch module, without importing torch (a module needs it loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _load_net(model_file: Path) -> torch.nn.Module:
    """The torch network of a model file (for explain and export), on the CPU."""
    from cxrkit.models.model_file import load_model_file

    return load_model_file(model_file)[0]


def _load_reference(model_file: Path) -> FeatureReference | None:
    """The feature reference stored in a model file (None when it has none)."""
    from cxrkit.models.ood import load_feature_reference

    return load_feature_reference(model_file)
