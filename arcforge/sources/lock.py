"""Content digests of fetched sources, and the lock files that pin them.

**Digest.** A source's digest covers exactly the files its manifest keeps (``Manifest.files`` globs,
matched against POSIX paths relative to the repository root)::

    lines  = "<sha256 hex of the file's bytes>  <relative path>\\n"   one per kept file
    digest = "sha256:" + sha256(concatenation of the lines sorted by path, UTF-8)

Sorting is by code point (= UTF-8 byte order), so the same value comes out of coreutils::

    cd <dir> && find . -type f ! -name '.arcforge-*' | sed 's|^\\./||' | LC_ALL=C sort \\
      | xargs -d '\\n' sha256sum | sha256sum

**Lock files** are TOML tables keyed by source name, each with ``repo``, ``commit``, ``digest``,
``files`` (how many files the digest covers) and ``bytes`` (their total size: a download that would keep
more is stopped at once instead of after writing it all); a Hub source also has ``sha256``, each file's
sha256 by path (each file is checked as it arrives). A pin applies only when its repo and commit equal the
manifest's.

A Hub source pinned by a branch or tag (``revision`` in its manifest, no ``commit``) is locked here on its
first fetch: the entry holds that ``revision`` and the ``commit`` it resolved to, and applies to the manifest
while repo and revision are the same; ``locked`` gives the manifest that commit, so later fetches and builds
use it, and only ``arcforge fetch --update NAME`` (or deleting the entry) moves it. Fetched from a folder
mirror, which cannot say which commit it holds, the entry has ``commit = ""`` (unresolved): the files are
pinned by their sha256 alone, and a later fetch from the Hub (``--force``) locks the commit if its files
are those. Two lock files are consulted, first match wins:

1. ``digests.lock`` next to the manifests in use (shipped: ``manifests/digests.lock``, derived from the
   byte-identical upstream copies in ``../shared/arc-sources``; regenerate with
   ``python -m arcforge.sources.lock MIRROR_DIR``);
2. ``$ARCFORGE_HOME/digests.lock``: where ``fetch`` records the digest of a source that had no pin, on
   its first successful fetch (the shipped lock is never written at run time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from arcforge import fslock, paths
from arcforge.errors import ManifestError
from arcforge.sources.integrity import sha256_of
from arcforge.sources.manifest import MANIFEST_DIR, Manifest, matches_any

LOCK_NAME = "digests.lock"
INTERNAL_PREFIX = ".arcforge-"  # arcforge's own bookkeeping files in a cache dir; never part of a digest
_LOCKABLE = re.compile(r"^([0-9a-f]{40})?$")  # the commit a revision is locked to ("": unresolved)
_record_lock = threading.Lock()  # serialises read-modify-write of the home lock between fetch threads

_HEADER = """\
# Pinned content digests of the files each source keeps (see README, "Fetching sources").
# digest = "sha256:" + sha256 of the lines "<sha256 of file>  <relative path>\\n", sorted by path.
# A pin applies only when repo and commit equal the manifest's (a source pinned by revision: repo and
# revision; its commit is the one locked on first fetch, "" when fetched from a mirror: unresolved).
"""


@dataclass(frozen=True)
class Pin:
    name: str
    repo: str
    commit: str
    digest: str
    files: int
    lock_path: Path  # the lock file it was read from
    bytes: int = 0  # total size of the kept files (0: not recorded); bounds what a fetch may write
    sha256: Mapping[str, str] | None = None  # per-file sha256 (Hub sources: each file checked on arrival)
    revision: str = ""  # a source pinned by a branch or tag: the one ``commit`` was resolved from

    def applies_to(self, m: Manifest) -> bool:
        if self.repo != m.repo or self.revision != m.revision:
            return False
        return bool(m.revision) or self.commit == m.commit


# --- digests ---------------------------------------------------------------------------------------------
def digest_from_hashes(hashes: Mapping[str, str]) -> str:
    """The source digest from ``{relative posix path: sha256 hex}`` (see the module docstring)."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{hashes[rel]}  {rel}\n".encode())
    return "sha256:" + h.hexdigest()


