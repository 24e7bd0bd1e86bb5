"""Film loading throughput: read + resize to 224 through CXRDataset and a DataLoader.

Sources: Kermany PNGs (224x224), larger PNGs (../shared/data samples and covid_lungmasks,
up to 512 px, cycled to the requested count), and DICOMs written here with pydicom from
those larger PNGs at native size, all 16-bit: half uncompressed, a quarter RLE Lossless,
a quarter JPEG 2000 Lossless. Each source is read with 1 and 2 DataLoader workers (batch
32, `collate_skip_bad`), three passes each: without a cache (decode every film), through
a fresh `DecodeCache` (first pass fills it) and through it again (warm). The OS page cache
is warmed before timing, so "no cache" means no decode cache, not cold disks. Timings
include worker start-up. No pass/fail: it prints images/s, ratios and total wall time.

    .venv/bin/python benchmarks/io_throughput.py [--data ../shared/data] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.table import LabelTable, Record, load_table

REPO = Path(__file__).resolve().parents[1]
CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
PASSES = ("no cache", "cache fill", "cache warm")


def film_table(paths: list[Path], root: Path) -> LabelTable:
    """A one-class table over `paths` (repeats allowed: a cycled source keeps every entry)."""
    records = [Record(path=p, labels=("film",), patient_id=str(i)) for i, p in enumerate(paths)]
    return LabelTable(root, records, ["film"], "multiclass", "label")


def kermany_table(data: Path, n: int) -> LabelTable:
    """A seeded random subset of `n` Kermany films (224x224 8-bit PNG)."""
    table = load_table(data / "kermany_pneumonia")
    picked = sorted(random.Random(0).sample(range(len(table)), min(n, len(table))))
    return table.subset(picked)


def large_png_paths(data: Path) -> list[Path]:
    """The larger shared PNGs: samples (512x512) and covid_lungmasks images (<= 512 px)."""
    samples = data / "samples"
    found = sorted(samples.glob("*.png")) + sorted(samples.glob("tbx11k/imgs/*/*.png"))
    return found + sorted((data / "covid_lungmasks" / "images").glob("*.png"))


def write_dicom(path: Path, pixels8: np.ndarray, syntax: UID) -> None:
    """A 16-bit MONOCHROME2 CR film (8-bit grey x 257) in the given transfer syntax."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "CR"
    ds.PatientID = "BENCH"
    ds.set_pixel_data(pixels8.astype(np.uint16) * 257, "MONOCHROME2", 16)
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)


def write_dicoms(sources: list[Path], n: int, folder: Path) -> dict[str, list[Path]]:
    """`n` DICOMs from `sources` (cycled): half native, a quarter RLE, a quarter JPEG 2000."""
    n_native = n // 2
    n_rle = (n - n_native) // 2
    plan = [ExplicitVRLittleEndian] * n_native + [RLELossless] * n_rle
    plan += [JPEG2000Lossless] * (n - n_native - n_rle)
    names = {
        ExplicitVRLittleEndian: "dicom native 16-bit",
        RLELossless: "dicom RLE lossless 16-bit",
        JPEG2000Lossless: "dicom J2K lossless 16-bit",
    }
    groups: dict[str, list[Path]] = {name: [] for name in names.values()}
    for i, (source, syntax) in enumerate(zip(cycle(sources), plan, strict=False)):
        with Image.open(source) as im:
            pixels = np.asarray(im.convert("L"))
        path = folder / f"{i:04d}.dcm"
        write_dicom(path, pixels, syntax)
        groups[names[syntax]].append(path)
    return groups


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once so timings measure decoding, not the first disk read."""
    for p in set(paths):
        p.read_bytes()


def one_pass(dataset: CXRDataset, workers: int, batch_size: int) -> tuple[int, float]:
    """Iterate a fresh DataLoader once; (films loaded, seconds including worker start-up)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skip_bad,
        shuffle=False,
    )
    start = time.perf_counter()
    n = 0
    for batch in loader:
        if batch is not None:
            n += int(batch["image"].shape[0])
    return n, time.perf_counter() - start


