"""SIIM-ACR Pneumothorax Segmentation (2019): DICOM films with run-length-encoded masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrkit.datasets.common import (
    FilmRow,
    Prepared,
    PrepareOptions,
    index_files,
    need_file,
    read_csv,
)
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.errors import DatasetError

SIIM_SIZE = 1024  # every SIIM film is 1024 x 1024


def decode_rle(rle: str, height: int = SIIM_SIZE, width: int = SIIM_SIZE) -> np.ndarray:
    """SIIM's relative RLE ("start length" pairs, starts counted from the end of the last
    run, column-major) as a (height, width) uint8 mask of 0/255."""
    flat = np.zeros(height * width, dtype=np.uint8)
    values = [int(v) for v in rle.split()]
    if len(values) % 2:
        raise DatasetError(f"RLE has an odd number of values ({len(values)})")
    pos = 0
    for start, length in zip(values[0::2], values[1::2], strict=True):
        pos += start
        if start < 0 or length < 0 or pos + length > flat.size:
            raise DatasetError("RLE run outside the image")
        flat[pos : pos + length] = 255
        pos += length
    return flat.reshape(width, height).T


def prepare(options: PrepareOptions) -> Prepared:
    """One row per ImageId of train-rle.csv; every positive film's runs are merged into one
    PNG under --out/masks/ (a `mask` column), negatives get no mask."""
    from PIL import Image

    root = options.root
    table = need_file(root, "train-rle.csv", "siim-pneumothorax-train-rle.csv")
    files = index_files(root, (".dcm",))
    runs: dict[str, list[str]] = {}
    for r in read_csv(table):
        rle = r.get("EncodedPixels", "").strip()
        runs.setdefault(r["ImageId"], [])
        if rle and rle != "-1":
            runs[r["ImageId"]].append(rle)
    mask_dir = options.out / "masks"
    rows = []
    for image_id, rles in runs.items():
        path = files.get(image_id + ".dcm", root / "dicom-images-train" / f"{image_id}.dcm")
        extra = {"mask": ""}
        if rles:
            mask_dir.mkdir(parents=True, exist_ok=True)
            mask = np.zeros((SIIM_SIZE, SIIM_SIZE), dtype=np.uint8)
            for rle in rles:
                mask |= decode_rle(rle)
            mask_path = mask_dir / f"{image_id}.png"
            Image.fromarray(mask).save(mask_path)
            extra["mask"] = Path("masks", mask_path.name).as_posix()
        rows.append(
            FilmRow(
                path=path,
                findings=["Pneumothorax"] if rles else [],
                patient_id=image_id,
                extra=extra,
            )
        )
    notes = ["each ImageId is one film; masks are the union of its RLE rows (0/255 PNG)"]
    return Prepared(rows=rows, findings=["Pneumothorax"], multilabel=True, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="siim",
        title="SIIM-ACR Pneumothorax Segmentation",
        licence="Kaggle competition rules (SIIM / ACR)",
        citation="SIIM-ACR Pneumothorax Segmentation challenge, Kaggle 2019",
        labels="Pneumothorax with masks (RLE decoded to PNG)",
        task="multilabel",
        prepare=prepare,
        layout="train-rle.csv, dicom-images-train/**/IMAGE_ID.dcm",
        access="Download from the SIIM-ACR Pneumothorax Kaggle competition (or its mirrors), "
        "then: cxr data prepare siim --root DIR --out DIR",
        aliases=("siim-acr", "pneumothorax"),
    )
)