def kept_files(root: Path, patterns: Iterable[str]) -> list[str]:
    """Relative POSIX paths of the regular files under ``root`` that match any glob, sorted."""
    patterns = tuple(patterns)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fn in filenames:
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}"
            if fn.startswith(INTERNAL_PREFIX) and rel_dir == ".":
                continue
            if matches_any(rel, patterns) and os.path.isfile(os.path.join(dirpath, fn)):
                out.append(rel)
    return sorted(out)


def hash_tree(root: Path, patterns: Iterable[str]) -> dict[str, str]:
    """``{relpath: sha256}`` of the kept files under ``root``."""
    return {rel: sha256_of(root / rel) for rel in kept_files(root, patterns)}


def digest_tree(root: Path, patterns: Iterable[str]) -> tuple[str, int]:
    """(digest, number of files) of the kept files under ``root``."""
    hashes = hash_tree(root, patterns)
    return digest_from_hashes(hashes), len(hashes)


# --- lock files ------------------------------------------------------------------------------------------
def repo_lock_path(m: Manifest | None = None) -> Path:
    """The lock next to the manifests in use (the manifest's folder, or the bundled ``manifests/``)."""
    folder = m.path.parent if m is not None and m.path is not None else MANIFEST_DIR
    return folder / LOCK_NAME


def home_lock_path() -> Path:
    """Where first-fetch digests of unpinned sources are recorded."""
    return paths.home() / LOCK_NAME


def read_lock(path: Path) -> dict[str, Pin]:
    """All pins in a lock file by source name; a missing file is an empty lock."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(
            f"{path}: not a valid lock file: {e}",
            hint="fix or delete it (deleted pins are recorded again on the next fetch)",
        ) from None
    pins = {}
    for name, entry in data.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(k), str) for k in ("repo", "commit", "digest")
        )
        if not ok or not str(entry["digest"]).startswith("sha256:"):
            raise ManifestError(
                f"{path}: entry [{name}] needs string fields repo, commit and digest='sha256:...'"
            )
        try:
            files, size = int(entry.get("files", 0)), int(entry.get("bytes", 0))
        except (TypeError, ValueError):
            raise ManifestError(f"{path}: entry [{name}]: files and bytes must be integers") from None
        per_file = entry.get("sha256")
        if per_file is not None and not (
            isinstance(per_file, dict) and all(isinstance(v, str) and len(v) == 64 for v in per_file.values())
        ):
            raise ManifestError(
                f"{path}: entry [{name}]: sha256 must map file paths to 64-hex sha256 strings"
            )
        pins[name] = Pin(
            name,
            entry["repo"],
            entry["commit"],
            entry["digest"],
            files,
            Path(path),
            size,
            per_file,
            _revision(entry, name, path),
        )
    return pins


def _revision(entry: dict, name: str, path: Path) -> str:
    """An entry's ``revision`` (``""`` if none); its ``commit`` is then a full id or ``""`` (unresolved)."""
    revision = entry.get("revision", "")
    if not isinstance(revision, str) or (revision and not _LOCKABLE.match(entry["commit"])):
        raise ManifestError(
            f"{path}: entry [{name}]: revision must be a string, and its commit a full 40-hex id or "
            '"" (unresolved)'
        )
    return revision


def _sha256_line(p: Pin) -> str:
    """``sha256 = { "path" = "hex", ... }``: each file's sha256 (Hub sources), as one TOML inline table."""
    if not p.sha256:
        return ""
    return (
        "sha256 = { "
        + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(p.sha256.items()))
        + " }\n"
    )


