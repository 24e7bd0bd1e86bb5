"""`cxr predict --part K/N` and `cxr predict-merge`: prediction split across machines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrkit.classifier.parts import parse_part, select_part
from cxrkit.cli.app import app
from cxrkit.cli.flags import as_flags
from cxrkit.errors import CxrkitError
from serve_helpers import save_random_model


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory, kermany_dir: Path) -> Path:
    """Five films and one unreadable file in a folder."""
    folder = tmp_path_factory.mktemp("films")
    for src in sorted((kermany_dir / "images").glob("*.png"))[:5]:
        shutil.copy(src, folder / src.name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("parts") / "model.safetensors")


def _predict(*args: object) -> None:
    result = CliRunner().invoke(
        app, ["predict", *map(str, args), "--num-workers", "0", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output


def _merge(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["predict-merge", *map(str, args)])


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_two_parts_merged_equal_one_run(model: Path, films: Path, tmp_path: Path, suffix: str):
    single = tmp_path / f"single{suffix}"
    _predict(model, films, "--out", single)
    parts = [tmp_path / f"part{k}{suffix}" for k in range(2)]
    for k, part in enumerate(parts):
        _predict(model, films, "--out", part, "--part", f"{k}/2")
    merged = tmp_path / f"merged{suffix}"
    result = _merge(*parts, "--out", merged)
    assert result.exit_code == 0, result.output
    if suffix == ".csv":  # the same rows, in the same order, byte for byte
        assert merged.read_text() == single.read_text()
        return
    # JSON keeps full float precision: a film batched with other films gets probabilities
    # a few float32 ulps apart (the convolutions' batch), so those compare to 1e-6
    rows, want = json.loads(merged.read_text()), json.loads(single.read_text())
    assert len(rows) == 6 and sum("error" in r for r in rows) == 1  # unreadable kept
    for got, expected in zip(rows, want, strict=True):
        assert {k: v for k, v in got.items() if k != "probabilities"} == {
            k: v for k, v in expected.items() if k != "probabilities"
        }
        for c, p in (expected.get("probabilities") or {}).items():
            assert got["probabilities"][c] == pytest.approx(p, abs=1e-6)


def test_parts_cover_every_film_exactly_once() -> None:
    films = [f"f{i}" for i in range(11)]
    for n in (1, 2, 3, 11, 12):
        chosen = [f for k in range(n) for f in select_part(films, k, n)]
        assert sorted(chosen) == sorted(films) and len(chosen) == len(films)


@pytest.mark.parametrize("bad", ["3/2", "0/0", "2/2", "-1/2", "1", "a/b"])
def test_a_bad_part_is_refused_before_the_model_loads(bad: str, films: Path) -> None:
    with pytest.raises(CxrkitError) as err:
        parse_part(bad)
    assert "--part" in as_flags(str(err.value))
    result = CliRunner().invoke(
        app, ["predict", "/no/such/model", str(films), "--out", "/tmp/x.csv", "--part", bad]
    )
    assert isinstance(result.exception, CxrkitError)
    assert "part" in str(result.exception) and "model" not in str(result.exception)


def test_merge_refuses_other_models_and_missing_parts(
    model: Path, films: Path, tmp_path: Path
) -> None:
    other = save_random_model(tmp_path / "other.safetensors", seed=5)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _predict(model, films, "--out", a, "--part", "0/2")
    _predict(other, films, "--out", b, "--part", "1/2")
    result = _merge(a, b, "--out", tmp_path / "m.csv")
    assert isinstance(result.exception, CxrkitError) and "another model" in str(result.exception)
    result = _merge(a, "--out", tmp_path / "m.csv")
    assert isinstance(result.exception, CxrkitError) and "missing [1]" in str(result.exception)
    assert not (tmp_path / "m.csv").exists()
