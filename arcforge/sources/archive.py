"""Safe archive handling: stream a .tar.gz, keep only wanted regular files, refuse anything unsafe.

Rules (every violation raises ``UnsafeArchiveError`` naming the entry):

- entry names must be relative: no leading ``/`` or ``\\``, no drive letter, no NUL, no ``..`` segment;
- no devices or FIFOs anywhere in the archive;
- symbolic and hard links: refused anywhere if they point outside the tree (absolute target or one that
  climbs out with ``..``); a link that stays inside is ignored unless it is a file we would keep, in
  which case it is refused too (the cache holds regular files only);
- sizes: each entry at most ``ArchiveLimits.max_file_bytes``, all entries together at most
  ``max_total_bytes`` (checked on the headers, before any data is read), at most ``max_entries`` entries;
  the kept entries together at most the size pinned for the source (``max_kept_bytes``: more cannot
  match the pinned digest, so nothing beyond it is written);
- CPU: the inflated stream may grow at most ``max_ratio`` times the compressed bytes read so far (once
  past ``ratio_floor``); real ARC repositories inflate 3-35x, a bomb inflates ~1000x;
- the same kept path twice is refused (ambiguous content);
- a kept entry whose name is not valid UTF-8 is refused (it could not be named in the digest).

GitHub tarballs put everything under one top-level folder (``<repo>-<commit>/``); it is stripped, and an
archive whose entries do not share one top folder is refused.

The gzip layer is decoded here (not by ``tarfile``) so that a stream that ends early — a connection that
dropped without the HTTP layer noticing — is detected by the missing gzip trailer (CRC + length) and
raised as ``TruncatedArchiveError``, which callers may retry. Zip archives are checked with
``check_zip_members`` when the build opens them (``arcforge.sources.members``).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from arcforge.errors import FetchError, UnsafeArchiveError

_CHUNK = 1 << 16  # compressed bytes per network read
_OUT_MAX = 1 << 20  # decompressed bytes per inflate step
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    max_file_bytes: int = 2 << 30  # 2 GiB per entry (the largest ARC file is a few MiB)
    max_total_bytes: int = 32 << 30  # 32 GiB uncompressed for a whole archive
    max_entries: int = 2_000_000
    max_ratio: float = 250.0  # inflated / compressed bytes; ARC repositories: 3-35
    ratio_floor: int = 64 << 20  # the ratio is enforced once this much has been inflated


DEFAULT_LIMITS = ArchiveLimits()


class OverPinnedSizeError(FetchError):
    """The kept files add up to more than the size pinned for the source: the digest cannot match."""


class TruncatedArchiveError(FetchError):
    """The compressed stream ended before its end marker (likely a dropped connection; retryable)."""


def check_name(name: str, archive: str) -> str:
    """Normalise an entry name to a relative POSIX path, or refuse it. Returns '' for the root itself."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has a NUL byte in its name")
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} climbs out of the tree ('..')")
    return "/".join(parts)


def _link_escapes(member: tarfile.TarInfo, rel: str) -> bool:
    target = member.linkname
    if target.startswith(("/", "\\")) or _DRIVE_RE.match(target):
        return True
    # A symlink resolves from its own folder; a hard link names an archive path.
    base = posixpath.dirname(rel) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    return resolved == ".." or resolved.startswith("../")


