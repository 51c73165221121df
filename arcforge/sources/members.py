"""Enumerate the files (``Member``s) a build reads: from a fetched source dir or a user's folder.

A manifest's ``[[tasks]]`` globs pick plain files (``data/training/*.json``) or members of a zip archive
(``a.zip!inner/*.json``) or of a ``.tar.gz`` (``a.tar.gz!**/*.json``: unpacked once, under the same safety
rules, into ``$ARCFORGE_HOME/unpacked/<sha256 of the archive>/``). Zip junk is never a member: ``__MACOSX/``
folders and AppleDouble ``._*`` files that macOS adds. Dotfiles of the cache dir (fetch's markers) are
ignored. Order is sorted by path, so ids and output are deterministic.
"""

from __future__ import annotations

import lzma
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from arcforge.errors import BuildError, UnsafeArchiveError
from arcforge.formats import Member
from arcforge.sources.archive import ArchiveLimits, check_zip_members
from arcforge.sources.manifest import glob_match, matches_any, split_archive_glob
from arcforge.task import BAD_ARCHIVE, BAD_NAME, TOO_LARGE, UNREADABLE, TaskFormatError

ZIP_SUFFIX = ".zip"
# Limits for files the build reads (a task file is KiBs to a few MiB): a member is read whole into memory,
# so its size bounds memory; the ratio bounds the CPU one compressed byte can cost.
BUILD_LIMITS = ArchiveLimits(
    max_file_bytes=128 << 20, max_total_bytes=8 << 30, max_entries=1_000_000, ratio_floor=8 << 20
)
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# bad CRC / broken stream / truncated / encrypted without password / unsupported method
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)


def utf8_name(rel: str) -> bool:
    """True when a path from the file system is valid UTF-8 (os.fsdecode keeps bad bytes as surrogates)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(rel: str) -> str:
    """A path with undecodable bytes shown as U+FFFD, safe for messages and Parquet strings."""
    return os.fsencode(rel).decode("utf-8", errors="replace")


def _failing(path: str, reason: str, detail: str) -> Member:
    """A member whose reading fails: the build quarantines ``path`` with this reason."""

    def read() -> bytes:
        raise TaskFormatError(reason, detail)

    return Member(path, read)


def nameless(name: str) -> bool:
    """A file name with nothing but dots before its extension (``...json``, ``.json``): not a hidden file
    to skip quietly, but a task file whose name cannot be an id (quarantined, so it is reported)."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return name.endswith(".json") and set(stem) <= {"."}


def is_junk(path: str) -> bool:
    """macOS archive junk or a hidden file: never a task."""
    parts = path.split("/")
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts)


def plain_files(root: Path) -> list[str]:
    """Every non-hidden regular file under ``root``, as sorted posix paths relative to it.

    As ``root.rglob("*")`` filtered by ``is_file()`` (a link to a file counts, a link to a folder is not
    followed), walked with ``os.scandir``: a folder of a million files is listed in seconds, not minutes.
    Hidden and ``__MACOSX`` folders are not entered (all they hold is junk)."""
    out: list[str] = []
    todo = [("", os.fspath(root))]
    while todo:
        prefix, folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (PermissionError, NotADirectoryError, FileNotFoundError):
            continue
        for e in entries:
            name = e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if not (name.startswith(".") or name == "__MACOSX"):
                    todo.append((f"{prefix}{name}/", e.path))
                continue
            try:
                is_file = e.is_file()
            except OSError:
                is_file = False
            if is_file and (not name.startswith(".") or nameless(name)):
                out.append(prefix + name)
    return sorted(out)


TAR_SUFFIXES = (".tar.gz", ".tgz")


def is_tar(path: str) -> bool:
    return path.endswith(TAR_SUFFIXES)


def unpacked_dir(archive: Path) -> Path:
    """Where a ``.tar.gz`` of a source is unpacked for the build (once; keyed by its content)."""
    from arcforge import paths
    from arcforge.sources.integrity import sha256_of

    return paths.home() / "unpacked" / sha256_of(archive)


