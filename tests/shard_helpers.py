"""Tiny WebDataset shards and a local HTTP server for the streaming tests (no converter)."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def write_shards(
    films: Sequence[tuple[str, bytes, dict]],
    folder: Path,
    per_shard: int,
    labels_csv: bool = False,
) -> list[Path]:
    """(key, png bytes, metadata) films as `NNNNNN.tar` shards of `KEY.png` + `KEY.json`,
    in the order given (no shuffle); `labels_csv`: also a labels.csv like the converter's
    (each film's metadata, `key` and `shard`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for n, start in enumerate(range(0, len(films), per_shard)):
        path = folder / f"{n:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for key, png, meta in films[start : start + per_shard]:
                for ext, data in (("png", png), ("json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({**meta, "key": key, "shard": path.name})
        paths.append(path)
    if labels_csv:
        with open(folder / "labels.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return paths


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a free local port in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
