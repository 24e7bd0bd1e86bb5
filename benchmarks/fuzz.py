"""Fuzz `read_image`, mask PNGs, model cards and decisions (>= 10,000 cases each); tally.

    python benchmarks/fuzz.py                      # 10,000 cases a target, 2 workers
    python benchmarks/fuzz.py --cases 20000 --seed 3 --out benchmarks/results/fuzz.json
    python benchmarks/fuzz.py --targets mask,card  # some targets only

Targets (tests/fuzz_targets.py): `film` (below), `mask` (mutated lung-mask PNGs through
`segment.data.read_mask`), `card` (mutated card JSON through `ModelCard.from_dict`) and
`decision` (fuzzed probability rows through a three-class card's decision). The JSON
holds each target's tally under `targets`; its top-level counts are the film target's
(the format the report has always read).

Seeds are the films of ../shared/data/samples plus small DICOMs (native 8/16-bit,
MONOCHROME1, rescale + SIGMOID window, VOI LUT, RLE 8/16-bit, JPEG 2000, JPEG baseline),
PNGs and JPEGs written with pydicom / Pillow. Each case is one or two structure-aware
(DICOM tags, PNG chunks, JPEG markers) or byte-level mutations (bit flips, truncation,
insertion, duplication, deletion, boundary values), seeded by (--seed, case index).
Cases run in worker processes with a per-case deadline and a memory cap, so a hang or a
crash is counted, never fatal. Outcomes: ok / clean_error / crash / hang / bad_film
(tests/fuzzing.py). Exit status 1 if any case crashed, hung or gave a bad film.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fuzz engine lives with the tests that use it

from fuzz_outcomes import OUTCOMES  # noqa: E402
from fuzz_runner import run_cases  # noqa: E402
from fuzz_targets import TARGETS, make_target_case, seeds_for  # noqa: E402
from fuzzing import make_case, quiet_pydicom, sample_seeds, synthetic_seeds  # noqa: E402

SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))


def main() -> int:
    """Run the fuzz campaign; print and optionally save the tally."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per target")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="master seed of the campaign")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space cap per worker")
    parser.add_argument("--samples", type=Path, default=SHARED / "data" / "samples")
    parser.add_argument("--out", type=Path, default=None, help="write the tally as JSON here")
    parser.add_argument("--per-case", type=Path, default=None, help="write each case's outcome")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")

    quiet_pydicom()
    results, per_case_all = {}, {}
    for target in targets:
        print(f"target {target}:", flush=True)
        results[target], per_case_all[target] = run_target(target, args)
    film = results.get("film") or next(iter(results.values()))
    result = {**film, "targets": results}
    print("target      " + " ".join(f"{name:>12}" for name in OUTCOMES))
    for target, r in results.items():
        print(f"{target:<11} " + " ".join(f"{r[name]:>12,}" for name in OUTCOMES))
    if args.per_case is not None:
        args.per_case.write_text(json.dumps(per_case_all, indent=0) + "\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    failed = sum(r[name] for r in results.values() for name in ("crash", "hang", "bad_film"))
    return 1 if failed else 0


def run_target(target: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """One target's campaign: its result dict and each case's outcome."""
    if target == "film":
        seeds = synthetic_seeds() + sample_seeds(args.samples)
        cases = (make_case(seeds, i, args.seed) for i in range(args.cases))
    else:
        seeds = seeds_for(target)
        cases = (make_target_case(target, seeds, i, args.seed) for i in range(args.cases))
    step = max(1, args.cases // 10)
    start = time.perf_counter()

    def progress(done: int) -> None:
        if done % step == 0:
            print(
                f"  {done:,}/{args.cases:,} cases, {time.perf_counter() - start:.0f} s", flush=True
            )

    tally = run_cases(
        cases,
        workers=args.workers,
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
        progress=progress,
    )
    wall = time.perf_counter() - start
    per_case = json.dumps(sorted(tally.by_case.items())).encode()
    result = {
        **tally.as_dict(),
        "outcomes_sha256": hashlib.sha256(per_case).hexdigest(),  # compare two runs
        "wall_s": round(wall, 1),
        "cases_per_s": round(args.cases / wall, 1),
        "settings": {
            "target": target,
            "seed": args.seed,
            "workers": args.workers,
            "timeout_s": args.timeout,
            "memory_mb": args.memory_mb,
            "seeds": [s.name for s in seeds],
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    for outcome, examples in result["examples"].items():
        print(f"  {outcome} examples:", *examples[:3], sep="\n    ")
    return result, tally.by_case


if __name__ == "__main__":
    sys.exit(main())
