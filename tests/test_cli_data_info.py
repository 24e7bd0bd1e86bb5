"""`cxr data info` and the one-line error contract of the `cxr` process, run as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bad_files import BAD_FILES, encode, noisy_film, write_bad_file
from cxrkit.cli.app import app
from cxrkit.io import DEFAULT_MAX_PIXELS, inspect_file
from cxrkit.io.info import INFO_KEYS
from dicom_factory import write_dicom

CXR_SCRIPT = Path(sys.executable).with_name("cxr")
# No terminal size: piped output must not depend on the caller's (pytest may export one).
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def _command(args: tuple[str | Path, ...], script: bool) -> list[str]:
    head = [str(CXR_SCRIPT)] if script else [sys.executable, "-m", "cxrkit"]
    return [*head, *map(str, args)]


def cxr(*args: str | Path, script: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the command line in a fresh process (`python -m cxrkit`, or the `cxr` script)."""
    return subprocess.run(
        _command(args, script), capture_output=True, text=True, timeout=60, check=False, env=ENV
    )


def cxr_many(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run several `cxr` command lines at once (each in its own process); results by key."""
    procs = {
        key: subprocess.Popen(
            _command(tuple(args), False),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for key, args in commands.items()
    }
    done = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def assert_one_line_error(run: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, exactly one stderr line containing `words` (case-insensitive), no traceback."""
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture()
def good_films(tmp_path: Path) -> list[Path]:
    """A grey PNG and a MONOCHROME1 16-bit DICOM with pixel spacing."""
    png = tmp_path / "good.png"
    png.write_bytes(encode(noisy_film(40), "PNG"))
    pixels = (noisy_film(48).astype(np.uint16) * 16)[:, :40]
    dcm = write_dicom(
        tmp_path / "good.dcm",
        pixels,
        photometric="MONOCHROME1",
        bits_stored=12,
        modality="DX",
        pixel_spacing=[0.2, 0.25],
    )
    return [png, dcm]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """`cxr data info BAD_FILE` for every bad input, run concurrently to keep the suite fast."""
    folder = tmp_path_factory.mktemp("bad")
    commands = {key: ["data", "info", str(write_bad_file(key, folder))] for key in BAD_FILES}
    commands["missing"] = ["data", "info", str(folder / "gone.png")]
    commands["folder"] = ["data", "info", str(folder)]
    commands["bad-option"] = ["data", "info", "--bogus", str(folder / "gone.png")]
    commands["bad-verb"] = ["nosuch"]
    return cxr_many(commands)


@pytest.mark.parametrize("key", list(BAD_FILES))
def test_bad_input_gives_one_line_and_exit_2(
    key: str, bad_runs: dict[str, subprocess.CompletedProcess]
) -> None:
    run = bad_runs[key]
    assert_one_line_error(run, BAD_FILES[key].name, *BAD_FILES[key].words)
    assert run.stdout.strip() == ""


def test_missing_file_and_folder(bad_runs: dict[str, subprocess.CompletedProcess]) -> None:
    assert_one_line_error(bad_runs["missing"], "gone.png", "not found")
    assert_one_line_error(bad_runs["folder"], "is a directory")


@pytest.mark.parametrize(("key", "words"), [("bad-option", "--bogus"), ("bad-verb", "nosuch")])
def test_usage_errors_exit_2_without_traceback(
    key: str, words: str, bad_runs: dict[str, subprocess.CompletedProcess]
) -> None:
    run = bad_runs[key]
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr, run.stderr
    assert words in run.stderr and "Usage: cxr" in run.stderr


@pytest.mark.parametrize("key", list(BAD_FILES))
def test_inspect_file_reports_each_bad_input(key: str, tmp_path: Path) -> None:
    info = inspect_file(write_bad_file(key, tmp_path))
    assert not info.ok and info.meta is None and info.error_type
    assert "\n" not in info.message and BAD_FILES[key].name in info.message
    for word in BAD_FILES[key].words:
        assert word in info.message.lower()


def test_good_files_are_listed_beside_bad_ones(tmp_path: Path, good_films: list[Path]) -> None:
    bad = [write_bad_file(key, tmp_path) for key in ("zero-byte", "dicom-ct")]
    run = cxr("data", "info", good_films[0], bad[0], good_films[1], bad[1])
    assert run.returncode == 2 and "Traceback" not in run.stderr
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 2
    assert bad[0].name in errors[0] and bad[1].name in errors[1]
    rows = {
        line.split()[0]: line.split()[1:] for line in run.stdout.splitlines() if "good." in line
    }
    assert rows[str(good_films[0])] == ["png", "8", "40x40", "L", "-", "no", "-"]
    assert rows[str(good_films[1])] == [
        "dicom",
        "12",
        "48x40",
        "MONOCHROME1",
        "0.2x0.25",
        "yes",
        "DX",
    ]


def test_json_lists_every_file(tmp_path: Path, good_films: list[Path]) -> None:
    bomb = write_bad_file("png-bomb", tmp_path)
    run = cxr("data", "info", "--json", *good_films, bomb)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1
    listed = json.loads(run.stdout)
    assert [tuple(entry) for entry in listed] == [INFO_KEYS] * 3
    png, dcm, bad = listed
    assert png["ok"] and png["format"] == "png" and png["original_size"] == [40, 40]
    assert dcm["pixel_spacing"] == [0.2, 0.25] and dcm["inverted"] is True
    assert dcm["bit_depth"] == 12 and dcm["modality"] == "DX"
    assert not bad["ok"] and bad["error_type"] == "DecompressionBombError"
    assert "30000x30000" in bad["error"] and bad["format"] is None


def test_all_good_exits_0_and_max_pixels_applies(good_films: list[Path]) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "info", *map(str, good_films)])
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(app, ["data", "info", "--max-pixels", "100", str(good_films[0])])
    assert refused.exit_code == 2
    assert "decompression bomb" in refused.output
    help_text = runner.invoke(app, ["data", "info", "--help"], env={"COLUMNS": "200"}).output
    assert f"{DEFAULT_MAX_PIXELS:,}" in help_text


@pytest.mark.skipif(not CXR_SCRIPT.exists(), reason="no cxr console script beside python")
def test_console_script_follows_the_same_contract(tmp_path: Path) -> None:
    path = write_bad_file("pdf-as-png", tmp_path)
    assert_one_line_error(cxr("data", "info", path, script=True), "report.png", "PDF")


def test_summary_of_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_set"
    run = cxr("data", "summary", missing)
    assert_one_line_error(run, "no_such_set", "no such file or folder")


def test_summary_of_csv_without_path_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,label\na.png,normal\n")
    run = cxr("data", "summary", csv_path)
    assert_one_line_error(run, "labels.csv", "missing column 'path'", "file, label")
