"""Montgomery County chest X-ray set (Jaeger et al., 2014): 138 films, 58 TB, left and right
lung masks drawn under a radiologist's supervision."""

from __future__ import annotations

import numpy as np

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, index_files
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, register_dataset
from cxrkit.datasets.shenzhen import read_clinical, tb_films
from cxrkit.errors import DatasetError

MONTGOMERY_URL = "https://openi.nlm.nih.gov/imgs/collections/NLM-MontgomeryCXRSet.zip"


def merge_masks(left_path, right_path):
    """One 0/255 uint8 mask, the union of the left and right lung masks (same size)."""
    from PIL import Image

    left = np.asarray(Image.open(left_path).convert("L")) > 0
    right = np.asarray(Image.open(right_path).convert("L")) > 0
    if left.shape != right.shape:
        raise DatasetError(f"{left_path}: left and right masks differ in size")
    return ((left | right) * 255).astype(np.uint8)


def prepare(options: PrepareOptions) -> Prepared:
    """normal / tb from the file name; ManualMask/leftMask + rightMask merged into one PNG per
    film under --out/masks/ (a `mask` column); sex and age from ClinicalReadings/."""
    from PIL import Image

    root = options.root
    masks = {}
    for side in ("leftMask", "rightMask"):
        for path in root.rglob(f"{side}/*.png"):
            masks[(side, path.name)] = path
    texts = index_files(root, (".txt",))
    mask_dir = options.out / "masks"
    rows, merged = [], 0
    for path, stem, label in tb_films(options, "MCUCXR"):
        sex, age, reading = (
            read_clinical(texts[stem + ".txt"]) if stem + ".txt" in texts else ("", "", "")
        )
        extra = {"mask": "", "reading": reading}
        left, right = masks.get(("leftMask", path.name)), masks.get(("rightMask", path.name))
        if left and right:
            mask_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(merge_masks(left, right)).save(mask_dir / path.name)
            extra["mask"] = f"masks/{path.name}"
            merged += 1
        rows.append(
            FilmRow(
                path=path, label=label, patient_id=stem, view="PA", sex=sex, age=age, extra=extra
            )
        )
    notes = [f"{merged} films with left + right masks merged", "each film is one patient"]
    return Prepared(rows=rows, findings=[], multilabel=False, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="montgomery",
        title="Montgomery County chest X-ray set",
        licence="Public (NLM); cite the papers; do not redistribute (owner's request)",
        citation="Jaeger et al., Quant Imaging Med Surg 4(6) 2014; Candemir et al., IEEE TMI 2014",
        labels="normal / tb (file name), lung masks (left + right merged)",
        task="binary",
        prepare=prepare,
        layout="CXR_png/MCUCXR_NNNN_0|1.png, ManualMask/{leftMask,rightMask}/*.png, "
        "ClinicalReadings/*.txt",
        files=(RemoteFile("NLM-MontgomeryCXRSet.zip", MONTGOMERY_URL),),
        aliases=("mcu",),
    )
)
