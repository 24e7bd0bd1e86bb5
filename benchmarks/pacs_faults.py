"""Run the PACS fault tests against a real Orthanc and write their faults and outcomes.

    .venv/bin/python benchmarks/pacs_faults.py     # -> benchmarks/results/pacs_faults.json

Runs `pytest tests/test_pacs_faults.py` (each test starts its own Orthanc) with
`CXR_PACS_FAULTS_OUT` set, so every test that passes appends its fault and outcome; the
test report (JUnit XML) gives each test's result and time. A test that failed or did not
run is listed with its result and no outcome. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = "tests/test_pacs_faults.py"
OUT = REPO / "benchmarks" / "results" / "pacs_faults.json"


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\d+\.\d+(\.\d+)?", done.stdout + done.stderr)
    return found.group(0) if found else None


def _plugin_version() -> str | None:
    """The orthanc-dicomweb package's version (Debian), when dpkg knows it."""
    return _version(["dpkg-query", "-W", "-f=${Version}", "orthanc-dicomweb"])


def main(argv: list[str] | None = None) -> int:
    """Run the tests, write the result file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help="result file to write")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cxr-pacs-faults-") as tmp:
        lines, junit = Path(tmp) / "faults.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "CXR_PACS_FAULTS_OUT": str(lines)}
        load_start = os.getloadavg()
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS,
             f"--junitxml={junit}"],
            cwd=REPO, env=env, text=True,
        )  # fmt: skip
        wall = time.monotonic() - start
        load_end = os.getloadavg()
        records = [json.loads(x) for x in lines.read_text().splitlines()] if lines.exists() else []
        tests = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            result = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    result = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            tests.append(
                {"test": case.get("name"), "result": result, "seconds": float(case.get("time", 0))}
            )
    results = {t["test"]: t["result"] for t in tests}
    faults = [{**r, "result": results.get(r["test"], "not run")} for r in records]
    faults += [
        {"test": t["test"], "fault": None, "outcome": None, "result": t["result"]}
        for t in tests
        if t["test"] not in {r["test"] for r in records}
    ]
    data = {
        "command": "python benchmarks/pacs_faults.py",
        "tests_file": TESTS,
        "server": {
            "orthanc": _version(["Orthanc", "--version"]),
            "orthanc_dicomweb": _plugin_version(),
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in load_end],
        },
        "wall_s": round(wall, 1),
        "tests": [{**t, "seconds": round(t["seconds"], 1)} for t in tests],
        "passed": sum(t["result"] == "passed" for t in tests),
        "faults": faults,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {data['passed']} of {len(tests)} fault tests passed")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
