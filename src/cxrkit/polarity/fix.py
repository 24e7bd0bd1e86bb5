"""`--fix-polarity` at ingestion: invert the films of a label table that the model is sure about."""

from __future__ import annotations

import csv
import logging
from dataclasses import replace
from pathlib import Path

from cxrkit.data.table import LabelTable
from cxrkit.polarity.model import PolarityModel, load_polarity_model
from cxrkit.polarity.predict import check_paths, invert_film, write_png

log = logging.getLogger("cxrkit.polarity")


def fix_table_polarity(
    table: LabelTable,
    out_dir: str | Path,
    model: PolarityModel | None = None,
    threshold: float | None = None,
    num_workers: int = 2,
) -> LabelTable:
    """A table whose surely-inverted films point at corrected copies under `out_dir`.

    "Sure" means negative with probability >= `threshold` (default: the model card's
    `fix` threshold). Corrected copies are PNGs (16-bit when the source has more bits);
    `out_dir/polarity_fixes.csv` lists what was inverted. Other records are unchanged.
    """
    from cxrkit.io import read_image

    model = model or load_polarity_model()
    cut = model.fix_threshold if threshold is None else threshold
    out = Path(out_dir)
    records = list(table.records)
    fixed: list[tuple[str, str, float]] = []
    paths = [r.path for r in records]
    for i, row in enumerate(check_paths(paths, model, num_workers=num_workers)):
        if "error" in row or row["polarity"] != "negative" or row["probability"] < cut:
            continue
        image, meta = read_image(records[i].path)
        target = out / f"{i:06d}_{records[i].path.stem}.png"
        write_png(target, invert_film(image), meta.bit_depth)
        fixed.append((str(records[i].path), str(target), row["probability"]))
        records[i] = replace(records[i], path=target)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "polarity_fixes.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "fixed_path", "probability_negative"])
        writer.writerows((a, b, f"{p:.6f}") for a, b, p in fixed)
    log.info(
        "polarity: %d of %d films inverted before use (p >= %.2f)", len(fixed), len(records), cut
    )
    return replace(table, records=records)