class GunzipReader:
    """File-like ``read(n)`` over a gzip byte stream that insists on a complete gzip trailer.

    ``on_raw_bytes(n)`` is called with the number of compressed bytes read (for progress), and the
    decompressed total is capped so a gzip bomb cannot fill the disk.
    """

    def __init__(
        self,
        raw: BinaryIO,
        *,
        name: str,
        max_bytes: int,
        on_raw_bytes: Callable[[int], None] | None = None,
        max_ratio: float = DEFAULT_LIMITS.max_ratio,
        ratio_floor: int = DEFAULT_LIMITS.ratio_floor,
    ) -> None:
        self._raw, self._name, self._max = raw, name, max_bytes
        self._ratio, self._floor = max_ratio, ratio_floor
        self.compressed = 0
        self._on = on_raw_bytes or (lambda n: None)
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper: checks CRC32 and size
        self._buf = bytearray()
        self._done = False
        self.decompressed = 0

    def _fill(self) -> None:
        if self._z.unconsumed_tail:  # output was capped last time: keep inflating the same input
            data = self._z.unconsumed_tail
        else:
            data = self._raw.read(_CHUNK)
            if not data:
                self._done = True
                if not self._z.eof:
                    raise TruncatedArchiveError(
                        f"{self._name}: the download ended before the end of the archive"
                    )
                return
            self._on(len(data))
            self.compressed += len(data)
            if self._z.eof:  # trailing bytes after the gzip member (padding): ignored
                return
        try:
            out = self._z.decompress(data, _OUT_MAX)  # bounded output keeps memory flat on bombs too
        except zlib.error as e:
            raise FetchError(f"{self._name}: corrupt gzip data: {e}") from None
        self.decompressed += len(out)
        if self.decompressed > self._max:
            raise UnsafeArchiveError(f"{self._name}: decompresses to more than {self._max} bytes")
        if self.decompressed > self._floor and self.decompressed > self._ratio * max(1, self.compressed):
            raise UnsafeArchiveError(
                f"{self._name}: inflates more than {self._ratio:g} times its compressed "
                f"size ({self.compressed} -> {self.decompressed} bytes): refused as a "
                "decompression bomb"
            )
        self._buf += out

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buf) < n):
            self._fill()
        if n < 0 or n >= len(self._buf):
            out, self._buf = bytes(self._buf), bytearray()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]  # O(1) amortised for a bytearray's front
        return out

    def drain(self) -> None:
        """Read to the end of the raw stream, so a truncated gzip trailer is still noticed."""
        while not self._done:
            self._fill()
            self._buf.clear()


