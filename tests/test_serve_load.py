"""A few seconds of benchmarks/serve_load.py against a live server: no errors, sane report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import save_random_model, serve_in_thread  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_short_load_has_no_errors(tmp_path: Path, kermany_dir: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from serve_load import main
    finally:
        sys.path.remove(str(BENCH))
    model = save_random_model(tmp_path / "model.safetensors")
    # all clients share one loopback IP; the per-client rate limit would answer 429
    app = create_app(model, settings=ServeSettings(token=None, rate_limit=0))
    with serve_in_thread(app) as base:  # real uvicorn on loopback, in this process
        report = main(
            [
                "--url",
                base,
                "--data",
                str(kermany_dir),
                "--films",
                "8",
                "--clients",
                "4",
                "--duration",
                "3",
                "--out",
                str(tmp_path / "load.json"),
            ]
        )
    assert report["errors"] == 0, report["first_errors"]
    assert report["requests"] >= 4
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert (tmp_path / "load.json").is_file()
