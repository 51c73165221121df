"""archive.py on its own: truncation detection, corrupt data, limits, and the zip rules."""

from __future__ import annotations

import io
import re
import stat
import zipfile

import pytest
from fetch_server import github_tarball

from arcforge.errors import FetchError, UnsafeArchiveError
from arcforge.sources.archive import ArchiveLimits, TruncatedArchiveError, check_zip_members, extract_tar_gz

COMMIT = "3" * 40


@pytest.fixture(scope="module")
def tarball(tiny) -> bytes:
    """A GitHub-style tarball of the tiny upstream's tiny-org/arc-odd repo (tests/tiny_upstream.py)."""
    return github_tarball(tiny.mirror / "tiny-org" / "arc-odd", "arc-odd", COMMIT)


def test_extract_keeps_matching_files(tarball, tmp_path, tiny):
    hashes = extract_tar_gz(io.BytesIO(tarball), tmp_path, lambda rel: rel.startswith("levels/"), archive="t")
    assert sorted(hashes) == sorted(
        f"levels/{p.name}" for p in (tiny.mirror / "tiny-org/arc-odd/levels").iterdir()
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == sorted(hashes)


@pytest.mark.parametrize("keep_fraction", [0.3, 0.9, 0.999])
def test_a_stream_cut_anywhere_is_detected_as_truncated(tarball, tmp_path, keep_fraction):
    cut = tarball[: int(len(tarball) * keep_fraction)]
    with pytest.raises(TruncatedArchiveError, match="ended"):
        extract_tar_gz(io.BytesIO(cut), tmp_path, lambda rel: True, archive="t")


def test_corrupt_gzip_is_a_fetch_error(tarball, tmp_path):
    bad = bytearray(tarball)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = b"\xff" * 64
    with pytest.raises(FetchError) as e:
        extract_tar_gz(io.BytesIO(bytes(bad)), tmp_path, lambda rel: True, archive="t")
    assert not isinstance(e.value, TruncatedArchiveError)


def test_total_size_limit(tarball, tmp_path):
    with pytest.raises(UnsafeArchiveError, match="add up to more than 300 bytes"):
        extract_tar_gz(
            io.BytesIO(tarball),
            tmp_path,
            lambda rel: True,
            archive="t",
            limits=ArchiveLimits(max_total_bytes=300),
        )
    assert len(tarball) > 300


def test_real_zip_archives_pass_the_zip_rules(shared_sources):
    for name in ("easy_l1.zip", "easy_l2.zip"):
        with zipfile.ZipFile(shared_sources / "frankaging/ARC_synthetic_extend" / name) as zf:
            members = check_zip_members(zf, name)
            assert members and all(not i.is_dir() for i in members)


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry,needle",
    [
        ("../evil.json", "'../evil.json' climbs out"),
        ("/abs.json", "'/abs.json' has an absolute path"),
        ("C:/win.json", "'C:/win.json' has an absolute path"),
        (_link("tasks/link.json"), "'tasks/link.json' is a symlink"),
    ],
)
def test_hostile_zip_members_are_refused(entry, needle):
    zf = _zip([("ok/a.json", b"{}"), (entry, b"/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match=re.escape(needle)):
        check_zip_members(zf, "evil.zip")


def test_zip_size_limit():
    from arcforge.sources.members import read_zip_member
    from arcforge.task import TaskFormatError

    zf = _zip([("big.json", b"0" * 5000), ("small.json", b"[]")])
    check_zip_members(zf, "z.zip", ArchiveLimits(max_file_bytes=4096))  # the archive as a whole is fine
    with pytest.raises(TaskFormatError, match=r"big\.json: 5000 bytes, more than the 4096-byte limit") as e:
        read_zip_member(zf, zf.getinfo("big.json"), ArchiveLimits(max_file_bytes=4096))
    assert e.value.reason == "too_large"
    assert read_zip_member(zf, zf.getinfo("small.json"), ArchiveLimits(max_file_bytes=4096)) == b"[]"
    with pytest.raises(UnsafeArchiveError, match="entries add up to more than 4000 bytes"):
        check_zip_members(zf, "z.zip", ArchiveLimits(max_total_bytes=4000))
