"""A resumable HTTP downloader for the sets with open downloads.

Each file goes to DEST/NAME.part first; a rerun (or a retry after a dropped connection,
an HTTP 5xx or a stalled server) asks for the rest with an HTTP Range request, so finished
bytes are never fetched twice. A complete file is checked against the sha256 its owner
publishes or, where none is published, the one recorded on its first complete download
(DEST/SHA256SUMS, trust on first use); a mismatch removes the file. Files are fetched by
a thread pool, with a rich progress bar (bytes, speed, ETA) and a polite pause between
requests. Archives are then unpacked with `extract_archive`.

Why not pooch: it has the registry and sha256 checks but restarts a broken download from
byte 0 and has no thread pool or shared rate limit; the parts it would do here are a few
lines of stdlib `urllib`, so cxrkit keeps no extra dependency for them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cxrkit.datasets.archive import extract_archive
from cxrkit.datasets.registry import RemoteFile, get_dataset
from cxrkit.errors import DatasetError

SUMS_FILE = "SHA256SUMS"
USER_AGENT = "cxrkit-downloader (+https://github.com/cxrkit)"
_CHUNK = 1 << 16


class DownloadError(DatasetError):
    """A file could not be downloaded (after retries) or failed its checksum."""


class _Retryable(Exception):
    """A failure worth another try (5xx, 429, timeout, short body, dropped connection)."""


@dataclass
class FetchResult:
    """What happened to one file: where it is, bytes moved this run, where it resumed."""

    name: str
    path: Path
    status: str  # downloaded | resumed | cached | planned
    fetched: int = 0
    resumed_from: int = 0
    sha256: str = ""
    url: str = ""
    check: str = ""  # planned: how the file will be checked (pinned sha256 or first use)


#: What `--dry-run` says of a file whose owner publishes no checksum.
TRUST_ON_FIRST_USE = "trust on first use: no published sha256; recorded in SHA256SUMS"


class Pacer:
    """Polite rate limit shared by all threads: a pause between request starts and an
    optional cap on bytes per second."""

    def __init__(self, request_interval: float = 0.5, max_bytes_per_s: float | None = None):
        self.request_interval = request_interval
        self.max_bytes_per_s = max_bytes_per_s
        self._lock = threading.Lock()
        self._next_request = 0.0
        self._start = time.monotonic()
        self._bytes = 0

    def before_request(self) -> None:
        """Sleep until this request may start."""
        with self._lock:
            now = time.monotonic()
            wait = self._next_request - now
            self._next_request = max(now, self._next_request) + self.request_interval
        if wait > 0:
            time.sleep(wait)

    def after_bytes(self, n: int) -> None:
        """Account `n` bytes; sleep if the average rate would exceed the cap."""
        if not self.max_bytes_per_s:
            return
        with self._lock:
            self._bytes += n
            ahead = self._bytes / self.max_bytes_per_s - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Sums:
    """DEST/SHA256SUMS: `sha256  name` lines, written atomically, shared by the threads."""

    def __init__(self, dest: Path):
        self.path = dest / SUMS_FILE
        self._lock = threading.Lock()
        self.sums: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                parts = line.split(maxsplit=1)
                if len(parts) == 2:
                    self.sums[parts[1].strip()] = parts[0]

    def record(self, name: str, digest: str) -> None:
        with self._lock:
            self.sums[name] = digest
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(self.sums.items())))
            os.replace(tmp, self.path)


class Downloader:
    """Fetch `RemoteFile`s into `dest` with resume, retries, timeouts and checksums."""

    def __init__(
        self,
        dest: str | Path,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 2.0,
        pacer: Pacer | None = None,
        on_bytes: Callable[[str, int, int | None], None] | None = None,
    ):
        self.dest = Path(dest)
        self.dest.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pacer = pacer or Pacer()
        self.on_bytes = on_bytes
        self.sums = _Sums(self.dest)

    def fetch(self, remote: RemoteFile, url: str | None = None) -> FetchResult:
        """Download one file (resuming a .part), verify it and move it into place."""
        url = url or remote.url
        final = self.dest / remote.name
        if Path(remote.name).name != remote.name or remote.name in ("", ".", ".."):
            raise DownloadError(f"refusing file name {remote.name!r} (must be a plain name)")
        expected = remote.sha256 or self.sums.sums.get(remote.name)
        if final.is_file():
            digest = sha256_of(final)
            if expected and digest != expected:
                final.unlink()
                raise DownloadError(
                    f"{final}: sha256 {digest} does not match {expected}; file removed"
                )
            if not expected:
                self.sums.record(remote.name, digest)
            return FetchResult(remote.name, final, "cached", sha256=digest)
        part = final.with_name(final.name + ".part")
        first_offset = part.stat().st_size if part.is_file() else 0
        counter = [0]  # bytes received over all attempts, failed ones included
        for attempt in range(self.retries + 1):
            try:
                self._get(url, part, remote.name, counter)
                break
            except _Retryable as exc:
                if attempt == self.retries:
                    raise DownloadError(
                        f"{remote.name}: giving up after {self.retries + 1} tries ({exc}); "
                        f"{part.stat().st_size if part.exists() else 0} bytes kept in "
                        f"{part.name}, a rerun resumes"
                    ) from exc
                time.sleep(self.backoff * (2**attempt) if self.backoff else 0)
        digest = sha256_of(part)
        if expected and digest != expected:
            part.unlink()
            raise DownloadError(
                f"{remote.name}: sha256 {digest} does not match the expected {expected}; "
                "the file was removed"
            )
        os.replace(part, final)
        if not expected:
            self.sums.record(remote.name, digest)
        status = "resumed" if first_offset else "downloaded"
        return FetchResult(remote.name, final, status, counter[0], first_offset, digest)

    def _get(self, url: str, part: Path, name: str, counter: list[int]) -> None:
        """One HTTP attempt from the current end of `part`; adds bytes received to counter."""
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        self.pacer.before_request()
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # our .part is not a prefix the server knows
                part.unlink()
                raise _Retryable(f"HTTP 416 at byte {offset}; starting over") from exc
            if exc.code >= 500 or exc.code in (408, 429):
                raise _Retryable(f"HTTP {exc.code}") from exc
            raise DownloadError(f"{name}: HTTP {exc.code} from {url}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"cannot connect ({exc})") from exc
        received = 0
        with response:
            if offset and response.status != 206:
                offset = 0  # the server ignored Range: start the file again
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            if self.on_bytes:
                self.on_bytes(name, offset, total)
            mode = "ab" if offset else "wb"
            with part.open(mode) as out:
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        counter[0] += len(chunk)
                        self.pacer.after_bytes(len(chunk))
                        if self.on_bytes:
                            self.on_bytes(name, offset + received, total)
                except (http.client.HTTPException, OSError) as exc:  # timeouts are OSErrors
                    raise _Retryable(
                        f"connection lost after {offset + received} bytes ({exc!r})"
                    ) from exc
        if total is not None and offset + received < total:
            raise _Retryable(f"body ended at {offset + received} of {total} bytes")


def plan(name: str, base_url: str | None = None) -> list[tuple[RemoteFile, str]]:
    """(file, URL) pairs of set `name`; `base_url` points every file at a mirror."""
    spec = get_dataset(name)
    if not spec.downloadable:
        raise DatasetError(
            f"{spec.name} has no open download. {spec.access or 'See docs/DATASETS.md.'}"
        )
    out = []
    for remote in spec.files:
        url = remote.url if base_url is None else f"{base_url.rstrip('/')}/{remote.name}"
        out.append((remote, url))
    return out


def download_files(
    files: list[tuple[RemoteFile, str]],
    dest: str | Path,
    workers: int = 2,
    extract: bool = True,
    progress: bool = True,
    **kwargs,
) -> list[FetchResult]:
    """Fetch `files` with a thread pool and a rich progress bar, then unpack archives
    (once: a DEST/.extracted/NAME marker is left) with the safe extractor."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    dest = Path(dest)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    tasks = {remote.name: bar.add_task(remote.name, total=None) for remote, _ in files}

    def on_bytes(name: str, done: int, total: int | None) -> None:
        bar.update(tasks[name], completed=done, total=total)

    loader = Downloader(dest, on_bytes=on_bytes, **kwargs)
    with bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda pair: loader.fetch(*pair), files))
    if extract:
        marks = dest / ".extracted"
        for (remote, _), result in zip(files, results, strict=True):
            mark = marks / remote.name
            if remote.extract and not mark.is_file():
                extract_archive(result.path, dest)
                marks.mkdir(exist_ok=True)
                mark.write_text(result.sha256 + "\n")
    return results


