"""A full disk gives a one-line `DiskFullError` and leaves the previous file as it was; a half
file under a final name (a kill before writes were atomic, a damaged disk) is never taken whole.
"""

from __future__ import annotations

import errno
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cxrkit.data.cache import DecodeCache
from cxrkit.errors import CxrkitError, DiskFullError, ModelFileError
from cxrkit.fit.checkpoint import load_checkpoint, save_checkpoint
from cxrkit.io import atomic
from cxrkit.io.atomic import atomic_write, atomic_write_text, temp_files
from cxrkit.models.model_file import load_model_file
from cxrkit.train.features import _load_codes
from site_helpers import assert_one_line_error, run_cxr, sha256, tiny_model_file


class _FullDisk:
    """`os` for `cxrkit.io.atomic` whose temp files take `room` bytes, then raise ENOSPC."""

    def __init__(self, room: int, code: int = errno.ENOSPC) -> None:
        self.room, self.code = room, code

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Any:
        """The real file, with a `write` that fills the disk after `room` bytes."""
        import os

        fh = os.fdopen(fd, *args, **kwargs)
        plain_write, left = fh.write, [self.room]

        def write(data: Any) -> int:
            view = memoryview(data).cast("B")
            if len(view) > left[0]:
                plain_write(view[: left[0]])
                left[0] = 0
                raise OSError(self.code, os.strerror(self.code))
            left[0] -= len(view)
            return plain_write(view)

        fh.write = write
        return fh

    def __getattr__(self, name: str) -> Any:
        import os

        return getattr(os, name)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch):
    """Call with a byte count: from then on atomic writes fail with ENOSPC after that many."""

    def fill(room: int = 100, code: int = errno.ENOSPC) -> None:
        monkeypatch.setattr(atomic, "os", _FullDisk(room, code))

    return fill


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_mid_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, full_disk, code: int
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents")
    full_disk(room=1000, code=code)
    with pytest.raises(DiskFullError) as info:
        atomic_write(target, lambda fh: fh.write(b"x" * 5000))
    exc = info.value
    assert isinstance(exc, CxrkitError) and isinstance(exc, OSError) and exc.errno == code
    message = str(exc)
    assert "\n" not in message and str(target) in message and "no space left" in message
    assert "MB free" in message and "unchanged" in message
    assert target.read_bytes() == b"old contents"
    assert temp_files(target) == [] and sorted(tmp_path.iterdir()) == [target]
    again = pickle.loads(pickle.dumps(exc))  # crosses process boundaries (worker pools) intact
    assert str(again) == message and again.errno == code


def test_other_write_errors_are_not_called_disk_full(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"

    def fail(fh: Any) -> None:
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError) as info:
        atomic_write(target, fail)
    assert not isinstance(info.value, DiskFullError) and info.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_checkpoint_keeps_the_last_checkpoint(tmp_path: Path, full_disk) -> None:
    last = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(last, {"epoch": 3, "module": {"w": torch.ones(4)}})
    before = sha256(last)
    full_disk(room=2000)
    with pytest.raises(DiskFullError):
        save_checkpoint(last, {"epoch": 4, "module": {"w": torch.zeros(100_000)}})
    assert sha256(last) == before and load_checkpoint(last)["epoch"] == 3
    assert temp_files(last) == []


def test_disk_full_text_write_keeps_the_split_file(tmp_path: Path, full_disk) -> None:
    split = tmp_path / "split.csv"
    atomic_write_text(split, "path,patient_id,split\na.png,p1,train\n")
    before = split.read_bytes()
    full_disk(room=10)
    with pytest.raises(DiskFullError):
        atomic_write_text(split, "path,patient_id,split\n" + "b.png,p2,val\n" * 100)
    assert split.read_bytes() == before and temp_files(split) == []


def test_cxr_calibrate_on_a_full_disk_says_so_in_one_line(
    shared_data: Path, tmp_path: Path, full_disk
) -> None:
    """The CLI's error names the file and the full disk; the earlier output file is unchanged."""
    site = shared_data / "kermany_site"
    if not site.is_dir():
        pytest.skip("kermany_site not in shared data")
    src = tiny_model_file(tmp_path / "model.safetensors")
    out = tmp_path / "site.safetensors"
    out.write_bytes(b"an earlier file")
    full_disk(room=4096)
    code, _, err = run_cxr(
        "calibrate", src, "--data", site, "--out", out, "--n-bootstrap", "10", "--folds", "2"
    )
    assert_one_line_error(code, err, str(out.name), "no space left on device")
    assert out.read_bytes() == b"an earlier file"
    assert temp_files(out) == []


def test_decode_cache_on_a_full_disk_still_serves_the_film(
    nih_dir: Path, tmp_path: Path, full_disk
) -> None:
    """A cache entry is optional: a full disk costs the entry, never the film."""
    film_path = next((nih_dir / "images").glob("*.png"))
    cache = DecodeCache(tmp_path / "decoded", 32)
    full_disk(room=50)
    film = cache.load(film_path)
    assert film.shape == (32, 32) and film.dtype == np.float32
    assert not cache.entry_path(film_path).exists()
    assert list(cache.entry_dir.glob("*")) == []


def test_half_written_decode_cache_entry_is_decoded_again(nih_dir: Path, tmp_path: Path) -> None:
    film_path = next((nih_dir / "images").glob("*.png"))
    cache = DecodeCache(tmp_path / "decoded", 32)
    whole = cache.load(film_path)
    entry = cache.entry_path(film_path)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    again = DecodeCache(tmp_path / "decoded", 32)
    assert np.array_equal(again.load(film_path), whole) and again.misses == 1
    assert np.load(entry).shape == (32, 32)  # rewritten whole


def test_half_written_code_cache_is_recomputed(tmp_path: Path) -> None:
    codes = tmp_path / "codes.npy"
    atomic_write(codes, lambda fh: np.save(fh, np.ones((10, 8), np.float32)))
    assert _load_codes(codes, (10, 8)) is not None
    assert _load_codes(codes, (11, 8)) is None  # another set of films: not these codes
    codes.write_bytes(codes.read_bytes()[:200])
    assert _load_codes(codes, (10, 8)) is None


def test_half_written_checkpoint_and_model_file_are_refused(tmp_path: Path) -> None:
    last = save_checkpoint(tmp_path / "last.pt", {"epoch": 1, "w": torch.ones(10_000)})
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CxrkitError, match="unreadable checkpoint"):
        load_checkpoint(last)
    model = tiny_model_file(tmp_path / "model.safetensors")
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ModelFileError):
        load_model_file(model)
