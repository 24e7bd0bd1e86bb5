"""A CI-size run of benchmarks/serve_soak.py: 15 s, 4 clients, good/bad/oversize mix.

The full soak (8 clients, 10 minutes) is run by hand; see docs/SERVE.md for its figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from site_helpers import tiny_model_file  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_short_soak_has_no_5xx_and_the_server_stays_healthy(
    tmp_path: Path, samples_dir: Path, kermany_dir: Path
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from serve_soak import main
    finally:
        sys.path.remove(str(BENCH))
    model = tiny_model_file(tmp_path / "model.safetensors")
    out = tmp_path / "soak.json"
    report = main(
        [
            "--model",
            str(model),
            "--duration",
            "15",
            "--clients",
            "4",
            "--window",
            "5",
            "--films",
            "8",
            "--fuzz-cases",
            "40",
            "--out",
            str(out),
        ]
    )
    summary = report["summary"]
    assert summary["five_xx"] == 0, summary["first_unexpected"]
    assert summary["unexpected"] == 0, summary["first_unexpected"]
    assert summary["healthy_at_end"] and summary["exit_code"] == 0
    assert summary["ok"]
    by_kind = report["totals"]["by_kind"]
    assert by_kind["good"].get("200", 0) > 0
    assert sum(by_kind["bad"].values()) > 0 and sum(by_kind["oversize"].values()) > 0
    assert len(report["windows"]) == 3
    assert all(w["healthy"] for w in report["windows"])
    assert out.is_file()