def extract_tar_gz(
    raw: BinaryIO,
    dest: Path,
    keep: Callable[[str], bool],
    *,
    archive: str,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    on_raw_bytes: Callable[[int], None] | None = None,
    max_kept_bytes: int | None = None,
    strip_top: bool = True,
) -> dict[str, str]:
    """Stream a GitHub-style .tar.gz from ``raw`` into ``dest``, keeping files for which ``keep(relpath)``.

    Returns ``{relpath: sha256 hex}`` of the files written. ``relpath`` is relative to the archive's
    single top-level folder (``strip_top=False``: to the archive's root, and any layout is accepted: a
    data archive inside a repository). Never holds more than one chunk of the archive in memory.
    """
    gz = GunzipReader(
        raw,
        name=archive,
        max_bytes=limits.max_total_bytes + (64 << 20),
        on_raw_bytes=on_raw_bytes,
        max_ratio=limits.max_ratio,
        ratio_floor=limits.ratio_floor,
    )
    walk = _TarWalk(archive, keep, limits, max_kept_bytes, strip_top)
    hashes: dict[str, str] = {}
    with _tar_errors(archive), tarfile.open(fileobj=gz, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            rel = walk.kept(member)
            if rel is not None:
                hashes[rel] = _write_member(tar, member, dest / rel, archive)
        gz.drain()
    return hashes


@contextmanager
def _tar_errors(archive: str) -> Iterator[None]:
    """A stream that ends early raises ``TruncatedArchiveError`` (retryable), other damage ``FetchError``."""
    try:
        yield
    except tarfile.ReadError as e:
        if "unexpected end of data" in str(e):
            raise TruncatedArchiveError(f"{archive}: the archive ended early ({e})") from None
        raise FetchError(f"{archive}: not a valid tar archive: {e}") from None
    except EOFError as e:
        raise TruncatedArchiveError(f"{archive}: the archive ended early ({e})") from None


@dataclass
class _TarWalk:
    """The checks of every entry of one archive, in stream order, with the counts they need (see the
    module docstring for the rules)."""

    archive: str
    keep: Callable[[str], bool]
    limits: ArchiveLimits
    max_kept_bytes: int | None
    strip_top: bool
    top: str | None = None
    entries: int = 0
    total: int = 0
    kept_bytes: int = 0

    def kept(self, member: tarfile.TarInfo) -> str | None:
        """The path to write ``member`` to, or None for an entry not kept; refuses an unsafe entry."""
        self._count_entry()
        full = check_name(member.name, self.archive)
        if not full:
            return None
        rel = self._under_top(member, full)
        if member.ischr() or member.isblk() or member.isfifo():
            raise UnsafeArchiveError(f"{self.archive}: entry {member.name!r} is a device or FIFO")
        if member.issym() or member.islnk():
            self._check_link(member, full, rel)
            return None
        self._count_size(member)
        if not member.isreg() or not rel or not self.keep(rel):
            return None  # directories, other repo files, pax/GNU metadata
        self._check_utf8(rel)
        self._count_kept(member)
        return rel

    def _count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnsafeArchiveError(f"{self.archive}: more than {self.limits.max_entries} entries")

    def _under_top(self, member: tarfile.TarInfo, full: str) -> str:
        """``full`` relative to the archive's one top-level folder (``strip_top=False``: ``full`` itself)."""
        head, _, rel = full.partition("/")
        if not self.strip_top:
            head, rel = "", full
        if self.top is None:
            self.top = head
        elif head != self.top:
            raise UnsafeArchiveError(
                f"{self.archive}: entry {member.name!r} is outside the top-level folder {self.top + '/'!r}"
            )
        return rel

    def _check_link(self, member: tarfile.TarInfo, full: str, rel: str) -> None:
        """A link may stay inside the tree, and must not be a file we would keep."""
        kind = "symlink" if member.issym() else "hard link"
        if _link_escapes(member, full):
            raise UnsafeArchiveError(
                f"{self.archive}: entry {member.name!r} is a {kind} pointing outside the tree "
                f"({member.linkname!r})"
            )
        if rel and self.keep(rel):
            raise UnsafeArchiveError(
                f"{self.archive}: entry {member.name!r} is a {kind}; kept files must be regular files"
            )

    def _count_size(self, member: tarfile.TarInfo) -> None:
        """The size limits per entry and for all entries together (on the headers)."""
        if member.size > self.limits.max_file_bytes:
            raise UnsafeArchiveError(
                f"{self.archive}: entry {member.name!r} is {member.size} bytes "
                f"(more than the {self.limits.max_file_bytes}-byte limit per file)"
            )
        self.total += member.size
        if self.total > self.limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"{self.archive}: entries up to {member.name!r} add up to more than "
                f"{self.limits.max_total_bytes} bytes"
            )

    def _check_utf8(self, rel: str) -> None:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise UnsafeArchiveError(
                f"{self.archive}: entry {shown!r} has a name that is not valid UTF-8"
            ) from None

    def _count_kept(self, member: tarfile.TarInfo) -> None:
        """The kept files together at most the size pinned for the source."""
        self.kept_bytes += member.size
        if self.max_kept_bytes is not None and self.kept_bytes > self.max_kept_bytes:
            raise OverPinnedSizeError(
                f"{self.archive}: the kept files up to {member.name!r} add up to more than the "
                f"{self.max_kept_bytes} bytes pinned for this source; the content cannot match the pin"
            )


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, archive: str) -> str:
    src = tar.extractfile(member)
    assert src is not None  # regular file
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with open(target, "xb") as out:  # "x": a second entry with the same path is refused below
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except FileExistsError:
        raise UnsafeArchiveError(f"{archive}: entry {member.name!r} appears twice") from None
    return h.hexdigest()


def check_zip_members(
    zf: zipfile.ZipFile, archive: str, limits: ArchiveLimits = DEFAULT_LIMITS
) -> list[zipfile.ZipInfo]:
    """Validate the whole of an open zip (member names, links, devices, entry count, declared total size
    and its ratio to the archive's size); returns the file members. Per-member size, ratio, encryption
    and compression are checked when a member is read (``arcforge.sources.members.read_zip_member``), so one
    bad member does not condemn the others. ``zipfile`` never inflates past a member's declared size and
    checks its CRC."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise UnsafeArchiveError(f"{archive}: more than {limits.max_entries} entries")
    try:
        archive_bytes = os.fstat(zf.fp.fileno()).st_size if zf.fp is not None else 0
    except (OSError, AttributeError, ValueError):
        archive_bytes = 0
    budget = limits.max_total_bytes
    if archive_bytes:
        budget = min(budget, max(limits.ratio_floor, int(limits.max_ratio * archive_bytes)))
    total, out = 0, []
    for info in infos:
        check_name(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is a symlink")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is a device or FIFO")
        total += info.file_size
        if total > budget:
            raise UnsafeArchiveError(
                f"{archive}: entries add up to more than {budget} bytes "
                f"({limits.max_ratio:g} times the archive's size at most)"
            )
        if not info.is_dir():
            out.append(info)
    return out
