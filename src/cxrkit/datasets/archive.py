"""Safe archive extraction, shared by every downloader: members must stay inside the target.

Refused: absolute names, drive letters, `..` parts, symbolic and hard links, device files
and FIFOs, more than `max_members` members, and more than `max_bytes` unpacked in total
(counted while writing, so a lying header does not help). On refusal, what this call wrote
is removed and `UnsafeArchiveError` is raised; nothing is ever written outside `dest`, and
files that were in `dest` before are left as they were (members are staged first).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from cxrkit.errors import DatasetError

DEFAULT_MAX_BYTES = 200 * 1024**3  # the largest public set (NIH images) is ~45 GB
DEFAULT_MAX_MEMBERS = 1_000_000
_CHUNK = 1 << 20


class UnsafeArchiveError(DatasetError):
    """An archive member would escape the target, or the archive is too large."""


def _safe_relpath(name: str, archive: Path) -> PurePosixPath:
    raw = name.replace("\\", "/")
    rel = PurePosixPath(raw)
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or rel.is_absolute():
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if any(part == ".." for part in rel.parts):
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'")
    parts = [p for p in rel.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


@contextmanager
def _members(path: Path) -> Iterator[Iterator[tuple[str, str, IO[bytes] | None]]]:
    """(name, kind file|dir, stream) of every member; refuses links and special files."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:

            def gen_zip():
                for info in zf.infolist():
                    mode = info.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise UnsafeArchiveError(f"{path}: member {info.filename!r} is a link")
                    if info.is_dir():
                        yield info.filename, "dir", None
                    else:
                        with zf.open(info) as fh:
                            yield info.filename, "file", fh

            yield gen_zip()
        return
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed by the `with` below)
    except tarfile.TarError as exc:
        raise DatasetError(f"{path}: not a tar or zip archive ({exc})") from exc
    with tar:

        def gen_tar():
            for member in tar:
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(f"{path}: member {member.name!r} is a link")
                if member.isdir():
                    yield member.name, "dir", None
                elif member.isfile():
                    yield member.name, "file", tar.extractfile(member)
                else:
                    raise UnsafeArchiveError(
                        f"{path}: member {member.name!r} is a device file or FIFO"
                    )

        yield gen_tar()


def extract_archive(
    archive: str | Path,
    dest: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract a .tar(.gz|.bz2|.xz) or .zip into `dest` safely; returns the files written.

    Members are unpacked into a hidden staging folder inside `dest` and moved into place
    only once the whole archive has passed every check, so a refused or broken archive
    leaves `dest` as it found it: files that were there before are never removed or
    overwritten by a failed extraction.
    """
    archive = Path(archive)
    dest = Path(dest).absolute()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cxrkit-extract-", dir=dest))
    try:
        staged = _stage(archive, dest, staging, max_bytes, max_members)
        return _move_into_place(staged, staging, dest)
    except (UnsafeArchiveError, DatasetError):
        raise
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{archive}: cannot extract ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(
    archive: Path, dest: Path, staging: Path, max_bytes: int, max_members: int
) -> list[tuple[PurePosixPath, str]]:
    """Unpack every member under `staging`, checking each as if written to `dest`;
    returns (relative path, 'file' | 'dir') in archive order."""
    root = dest.resolve()
    staged: list[tuple[PurePosixPath, str]] = []
    total = 0
    with _members(archive) as members:
        for count, (name, kind, stream) in enumerate(members, start=1):
            if count > max_members:
                raise UnsafeArchiveError(f"{archive}: more than {max_members} members")
            rel = _safe_relpath(name, archive)
            _check_target(dest / rel, kind, root, archive, name)
            target = staging / rel
            staged.append((rel, kind))
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            assert stream is not None
            with target.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise UnsafeArchiveError(
                            f"{archive}: unpacks to more than {max_bytes:,} bytes"
                        )
                    out.write(chunk)
    return staged


def _check_target(target: Path, kind: str, root: Path, archive: Path, name: str) -> None:
    """Refuse a member whose place in `dest` is reached through a link."""
    parent = target if kind == "dir" else target.parent
    if not parent.resolve().is_relative_to(root):  # through a link already in dest
        raise UnsafeArchiveError(f"{archive}: member {name!r} leads outside {root}")
    if kind != "dir" and target.is_symlink():
        raise UnsafeArchiveError(f"{archive}: {target} is a link; refusing to follow")


def _move_into_place(
    staged: list[tuple[PurePosixPath, str]], staging: Path, dest: Path
) -> list[Path]:
    """Rename the staged files into `dest` (same file system: each rename is atomic); if a
    rename fails, the files this call created are removed again."""
    written: list[Path] = []
    created: list[Path] = []
    try:
        for rel, kind in staged:
            target = dest / rel
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            existed = target.exists()
            os.replace(staging / rel, target)
            written.append(target)
            if not existed:
                created.append(target)
    except OSError:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return written