def write_lock(path: Path, pins: Iterable[Pin]) -> None:
    """Write pins sorted by name, atomically (temp file + rename)."""
    lines = [_HEADER]
    for p in sorted(pins, key=lambda p: p.name):
        # json.dumps yields valid TOML basic strings for these ASCII values.
        lines.append(
            f"\n[{p.name}]\nrepo = {json.dumps(p.repo)}\n"
            + (f"revision = {json.dumps(p.revision)}\n" if p.revision else "")
            + f"commit = {json.dumps(p.commit)}"
            + ("  # unresolved: fetched from a mirror\n" if p.revision and not p.commit else "\n")
            + f"digest = {json.dumps(p.digest)}\nfiles = {p.files}\n"
            + (f"bytes = {p.bytes}\n" if p.bytes else "")
            + _sha256_line(p)
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(lines))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_pin(m: Manifest) -> Pin | None:
    """The pin for this manifest's repo@commit: the shipped lock first, then the home lock."""
    for lock in (repo_lock_path(m), home_lock_path()):
        pin = read_lock(lock).get(m.name)
        if pin is not None and pin.applies_to(m):
            return pin
    return None


def locked(m: Manifest) -> Manifest:
    """``m`` with the commit its lock holds when it is pinned by a revision (``commit = ""`` while none is
    locked: not fetched yet, or fetched from a mirror); any other manifest as it is."""
    if not m.revision:
        return m
    pin = find_pin(m)
    return replace(m, commit=pin.commit if pin is not None else "")


def record_pin(
    m: Manifest, digest: str, files: int, nbytes: int = 0, sha256: Mapping[str, str] | None = None
) -> Path:
    """Record a first-fetch digest (and for a source pinned by revision, the commit ``m`` holds: the one
    it resolved to, or ``""`` from a mirror) in the home lock; returns the lock's path."""
    path = home_lock_path()
    # Threads of this process and other processes (two first fetches at once) must not drop each other's
    # pins: the read-modify-write happens under a thread lock and an flock on a sidecar file, and the
    # file is replaced atomically, so readers without the lock still see a complete lock file.
    with _record_lock, fslock.locked(path.with_name(f".{path.name}.lck")):
        pins = read_lock(path)
        pins[m.name] = Pin(m.name, m.repo, m.commit, digest, files, path, nbytes, sha256, m.revision)
        write_lock(path, pins.values())
    return path


def pins_from_mirror(manifests: Iterable[Manifest], mirror: Path) -> list[Pin]:
    """Pins for every manifest whose repo is present in a folder mirror laid out ``<owner>/<repo>/`` (not
    for a source pinned by revision: its commit is locked per user, in the home lock, on first fetch)."""
    out = []
    for m in manifests:
        if m.revision:
            continue
        root = mirror_root(Path(mirror), m)
        if root.is_dir() and kept_files(root, m.files):
            hashes = hash_tree(root, m.files)
            size = sum((root / rel).stat().st_size for rel in hashes)
            out.append(
                Pin(
                    m.name,
                    m.repo,
                    m.commit,
                    digest_from_hashes(hashes),
                    len(hashes),
                    repo_lock_path(m),
                    size,
                    hashes if m.kind == paths.HUB_KIND else None,
                )
            )
    return out


def mirror_root(mirror: Path, m: Manifest) -> Path:
    """Where a folder mirror holds a source: ``<owner>/<repo>/``, a Hub dataset at ``hf/<org>/<name>/``."""
    if m.kind == paths.HUB_KIND:
        return mirror / "hf" / m.owner / m.repo_name
    return mirror / m.owner / m.repo_name


if (
    __name__ == "__main__"
):  # python -m arcforge.sources.lock MIRROR_DIR [MANIFEST_DIR]: regenerate the shipped lock
    import sys

    from arcforge.sources.manifest import load_manifests

    mdir = Path(sys.argv[2]) if len(sys.argv) > 2 else MANIFEST_DIR
    new = pins_from_mirror(load_manifests(mdir).values(), Path(sys.argv[1]))
    write_lock(mdir / LOCK_NAME, new)
    print(f"wrote {len(new)} pins to {mdir / LOCK_NAME}")
