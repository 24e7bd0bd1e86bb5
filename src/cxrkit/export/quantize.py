"""Static int8 quantization of a classifier's ONNX graph, calibrated on training films.

`quantize_model(model, out, calibration=DATA)` exports the fp32 graph, picks calibration
films from the TRAINING split of `DATA` (the run's split.csv), runs onnxruntime's static
quantization (QDQ, per-channel int8 weights, uint8 activations, MinMax ranges) of the
convolutions but the first one and the depthwise ones (the classic int8 accuracy traps:
on the EfficientNet-Lite0 demo, quantizing them cost 0.02 AUC on another site's films;
the head and the OOD scorer stay fp32 too: they are cheap), then scores
fp32 and int8 side by side on the run's internal TEST split (or on `check`). The int8
file's card records both: `quantization.calibration` (the set's name, the SHA-256 of its
labels.csv and of the list of films used; never a local path) and
`quantization.accuracy_change` (AUC and accuracy of each, their change, the largest
probability change). `within_tolerance` says whether int8 stays within `MAX_AUC_LOSS` and
`MAX_ACCURACY_LOSS` of fp32, the bar for a default runtime.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.errors import CxrkitError, DatasetError

#: int8 may lose at most this much AUC and accuracy against fp32 (issue 16's bar).
MAX_AUC_LOSS = 0.002
MAX_ACCURACY_LOSS = 0.005
DEFAULT_CALIBRATION_FILMS = 256


def split_members(split_file: Path | None, table: Any, part: str) -> list[int]:
    """Indices of `table`'s records that `split_file` (a run's split.csv) puts in `part`;
    every index when there is no split file. A split file naming none of the table's films
    is an error (the calibration set would not be training films)."""
    if split_file is None:
        return list(range(len(table)))
    with open(split_file, newline="") as f:
        part_of = {row["path"]: row["split"] for row in csv.DictReader(f)}
    chosen = [i for i in range(len(table)) if part_of.get(table.relpath(i)) == part]
    if not chosen:
        raise DatasetError(f"{split_file}: no film of the data is in the {part!r} split")
    return chosen


def pick(indices: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """`n` of `indices` drawn at random (all of them when there are fewer), sorted."""
    idx = np.asarray(indices)
    if n < len(idx):
        idx = np.random.default_rng(seed).choice(idx, size=n, replace=False)
    return sorted(int(i) for i in idx)


def films_record(source: str | Path, table: Any, indices: Sequence[int], part: str | None) -> dict:
    """How a model card names a set of films: the dataset's name and labels.csv hash, the
    split, the count and the SHA-256 of the sorted relative paths (no local path)."""
    from cxrkit.data.identity import data_record

    listing = "\n".join(sorted(table.relpath(i) for i in indices))
    return {
        **data_record(source),
        "split": part,
        "films": len(indices),
        "films_sha256": hashlib.sha256(listing.encode()).hexdigest(),
    }


def prepared_films(clf: Any, table: Any, indices: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """(prepared films (N, 1, S, S) float32, the indices that could be read) via
    `Classifier.prepare`, the input every runtime sees."""
    from cxrkit.errors import ImageReadError
    from cxrkit.io import read_image

    films, kept = [], []
    for i in indices:
        try:
            image, _ = read_image(table.records[i].path)
        except ImageReadError:
            continue
        films.append(clf.prepare(image))
        kept.append(i)
    if not films:
        raise DatasetError("none of the chosen films could be read")
    return np.stack(films)[:, None].astype(np.float32), kept


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared films, in batches."""

    def __init__(self, input_name: str, films: np.ndarray, batch: int = 16) -> None:
        self.input_name, self.films, self.batch = input_name, films, batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = (
                {self.input_name: self.films[s : s + self.batch]}
                for s in range(0, len(self.films), self.batch)
            )
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_onnx(fp32: Path, out: Path, films: np.ndarray) -> Path:
    """Write the statically quantized (QDQ, int8 weights per channel, uint8 activations)
    graph of `fp32` to `out`, activation ranges from `films` (N, 1, S, S)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from cxrkit.classifier.onnx_export import INPUT_NAME

    with tempfile.TemporaryDirectory(prefix="cxrkit-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            _Reader(INPUT_NAME, films),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=kept_in_float(pre),
        )
    return out


def kept_in_float(path: Path) -> list[str]:
    """Names of the convolutions left in fp32: the first one and every grouped
    (depthwise) one."""
    import onnx

    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    grouped = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    return sorted({*grouped, *(n.name for n in convs[:1])})


def compare(
    fp32: Any, int8: Any, films: np.ndarray, truth: np.ndarray, batch: int = 32
) -> dict[str, Any]:
    """AUC and accuracy of two classifiers on the same prepared films, and their change."""
    from sklearn.metrics import roc_auc_score

    def probs(clf: Any) -> np.ndarray:
        chunks = range(0, len(films), batch)
        return np.concatenate([clf.probs(films[s : s + batch]) for s in chunks])

    out: dict[str, Any] = {"films": int(len(films))}
    p = {"fp32": probs(fp32), "int8": probs(int8)}
    names = fp32.class_names
    for key, pr in p.items():
        if not np.isfinite(pr).all():
            raise CxrkitError(f"{key} probabilities are not finite")
        labels = [fp32.label(row)["label"] for row in pr]
        hits = [lab == names[t] for lab, t in zip(labels, truth, strict=True)]
        out[f"accuracy_{key}"] = float(np.mean(hits))
        if len(np.unique(truth)) < len(names):  # AUC undefined: a class is absent
            out[f"auc_{key}"] = None
        elif len(names) == 2:
            out[f"auc_{key}"] = float(roc_auc_score(truth, pr[:, 1]))
        else:
            out[f"auc_{key}"] = float(roc_auc_score(truth, pr, multi_class="ovr"))
    auc_ok = out["auc_fp32"] is not None
    out["auc_change"] = out["auc_int8"] - out["auc_fp32"] if auc_ok else None
    out["accuracy_change"] = out["accuracy_int8"] - out["accuracy_fp32"]
    out["max_abs_prob_change"] = float(np.abs(p["int8"] - p["fp32"]).max())
    out["within_tolerance"] = bool(
        (not auc_ok or out["auc_change"] >= -MAX_AUC_LOSS)
        and out["accuracy_change"] >= -MAX_ACCURACY_LOSS
    )
    return out


def quantize_model(
    model: str | Path,
    out: str | Path,
    calibration: str | Path,
    *,
    split_file: str | Path | None = None,
    n_films: int = DEFAULT_CALIBRATION_FILMS,
    check: str | Path | None = None,
    seed: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """Write the int8 graph of `model` to `out`; returns (path, the card written).

    Calibration films: `n_films` drawn from the `train` split of `calibration` (a labelled
    set; `split_file` defaults to the run's split.csv beside the model file, and without
    one every film of the set is a candidate). The accuracy change is measured on `check`
    (a labelled set, all of it) or else on the `test` split of `calibration`.
    """
    import onnx

    from cxrkit.classifier import Classifier
    from cxrkit.data.table import load_table
    from cxrkit.models.model_file import CARD_KEY

    if n_films < 1:
        raise CxrkitError(f"n_films={n_films}: calibrate on at least one film")
    fp32 = Classifier.load(model, "onnx")
    assert fp32.path is not None
    run_split = fp32.path.parent / "split.csv"
    split = Path(split_file) if split_file else (run_split if run_split.is_file() else None)
    label_column = fp32.card.label_column or "label"
    table = load_table(calibration, label_column=label_column)
    calib_idx = pick(split_members(split, table, "train"), n_films, seed)
    calib, calib_idx = prepared_films(fp32, table, calib_idx)
    if check is not None:
        check_table, check_idx, check_part, check_src = None, None, None, check
        check_table = load_table(check, label_column=label_column)
        check_idx = list(range(len(check_table)))
    else:
        if split is None:
            raise CxrkitError("the accuracy change needs `check` data or the run's split.csv")
        check_table, check_part, check_src = table, "test", calibration
        check_idx = split_members(split, table, "test")
    check_films, check_idx = prepared_films(fp32, check_table, check_idx)
    truth = _truth(check_table, check_idx, fp32.class_names)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cxrkit-int8-") as tmp:
        fp32_file, fp32_card = fp32_export(model, Path(tmp) / "fp32.onnx")
        quantize_onnx(fp32_file, Path(tmp) / "int8.onnx", calib)
        int8 = Classifier.load(Path(tmp) / "int8.onnx", "onnx")
        change = compare(fp32, int8, check_films, truth)
        change.update(films_record(check_src, check_table, check_idx, check_part))
        made_from = fp32_card.provenance.export if isinstance(fp32_card, ModelCard) else None
        card = fp32.card.merged(
            export=made_from,  # the model file (and its sha256) the graph was made from
            quantization={
                "method": "onnxruntime static QDQ: int8 weights (per channel), uint8 "
                "activations, MinMax calibration; first and depthwise convolutions, head "
                "and OOD scorer in fp32",
                "calibration": films_record(calibration, table, calib_idx, "train"),
                "accuracy_change": change,
            }
        )
        proto = onnx.load(str(Path(tmp) / "int8.onnx"))
        onnx.helper.set_model_props(proto, {CARD_KEY: json.dumps(card.to_dict())})
        from cxrkit.classifier.onnx_export import _write_atomic

        path = _write_atomic(out, proto.SerializeToString())
    return path, card


def fp32_export(model: str | Path, out: Path) -> tuple[Path, ModelCard | dict[str, Any]]:
    """The fp32 ONNX graph of a model file (or the .onnx file given, copied)."""
    from cxrkit.classifier import Classifier

    if Path(model).suffix.lower() == ".onnx":
        out.write_bytes(Path(model).read_bytes())
        return out, {}
    return Classifier.load(model, device="cpu").export_onnx(out)


def _truth(table: Any, indices: Sequence[int], class_names: list[str]) -> np.ndarray:
    """Class indices (in the classifier's order) of single-label records."""
    if table.task == "multilabel":
        raise CxrkitError("int8 accuracy checks need a binary or multiclass model")
    names = table.class_names
    targets = table.targets()
    order = {name: k for k, name in enumerate(class_names)}
    try:
        return np.array([order[names[int(targets[i])]] for i in indices])
    except KeyError as exc:
        raise DatasetError(f"class {exc} of the data is not a class of the model") from exc
