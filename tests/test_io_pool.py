"""DecodePool: films decoded in worker processes; crashes, hangs and bombs are contained."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bad_files import encode, noisy_film, rle_panic_dicom
from cxrkit.errors import (
    CorruptImageError,
    DecoderCrashError,
    DecodeTimeoutError,
    DecompressionBombError,
    EmptyFileError,
    UnsupportedFormatError,
)
from cxrkit.io import read_image_bytes
from cxrkit.io.pool import DecodePool

FAULTY = [sys.executable, str(Path(__file__).with_name("faulty_decode_worker.py"))]
PNG = encode(noisy_film(64), "PNG")


@pytest.fixture(scope="module")
def pool() -> Iterator[DecodePool]:
    with DecodePool(2, memory_mb=512, timeout_s=3.0, worker_argv=FAULTY) as p:
        yield p


def test_film_and_meta_match_the_in_process_reader(pool: DecodePool) -> None:
    image, meta = pool.decode(PNG, "film.png")
    expected, expected_meta = read_image_bytes(PNG, "film.png")
    np.testing.assert_array_equal(image, expected)
    assert meta == expected_meta and image.dtype == np.float32


def test_reader_errors_keep_their_type(pool: DecodePool) -> None:
    with pytest.raises(EmptyFileError):
        pool.decode(b"", "e.png")
    with pytest.raises(UnsupportedFormatError, match="not a PNG"):
        pool.decode(b"hello, world\n", "t.png")
    with pytest.raises(CorruptImageError, match="PanicException"):
        pool.decode(rle_panic_dicom(), "panic.dcm")


def test_a_crashing_worker_is_replaced(pool: DecodePool) -> None:
    before = pool.stats.as_dict()
    with pytest.raises(DecoderCrashError, match="SIGSEGV") as info:
        pool.decode(b"SEGV", "crash.png")
    assert str(info.value).startswith("crash.png: the decoder crashed")
    with pytest.raises(DecoderCrashError, match="status 3"):
        pool.decode(b"EXIT", "exit.png")
    assert pool.decode(PNG, "after.png")[0].shape == (64, 64)
    after = pool.stats.as_dict()
    assert after["crashes"] - before["crashes"] == 2
    assert after["restarts"] - before["restarts"] == 2


def test_a_hanging_worker_times_out_and_is_replaced(pool: DecodePool) -> None:
    start = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="longer than 3 s"):
        pool.decode(b"HANG", "hang.png")
    assert time.monotonic() - start < 8
    assert pool.decode(PNG, "after.png")[0].shape == (64, 64)


def test_memory_limit_gives_a_bomb_error(pool: DecodePool) -> None:
    with pytest.raises(DecompressionBombError, match="512 MB memory limit"):
        pool.decode(b"BOMB", "bomb.png")
    assert pool.decode(PNG, "after.png")[0].shape == (64, 64)


def test_good_films_keep_flowing_beside_a_hang(pool: DecodePool) -> None:
    """One worker hangs; the other keeps decoding meanwhile."""
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            pool.decode(b"HANG", "hang.png")
        except DecodeTimeoutError as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    for _ in range(5):
        pool.decode(PNG, "good.png")
    assert time.monotonic() - start < 2.5
    thread.join(10)
    assert len(errors) == 1


def test_closed_pool_refuses_work() -> None:
    pool = DecodePool(1, timeout_s=5.0)
    pool.decode(PNG, "a.png")
    procs = [w.proc for w in pool._all]
    pool.close()
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        pool.decode(PNG, "a.png")


def test_a_worker_that_cannot_start_is_an_error_not_a_deadlock() -> None:
    with DecodePool(1, timeout_s=2.0, worker_argv=["/nonexistent/python"]) as pool:
        for _ in range(2):  # the slot stays usable: the second call does not block
            with pytest.raises(DecoderCrashError, match="could be started"):
                pool.decode(PNG, "a.png")
