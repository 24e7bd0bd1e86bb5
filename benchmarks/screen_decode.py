"""Films/s of `cxr polarity check` (check_paths) by file format: PNG at 224 px and at full
size, JPEG and DICOM at full size; cold (decoding), through a warm decode cache, and the
ceiling of decoding alone (the same reader processes, no network).

Full-size films are made in a temporary folder from kermany films (upscaled to --side px;
no real full-size set is in shared/): 8-bit PNG, JPEG (quality 90) and 16-bit DICOM
(explicit VR little endian, uncompressed). Each figure is one timed pass; "before" is
the reader the check used until issue 16 (full decode, then resize, one film at a time
across the process boundary).

    .venv/bin/python benchmarks/screen_decode.py [--n 200] [--n-small 2000] [--side 2048]

Writes benchmarks/results/screen_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "kermany_pneumonia"
OUT = REPO / "benchmarks" / "results" / "screen_decode.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="films per full-size format")
    ap.add_argument("--n-small", type=int, default=2000, help="224-px PNG films")
    ap.add_argument("--side", type=int, default=2048, help="side of the full-size films")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import torch

    from cxrkit.polarity import check_paths, load_polarity_model

    torch.set_num_threads(1)
    model = load_polarity_model()
    report: dict = {"n": args.n, "side": args.side, "workers": args.workers, "rows": []}
    report["load_avg_at_start"] = os.getloadavg()
    small = sorted((DATA / "images").glob("*.png"))[: args.n_small]
    sources = small[: args.n]
    with tempfile.TemporaryDirectory(prefix="cxr-screen-") as tmp_name:
        tmp = Path(tmp_name)
        sets = {"png 224 px": small, **make_full_size(sources, tmp, args.side)}
        for name, paths in sets.items():
            row: dict = {"format": name, "films": len(paths)}
            row["decode_only_films_per_s"] = rate(
                len(paths), lambda p=paths: decode_only(p, model, args.workers)
            )
            row["before_films_per_s"] = rate(
                len(paths), lambda p=paths: old_check(p, model, args.workers)
            )
            row["cold_films_per_s"] = rate(
                len(paths), lambda p=paths: drain(check_paths(p, model, num_workers=args.workers))
            )
            cache = tmp / f"cache-{name.replace(' ', '_')}"
            drain(check_paths(paths, model, num_workers=args.workers, cache_dir=cache))  # fill
            row["cached_films_per_s"] = rate(
                len(paths),
                lambda p=paths, c=cache: drain(
                    check_paths(p, model, num_workers=args.workers, cache_dir=c)
                ),
            )
            row["load_avg"] = os.getloadavg()[0]
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


def make_full_size(sources: list[Path], tmp: Path, side: int) -> dict[str, list[Path]]:
    """Full-size PNG, JPEG and 16-bit DICOM copies of the films, upscaled to `side` px."""
    import pydicom
    from PIL import Image
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out: dict[str, list[Path]] = {"png full size": [], "jpeg full size": [], "dicom full size": []}
    for d in ("png", "jpeg", "dicom"):
        (tmp / d).mkdir()
    for k, src in enumerate(sources):
        big = Image.open(src).convert("L").resize((side, side), Image.Resampling.BILINEAR)
        big.save(tmp / "png" / f"{k}.png")
        big.save(tmp / "jpeg" / f"{k}.jpg", quality=90)
        out["png full size"].append(tmp / "png" / f"{k}.png")
        out["jpeg full size"].append(tmp / "jpeg" / f"{k}.jpg")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
        )
        ds.Modality, ds.PhotometricInterpretation = "CR", "MONOCHROME2"
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
        ds.PixelRepresentation = 0
        ds.PixelData = (np.asarray(big, np.uint16) * 16).tobytes()
        path = tmp / "dicom" / f"{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out["dicom full size"].append(path)
    return out


def decode_only(paths: list[Path], model, workers: int) -> None:
    """The reader processes alone: decode + resize to the net's size, no network."""
    from cxrkit.polarity.decode import small_film_batches

    drain(small_film_batches(paths, model.input_size, num_workers=workers))


def old_check(paths: list[Path], model, workers: int) -> None:
    """The check as it read films before: full decode, resize, items one by one."""
    from torch.utils.data import DataLoader, Dataset

    from cxrkit.io import read_image, resize_film

    class Films(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> np.ndarray:
            return resize_film(read_image(paths[i])[0], model.input_size, "squash")

    for items in DataLoader(Films(), batch_size=256, num_workers=workers, collate_fn=list):
        model.probs(np.stack(items))


def drain(it) -> None:
    for _ in it:
        pass


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return round(n / (time.perf_counter() - t0), 1)


if __name__ == "__main__":
    main()
