"""Safe extraction: hostile tar and zip members are refused, nothing lands outside DEST."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from cxrkit.datasets.archive import UnsafeArchiveError, extract_archive


def _tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"abc") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_info("/tmp/absolute.txt"), "absolute"),
        (_info("a/../../up.txt"), r"\.\."),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_info("hard", tarfile.LNKTYPE, "/etc/passwd"), "link"),
        (_info("dev", tarfile.CHRTYPE), "device"),
        (_info("fifo", tarfile.FIFOTYPE), "device"),
    ],
)
def test_hostile_tar_members_are_refused(tmp_path, member, reason):
    dest = tmp_path / "dest"
    archive = _tar(tmp_path / "evil.tgz", [_info("images/first.png"), member])
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_archive(archive, dest)
    assert not (dest / "images" / "first.png").exists()  # partial output removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "evil.tgz"]
    assert not Path("/tmp/absolute.txt").exists()


def test_size_cap_counts_bytes_actually_written(tmp_path):
    archive = _tar(tmp_path / "big.tgz", [_info("a.bin"), _info("b.bin")], data=b"0" * 4000)
    with pytest.raises(UnsafeArchiveError, match="more than 5,000 bytes"):
        extract_archive(archive, tmp_path / "dest", max_bytes=5000)
    assert not (tmp_path / "dest" / "a.bin").exists()
    with pytest.raises(UnsafeArchiveError, match="more than 1 members"):
        extract_archive(archive, tmp_path / "dest", max_members=1)


def test_zip_traversal_and_symlink_are_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escape.txt", "no")
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        extract_archive(bad, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("lnk")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_archive(link, tmp_path / "dest2")


def test_a_link_already_in_dest_is_not_followed(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "images").symlink_to(outside)
    archive = _tar(tmp_path / "a.tgz", [_info("images/x.png")])
    with pytest.raises(UnsafeArchiveError, match="outside"):
        extract_archive(archive, dest)
    assert list(outside.iterdir()) == []


def test_good_archives_extract(tmp_path):
    archive = _tar(
        tmp_path / "ok.tgz", [_info("./NLMCXR_png", tarfile.DIRTYPE), _info("NLMCXR_png/a.png")]
    )
    written = extract_archive(archive, tmp_path / "dest")
    assert written == [tmp_path / "dest" / "NLMCXR_png" / "a.png"]
    zpath = tmp_path / "ok.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("MontgomerySet/CXR_png/MCUCXR_0001_0.png", "png")
    extract_archive(zpath, tmp_path / "dz")
    assert (
        tmp_path / "dz" / "MontgomerySet" / "CXR_png" / "MCUCXR_0001_0.png"
    ).read_text() == "png"


def test_a_refused_archive_leaves_files_that_were_there_before(tmp_path):
    """Rollback removes only what the extraction created: a film already in DEST keeps its
    bytes, even when the archive holds a member of the same name before the bad one."""
    dest = tmp_path / "dest"
    (dest / "images").mkdir(parents=True)
    before = dest / "images" / "first.png"
    before.write_bytes(b"the film that was here")
    (dest / "labels.csv").write_text("path,label\n")
    archive = _tar(tmp_path / "evil.tgz", [_info("images/first.png"), _info("a/../../up.txt")])
    with pytest.raises(UnsafeArchiveError):
        extract_archive(archive, dest)
    assert before.read_bytes() == b"the film that was here"
    assert (dest / "labels.csv").read_text() == "path,label\n"
    assert sorted(p.name for p in dest.iterdir()) == ["images", "labels.csv"]  # no staging left


def test_a_good_archive_replaces_files_and_leaves_no_staging(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.txt").write_text("kept")
    archive = _tar(tmp_path / "ok.tgz", [_info("images/a.png"), _info("old.txt")], data=b"new")
    written = extract_archive(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["images/a.png", "old.txt"]
    assert (dest / "old.txt").read_bytes() == b"new" and (dest / "images/a.png").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["images", "old.txt"]