def unpack_tar(archive: Path) -> Path:
    """Unpack a ``.tar.gz`` under the safety rules of ``arcforge.sources.archive`` (names, links, devices,
    sizes, entry count, inflation ratio: ``BUILD_LIMITS``) into ``unpacked_dir``, atomically (a temp folder
    renamed into place), unless that was done before. ``BuildError`` names the archive and the problem."""
    import shutil
    import tempfile

    from arcforge.errors import FetchError
    from arcforge.sources.archive import extract_tar_gz

    dest = unpacked_dir(archive)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name[:16]}-{os.getpid()}-", dir=dest.parent))
    try:
        with open(archive, "rb") as raw:
            extract_tar_gz(
                raw,
                staging,
                lambda rel: not is_junk(rel),
                archive=str(archive),
                limits=BUILD_LIMITS,
                strip_top=False,
            )
        try:
            os.rename(staging, dest)
        except OSError:  # another worker finished first: its copy is the same content
            if not dest.is_dir():
                raise
    except (FetchError, OSError) as e:  # UnsafeArchiveError is a FetchError
        raise BuildError(f"{archive}: {getattr(e, 'message', None) or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


class ZipCache:
    """Zip archives opened (and their members checked) once, read lazily (thread-safe reads). A ``.tar.gz``
    (no random access) is unpacked once (``unpack_tar``) and its members are plain files.

    An archive is opened again only when the file changed (device, inode, size or mtime differ): a cache
    that outlives one build step (the build's workers keep one across their work chunks, see
    ``arcforge.build.ingest``) never serves a stale listing. ``max_open`` bounds the open files."""

    def __init__(self, max_open: int | None = None) -> None:
        self._open: dict[Path, tuple[tuple[int, int, int, int], zipfile.ZipFile]] = {}
        self._untarred: dict[Path, tuple[tuple[int, int, int, int], Path]] = {}
        self.max_open = max_open

    @staticmethod
    def _key(path: Path) -> tuple[int, int, int, int]:
        try:
            st = os.stat(path)
            return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return (0, 0, -1, 0)

    def untar(self, path: Path) -> Path:
        key = self._key(path)
        held = self._untarred.get(path)
        if held is None or held[0] != key:
            held = self._untarred[path] = (key, unpack_tar(path))
        return held[1]

    def get(self, path: Path) -> zipfile.ZipFile:
        key = self._key(path)
        held = self._open.get(path)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            held[1].close()
            del self._open[path]
        zf = self._open_checked(path)
        if self.max_open is not None and len(self._open) >= self.max_open:
            oldest = next(iter(self._open))
            self._open.pop(oldest)[1].close()
        self._open[path] = (key, zf)
        return zf

    @staticmethod
    def _open_checked(path: Path) -> zipfile.ZipFile:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as e:
            raise BuildError(f"{path}: not a readable zip archive: {e}") from None
        try:
            check_zip_members(zf, str(path), BUILD_LIMITS)
        except UnsafeArchiveError as e:
            zf.close()
            raise BuildError(e.message) from None
        return zf

    def close(self) -> None:
        for _, zf in self._open.values():
            zf.close()
        self._open.clear()
        self._untarred.clear()

    def __enter__(self) -> ZipCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def zip_entries(zf: zipfile.ZipFile) -> list[str]:
    """Names of the real files in an archive (no folders, no ``__MACOSX/`` or ``._*`` junk), sorted."""
    return sorted(i.filename for i in zip_infos(zf))


def zip_infos(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The real file members of an archive, sorted by name; a name listed twice keeps its last entry
    (as ``zipfile`` itself does)."""
    by_name = {i.filename: i for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename.rstrip("/"))}
    return [by_name[n] for n in sorted(by_name)]


def _file_member(root: Path, rel: str, limits: ArchiveLimits = BUILD_LIMITS) -> Member:
    path = os.path.join(root, rel)  # a str, not a Path: this runs once per file of the build
    if not utf8_name(rel):
        return _failing(printable_name(rel), BAD_NAME, "the file name is not valid UTF-8; rename the file")
    if nameless(rel.rsplit("/", 1)[-1]):
        return _failing(
            rel,
            BAD_NAME,
            "the file name has nothing but dots before .json, so it cannot be a task id; rename the file",
        )

    def read() -> bytes:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > limits.max_file_bytes:
                    raise TaskFormatError(
                        TOO_LARGE, f"{size} bytes, more than the {limits.max_file_bytes}-byte limit"
                    )
                return f.read()
        except OSError as e:
            raise TaskFormatError(
                BAD_NAME if isinstance(e, FileNotFoundError) else UNREADABLE,
                f"cannot read the file: {e.strerror or e}",
            ) from None

    return Member(rel, read, open=lambda: open(path, "rb"))


def read_zip_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits = BUILD_LIMITS
) -> bytes:
    """One member's bytes, refusing (``TaskFormatError``) what cannot or must not be inflated: encrypted
    or unsupported members, a declared size over the limit, an inflation ratio over the limit, and
    corrupt data (bad CRC, broken deflate/bzip2/lzma stream). ``zipfile`` never inflates past the
    declared size, so memory and CPU stay bounded by the checks made before reading."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise TaskFormatError(BAD_ARCHIVE, f"{name}: encrypted (password-protected) member")
    if info.compress_type not in SUPPORTED_COMPRESSION:
        raise TaskFormatError(
            BAD_ARCHIVE, f"{name}: compression method {info.compress_type} is not supported"
        )
    if info.file_size > limits.max_file_bytes:
        raise TaskFormatError(
            TOO_LARGE, f"{name}: {info.file_size} bytes, more than the {limits.max_file_bytes}-byte limit"
        )
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(1, info.compress_size):
        raise TaskFormatError(
            TOO_LARGE,
            f"{name}: inflates {info.file_size // max(1, info.compress_size)} times "
            f"its compressed size (limit {limits.max_ratio:g})",
        )
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except _READ_ERRORS as e:
        raise TaskFormatError(BAD_ARCHIVE, f"{name}: cannot be read: {e}") from None
    if len(data) != info.file_size:
        raise TaskFormatError(
            BAD_ARCHIVE, f"{name}: holds {len(data)} bytes, not the {info.file_size} declared"
        )
    return data


def _zip_member(zf: zipfile.ZipFile, outer: str, info: zipfile.ZipInfo) -> Member:
    return Member(f"{outer}!{info.filename}", lambda: read_zip_member(zf, info))


def _tar_member(folder: Path, outer: str, inner: str) -> Member:
    m = _file_member(folder, inner)
    return Member(f"{outer}!{m.path}", m.read, open=m.open)


def _archive_members(
    root: Path, rel: str, inner: str, exclude: tuple[str, ...], zips: ZipCache, seen: dict[str, Member]
) -> None:
    """Add the members of the archive ``rel`` matching ``inner`` to ``seen``; a corrupt or unsafe archive is
    one failing member (quarantined as one file, the build goes on)."""
    try:
        if is_tar(rel):
            folder = zips.untar(root / rel)
            names = plain_files(folder)
        else:
            zf = zips.get(root / rel)
            infos = {i.filename: i for i in zip_infos(zf)}
            names = list(infos)
    except BuildError as e:
        if rel not in seen and not matches_any(rel, exclude):
            seen[rel] = _failing(rel, BAD_ARCHIVE, e.message.removeprefix(f"{root / rel}: "))
        return
    for name in names:
        full = f"{rel}!{name}"
        if glob_match(name, inner) and full not in seen and not matches_any(full, exclude):
            seen[full] = _tar_member(folder, rel, name) if is_tar(rel) else _zip_member(zf, rel, infos[name])


def glob_members(
    root: Path,
    include: tuple[str, ...],
    exclude: tuple[str, ...] = (),
    *,
    zips: ZipCache,
    files: list[str] | None = None,
) -> Iterator[Member]:
    """Members under ``root`` matching any include glob and no exclude glob, sorted by path.

    ``files`` (the sorted plain files under root) may be passed in to avoid walking the tree again.
    """
    files = plain_files(root) if files is None else files
    seen: dict[str, Member] = {}
    for pattern in include:
        outer, inner = split_archive_glob(pattern)
        for rel in files:
            if not glob_match(rel, outer):
                continue
            if inner is None:
                if rel not in seen and not matches_any(rel, exclude):
                    seen[rel] = _file_member(root, rel)
                continue
            if not utf8_name(rel):
                seen.setdefault(rel, _file_member(root, rel))
                continue
            _archive_members(root, rel, inner, exclude, zips, seen)
    for path in sorted(seen):
        yield seen[path]


def open_member(root: Path, path: str, zips: ZipCache) -> Member:
    """The ``Member`` for a path that ``glob_members`` listed (a plain file, or ``outer.zip!inner``), with
    the same checks: a worker process re-opens members by path and must quarantine what the planner saw."""
    file = os.path.join(root, path)
    if "!" in path and not os.path.isfile(file):
        outer, inner = path.split("!", 1)
        if is_tar(outer):
            try:
                folder = zips.untar(root / outer)
            except BuildError as e:
                return _failing(path, BAD_ARCHIVE, e.message.removeprefix(f"{root / outer}: "))
            return _tar_member(folder, outer, inner)
        try:
            zf = zips.get(root / outer)
            info = zf.getinfo(inner)
        except BuildError as e:
            return _failing(path, BAD_ARCHIVE, e.message.removeprefix(f"{root / outer}: "))
        except KeyError:
            return _failing(path, BAD_ARCHIVE, f"{inner}: not in the archive any more")
        return _zip_member(zf, outer, info)
    if path.endswith((ZIP_SUFFIX, *TAR_SUFFIXES)) and os.path.isfile(
        file
    ):  # an archive the planner quarantined
        try:
            zips.untar(root / path) if is_tar(path) else zips.get(root / path)
        except BuildError as e:
            return _failing(path, BAD_ARCHIVE, e.message.removeprefix(f"{root / path}: "))
    if "\ufffd" in path and not os.path.exists(file):  # listed under its printable name: not UTF-8 on disk
        return _failing(path, BAD_NAME, "the file name is not valid UTF-8; rename the file")
    return _file_member(root, path)


def local_members(folder: Path, *, zips: ZipCache) -> Iterator[Member]:
    """Every ``*.json`` file of a user's folder, and every ``*.json`` inside its ``*.zip`` archives."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: local folder not found")
    yield from glob_members(folder, ("**/*.json", f"**/*{ZIP_SUFFIX}!**/*.json"), zips=zips)