def download_dataset(
    name: str,
    dest: str | Path,
    base_url: str | None = None,
    workers: int = 2,
    dry_run: bool = False,
    extract: bool = True,
    progress: bool = True,
    **kwargs,
) -> list[FetchResult]:
    """Download (and unpack) every file of set `name` into `dest`; `dry_run` only plans."""
    files = plan(name, base_url)
    if dry_run:
        return [
            FetchResult(
                r.name,
                Path(dest) / r.name,
                "planned",
                sha256=r.sha256 or "",
                url=url,
                check=f"pinned sha256 {r.sha256}" if r.sha256 else TRUST_ON_FIRST_USE,
            )
            for r, url in files
        ]
    return download_files(
        files, dest, workers=workers, extract=extract, progress=progress, **kwargs
    )


def openi_search_files(
    dest: str | Path,
    base_url: str | None = None,
    limit: int | None = None,
    timeout: float = 60.0,
    pacer: Pacer | None = None,
) -> list[tuple[RemoteFile, str]]:
    """Xvision's OpenI query through the search API (image types x and xg, 100 results a
    page): saves every page's JSON under DEST/search/ and returns the films to fetch."""
    from cxrkit.datasets.openi import SEARCH_API, SEARCH_PAGE, search_url

    api = SEARCH_API if base_url is None else f"{base_url.rstrip('/')}/api/search"
    site = "https://openi.nlm.nih.gov" if base_url is None else base_url.rstrip("/")
    pages = Path(dest) / "search"
    pages.mkdir(parents=True, exist_ok=True)
    pacer = pacer or Pacer()
    files: list[tuple[RemoteFile, str]] = []
    start, total = 1, None
    while total is None or start <= total:
        page = pages / f"page_{start:06d}.json"
        if not page.is_file():
            pacer.before_request()
            request = urllib.request.Request(
                search_url(start, api), headers={"User-Agent": USER_AGENT}
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    page.write_bytes(response.read())
            except (urllib.error.URLError, OSError) as exc:
                raise DownloadError(f"OpenI search page {start}: {exc}") from exc
        data = json.loads(page.read_text())
        total = int(data.get("total", 0))
        if limit is not None:
            total = min(total, limit)
        for item in data.get("list", []):
            img = str(item.get("imgLarge", "")).split("?")[0]
            if img:
                fname = Path(img).name
                files.append((RemoteFile(fname, site + img, extract=False), site + img))
        if not data.get("list"):
            break
        start += SEARCH_PAGE
    return files[: limit if limit is not None else None]
