"""VinDr-CXR / VinBigData (Nguyen et al., 2022): 15,000 training DICOMs, each read by three
of 17 radiologists, 14 local findings with boxes. Credentialed access on PhysioNet (or Kaggle)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from cxrkit.datasets.common import (
    FilmRow,
    Prepared,
    PrepareOptions,
    index_files,
    need_file,
    read_csv,
)
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.datasets.vocab import canonical

VINDR_FINDINGS = [
    "Aortic Enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other Lesion", "Pleural Effusion",
    "Pleural Thickening", "Pneumothorax", "Fibrosis",
]  # fmt: skip
FUSE_IOU = 0.4

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fuse_boxes(boxes: list[tuple[str, Box]], min_readers: int) -> list[tuple[Box, int]]:
    """Group one finding's boxes of several readers (greedy, IoU >= 0.4 with the group's
    mean box) and average each group; keep groups drawn by `min_readers` or more readers.
    Returns (mean box, number of readers)."""
    groups: list[tuple[list[Box], set[str]]] = []
    for reader, box in sorted(boxes, key=lambda rb: -(rb[1][2] - rb[1][0]) * (rb[1][3] - rb[1][1])):
        best, best_iou = None, FUSE_IOU
        for group in groups:
            mean = tuple(sum(c) / len(group[0]) for c in zip(*group[0], strict=True))
            iou = _iou(box, mean)  # type: ignore[arg-type]
            if iou >= best_iou and reader not in group[1]:
                best, best_iou = group, iou
        if best is None:
            groups.append(([box], {reader}))
        else:
            best[0].append(box)
            best[1].add(reader)
    out = []
    for members, readers in groups:
        if len(readers) >= min_readers:
            mean = tuple(sum(c) / len(members) for c in zip(*members, strict=True))
            out.append((mean, len(readers)))  # type: ignore[arg-type]
    return out


def prepare(options: PrepareOptions) -> Prepared:
    """One row per image_id of train.csv. `--readers majority`: a finding two or more of the
    three readers marked is present, one reader's finding is uncertain (see --uncertain);
    `--readers any`: one reader is enough. Boxes: every reader's, plus fused ones."""
    root = options.root
    table = need_file(root, "train.csv", "vinbigdata-train.csv", "annotations_train.csv")
    files = index_files(root, (".dicom", ".dcm", ".png"))
    readers: dict[str, set[str]] = defaultdict(set)
    marks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    reader_boxes: dict[str, dict[str, list[tuple[str, Box]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in read_csv(table):
        image, reader = r["image_id"], r["rad_id"]
        readers[image].add(reader)
        name = canonical(r["class_name"])
        if not name:  # "No finding"
            continue
        marks[image][name].add(reader)
        if r.get("x_min"):
            box = tuple(float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            reader_boxes[image][name].append((reader, box))  # type: ignore[arg-type]
    need = 2 if options.readers == "majority" else 1
    rows, boxes = [], []
    for image in readers:
        path = next(
            (files[image + s] for s in (".dicom", ".dcm", ".png") if image + s in files),
            root / "train" / f"{image}.dicom",
        )
        present = sorted(n for n, rs in marks[image].items() if len(rs) >= need)
        uncertain = sorted(n for n, rs in marks[image].items() if 0 < len(rs) < need)
        rows.append(
            FilmRow(
                path=path,
                findings=present,
                uncertain=uncertain,
                patient_id=image,
                view="PA",
                extra={"readers": "|".join(sorted(readers[image]))},
            )
        )
        for name, rb in reader_boxes[image].items():
            for reader, (x0, y0, x1, y1) in rb:
                boxes.append((path, name, x0, y0, x1 - x0, y1 - y0, reader))
            for (x0, y0, x1, y1), n in fuse_boxes(rb, need):
                boxes.append((path, name, x0, y0, x1 - x0, y1 - y0, f"fused{n}"))
    notes = [
        f"readers={options.readers}: present when >= {need} reader(s) marked it"
        + ("; a single reader's finding is uncertain" if need == 2 else ""),
        "each image_id is one patient (VinDr-CXR publishes no patient id); view PA "
        "(the set is adult posteroanterior films)",
    ]
    return Prepared(rows=rows, findings=VINDR_FINDINGS, multilabel=True, boxes=boxes, notes=notes)


def reader_counts(root: Path) -> dict[str, int]:
    """Number of distinct readers per image_id in the train table under `root`."""
    counts: dict[str, set[str]] = defaultdict(set)
    for r in read_csv(need_file(root, "train.csv", "vinbigdata-train.csv")):
        counts[r["image_id"]].add(r["rad_id"])
    return {k: len(v) for k, v in counts.items()}


SPEC = register_dataset(
    DatasetSpec(
        name="vindr",
        title="VinDr-CXR (VinBigData)",
        licence="PhysioNet Restricted Health Data License 1.5.0 (Kaggle: competition rules)",
        citation="Nguyen et al., VinDr-CXR, Scientific Data 9 (2022)",
        labels="14 local findings by 3 readers per film, boxes per reader and fused",
        task="multilabel",
        prepare=prepare,
        layout="train.csv (image_id, class_name, class_id, rad_id, x_min..y_max), "
        "train/IMAGE_ID.dicom",
        access="Credentialed access at https://physionet.org/content/vindr-cxr/ (or the "
        "VinBigData Kaggle competition), then: cxr data prepare vindr --root DIR",
        aliases=("vinbigdata", "vindr-cxr"),
        options=("readers", "uncertain"),
    )
)