def bench_source(
    table: LabelTable, workers: list[int], size: int, batch_size: int, cache_root: Path, tag: str
) -> list[dict[str, Any]]:
    """images/s of the three passes for each worker count."""
    rows = []
    for w in workers:
        cache_dir = cache_root / f"{tag}-w{w}"
        rates = {}
        loaded = None
        for name in PASSES:
            ds = CXRDataset(table, size=size, cache_dir=None if name == "no cache" else cache_dir)
            n, seconds = one_pass(ds, w, batch_size)
            loaded = n if loaded is None else min(loaded, n)
            rates[name] = n / seconds
        rows.append({"workers": w, "films": loaded, **{k: round(v, 1) for k, v in rates.items()}})
    return rows


def size_range(table: LabelTable) -> str:
    """'h x w' range of the distinct files of a table (header only)."""
    from cxrkit.data.summary import probe_file

    sizes = {probe_file(p, read_all=False).size for p in {r.path for r in table.records}}
    sides = [s for size in sizes if size for s in size]
    return f"{min(sides)}-{max(sides)} px" if sides else "?"


def print_table(results: list[dict[str, Any]]) -> None:
    """Plain-text table: images/s per pass, cached/uncached and 2-vs-1-worker ratios."""
    head = (
        f"{'source':<27} {'files':>11} {'sizes':>12} {'wk':>2} "
        f"{'no cache':>9} {'fill':>7} {'warm':>8} {'warm/none':>9} {'2w/1w none':>10} "
        f"{'2w/1w warm':>10}"
    )
    print(head)
    print("-" * len(head))
    for src in results:
        by_w = {r["workers"]: r for r in src["rows"]}
        for r in src["rows"]:
            one = by_w.get(1)
            scale_none = scale_warm = ""
            if r["workers"] != 1 and one:
                scale_none = f"{r['no cache'] / one['no cache']:.2f}x"
                scale_warm = f"{r['cache warm'] / one['cache warm']:.2f}x"
            files = f"{src['entries']} ({src['distinct']})"
            print(
                f"{src['source']:<27} {files:>11} {src['sizes']:>12} {r['workers']:>2} "
                f"{r['no cache']:>9.1f} {r['cache fill']:>7.1f} {r['cache warm']:>8.1f} "
                f"{r['cache warm'] / r['no cache']:>8.1f}x {scale_none:>10} {scale_warm:>10}"
            )


def main() -> None:
    """Build the sources, run every pass, print the table and the total wall time."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--kermany", type=int, default=500, help="Kermany films")
    ap.add_argument("--large", type=int, default=200, help="larger PNG entries (cycled)")
    ap.add_argument("--dicom", type=int, default=200, help="DICOMs to write")
    ap.add_argument("--workers", default="1,2", help="DataLoader worker counts")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="cxr-io-bench-") as tmp:
        tmp_dir = Path(tmp)
        large_sources = large_png_paths(args.data)
        large = list(islice(cycle(large_sources), args.large))
        dicom_dir = tmp_dir / "dicom"
        dicom_dir.mkdir()
        t_write = time.perf_counter()
        dicom_groups = write_dicoms(large_sources, args.dicom, dicom_dir)
        t_write = time.perf_counter() - t_write

        sources: list[tuple[str, LabelTable]] = [
            ("kermany png 8-bit", kermany_table(args.data, args.kermany)),
            ("larger png 8-bit", film_table(large, args.data)),
        ]
        sources += [(name, film_table(p, dicom_dir)) for name, p in dicom_groups.items()]
        results = []
        for tag, (name, table) in enumerate(sources):
            paths = [r.path for r in table.records]
            warm_page_cache(paths)
            rows = bench_source(
                table, workers, args.size, args.batch_size, tmp_dir / "cache", str(tag)
            )
            results.append(
                {
                    "source": name,
                    "entries": len(table),
                    "distinct": len(set(paths)),
                    "sizes": size_range(table),
                    "rows": rows,
                }
            )

    total = time.perf_counter() - t0
    print(
        f"cxrkit io throughput: read + resize to {args.size}, CXRDataset -> DataLoader "
        f"(batch {args.batch_size}, collate_skip_bad); images/s, worker start-up included"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, pydicom "
        f"{pydicom.__version__}; load average {load_start:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end (above the CPU count = contended, numbers pessimistic)"
    )
    print("files = entries (distinct files); fill = first pass through an empty DecodeCache\n")
    print_table(results)
    print(f"\nwrote {args.dicom} DICOMs in {t_write:.1f} s; total wall time {total:.1f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"results": results, "total_s": round(total, 1), "load_start": load_start}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
