"""Mistakes on the `cxr train/evaluate/predict` command line: one error line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from cxrkit.cli.app import main


def run_cxr(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """Run `cxr ARGS...` through the console entry point; returns (exit code, stderr)."""
    capsys.readouterr()
    with mock.patch.object(sys, "argv", ["cxr", *map(str, args)]):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """Exit code 2 and a single `error: ...` line on stderr naming `words`."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, err)


def test_unknown_config_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("backbone: small_cnn\nepochz: 3\n")
    code, err = run_cxr(
        capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--config", cfg
    )
    assert_one_line_error(code, err, "unknown config option", "epochz")


def test_config_value_of_the_wrong_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: ten\n")
    code, err = run_cxr(
        capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--config", cfg
    )
    assert_one_line_error(code, err, "epochs", "ten")


def test_config_that_is_not_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: [1, 2\nlr: 0.1\n")
    code, err = run_cxr(
        capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--config", cfg
    )
    assert_one_line_error(code, err, "not valid YAML")


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cxr(
        capsys,
        "train",
        "--data",
        tmp_path,
        "--out",
        tmp_path / "r",
        "--config",
        tmp_path / "x.yaml",
    )
    assert_one_line_error(code, err, "config file not found")


def test_bad_set_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cxr(
        capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--set", "lr"
    )
    assert_one_line_error(code, err, "KEY=VALUE")


def test_missing_data_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dataset"
    code, err = run_cxr(
        capsys,
        "train",
        "--data",
        missing,
        "--out",
        tmp_path / "run",
        "--backbone",
        "small_cnn",
    )
    assert_one_line_error(code, err, str(missing), "no such file")


def test_image_size_too_small_for_the_backbone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, nih_dir: Path
) -> None:
    code, err = run_cxr(
        capsys,
        "train",
        "--data",
        nih_dir,
        "--out",
        tmp_path / "run",
        "--backbone",
        "inception_v3",
        "--random-init",
        "--image-size",
        "32",
        "--max-images",
        "30",
    )
    assert_one_line_error(code, err, "image_size 32", "inception_v3")


def test_missing_model_file_for_predict(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    film = tmp_path / "film.png"
    film.write_bytes(b"")
    code, err = run_cxr(capsys, "predict", tmp_path / "model.safetensors", film)
    assert_one_line_error(code, err, "model file not found")


def test_missing_model_file_for_evaluate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cxr(
        capsys, "evaluate", tmp_path / "run", "--data", tmp_path, "--out", tmp_path / "ev"
    )
    assert_one_line_error(code, err, "model file not found")


def test_predict_with_nothing_to_predict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cxr(capsys, "predict", tmp_path / "model.safetensors", tmp_path / "none*.png")
    assert_one_line_error(code, err)


def test_evaluate_split_file_without_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cxr(
        capsys,
        "evaluate",
        tmp_path / "run",
        "--data",
        tmp_path,
        "--out",
        tmp_path / "ev",
        "--split-file",
        tmp_path / "split.csv",
    )
    assert_one_line_error(code, err, "--split-file needs --split")


def test_predict_output_must_be_csv_or_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cxr(
        capsys, "predict", tmp_path / "model.safetensors", tmp_path, "--out", tmp_path / "p.txt"
    )
    assert_one_line_error(code, err, ".csv or .json")


def test_a_lung_or_polarity_model_is_not_taken_for_a_classifier(
    capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    from cxrkit.polarity.model import DEFAULT_MODEL
    from cxrkit.segment.model import default_model_path

    film = samples_dir / "00000001_000.png"
    for model, command in ((default_model_path(), "cxr segment"), (DEFAULT_MODEL, "cxr polarity")):
        code, err = run_cxr(capsys, "predict", model, film)
        assert_one_line_error(code, err, "not a classifier", command)


@pytest.mark.parametrize(
    "command", [["segment"], ["polarity", "check"], ["explain", "MODEL"]], ids=" ".join
)
def test_an_empty_folder_of_films_is_an_error_not_a_silent_success(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    from serve_helpers import save_random_model

    empty = tmp_path / "films"
    empty.mkdir()
    model = save_random_model(tmp_path / "m.safetensors")
    args = [model if a == "MODEL" else a for a in command]
    code, err = run_cxr(capsys, *args, empty, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "no films found")


def test_a_batch_size_of_zero_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, samples_dir: Path
) -> None:
    out = tmp_path / "preds.csv"
    out.write_text("earlier results\n")
    film = samples_dir / "00000001_000.png"
    code, err = run_cxr(capsys, "polarity", "check", film, "--batch-size", "0", "--out", out)
    assert code == 2 and "batch-size" in err and "Traceback" not in err
    assert out.read_text() == "earlier results\n"  # not truncated by a run that cannot start


def test_training_options_that_would_fail_late_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, nih_dir: Path
) -> None:
    run = tmp_path / "run"
    code, err = run_cxr(capsys, "train", "--data", nih_dir, "--out", run, "--set", "max_images=0")
    assert_one_line_error(code, err, "max_images")
    code, err = run_cxr(capsys, "polarity", "train", nih_dir, "--out", run, "--steps", "0")
    assert code == 2 and "steps" in err and "Traceback" not in err
    out = tmp_path / "set"
    code, err = run_cxr(capsys, "data", "polarity-set", nih_dir, "--out", out, "--resize-mode", "x")
    assert_one_line_error(code, err, "resize_mode")
    assert not run.exists() and not out.exists()


def test_polarity_train_without_lateral_films_stops_before_the_base_stage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, nih_dir: Path
) -> None:
    import shutil

    films = tmp_path / "frontal"
    films.mkdir()
    for thumb in sorted((nih_dir / "images").glob("*.png"))[:8]:
        shutil.copy(thumb, films / thumb.name)
    run = tmp_path / "run"
    code, err = run_cxr(capsys, "polarity", "train", films, "--out", run, "--steps", "5")
    assert code == 2 and "needs lateral films" in " ".join(err.split())
    assert not (run / "base.safetensors").exists()  # refused before minutes of training
