"""Enumerate the files (``Member``s) a build reads: from a fetched source dir or a user's folder.

A manifest's ``[[tasks]]`` globs pick plain files (``data/training/*.json``) or members of a zip archive
(``a.zip!inner/*.json``). Zip junk is never a member: ``__MACOSX/`` folders and AppleDouble ``._*``
files that macOS adds. Dotfiles of the cache dir (fetch's markers) are ignored. Order is sorted by
path, so ids and output are deterministic.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from arcforge.errors import BuildError
from arcforge.formats import Member
from arcforge.manifest import glob_match, matches_any, split_archive_glob

ZIP_SUFFIX = ".zip"


def is_junk(path: str) -> bool:
    """macOS archive junk or a hidden file: never a task."""
    parts = path.split("/")
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts)


def plain_files(root: Path) -> list[str]:
    """Every non-hidden regular file under ``root``, as sorted posix paths relative to it."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not is_junk(rel):
            out.append(rel)
    return sorted(out)


class ZipCache:
    """Open zip archives once per build step; members read from them lazily (thread-safe reads)."""

    def __init__(self) -> None:
        self._open: dict[Path, zipfile.ZipFile] = {}

    def get(self, path: Path) -> zipfile.ZipFile:
        zf = self._open.get(path)
        if zf is None:
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as e:
                raise BuildError(f"{path}: not a readable zip archive: {e}") from None
            self._open[path] = zf
        return zf

    def close(self) -> None:
        for zf in self._open.values():
            zf.close()
        self._open.clear()

    def __enter__(self) -> ZipCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def zip_entries(zf: zipfile.ZipFile) -> list[str]:
    """Names of the real files in an archive (no folders, no ``__MACOSX/`` or ``._*`` junk), sorted."""
    return sorted(
        i.filename for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename.rstrip("/"))
    )


def _file_member(root: Path, rel: str) -> Member:
    path = root / rel
    return Member(rel, path.read_bytes)


def _zip_member(zf: zipfile.ZipFile, outer: str, inner: str) -> Member:
    return Member(f"{outer}!{inner}", lambda: zf.read(inner))


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
            zf = zips.get(root / rel)
            for name in zip_entries(zf):
                full = f"{rel}!{name}"
                if glob_match(name, inner) and full not in seen and not matches_any(full, exclude):
                    seen[full] = _zip_member(zf, rel, name)
    for path in sorted(seen):
        yield seen[path]


def local_members(folder: Path, *, zips: ZipCache) -> Iterator[Member]:
    """Every ``*.json`` file of a user's folder, and every ``*.json`` inside its ``*.zip`` archives."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: local folder not found")
    yield from glob_members(folder, ("**/*.json", f"**/*{ZIP_SUFFIX}!**/*.json"), zips=zips)
