"""What ``arcforge publish`` would push: the repo tree of a built dataset and the commit operations.

Pure and Hub-free (no huggingface_hub import): ``collect_files`` reads the built folder, ``plan_operations``
turns it plus the remote file list into the exact add/delete operations of the one commit, and
``write_tree`` materialises the tree in a folder (``--to-dir``). ``arcforge.hub.publish`` turns the plan into
``CommitOperationAdd``/``CommitOperationDelete`` and talks to the Hub.

The repo tree is exactly:

- ``<source>/<split>-XXXXX-of-YYYYY.parquet`` shards (``arcforge.shards`` layout),
- ``README.md`` (the dataset card, required, must start with a YAML block),
- ``provenance.json`` (required), and the reports ``reports/{quarantine,excluded,duplicates,reported}.jsonl``
  (each included when the build wrote it; ``arcforge.build.reports``).

Anything else in the folder (hidden files, stray files) is listed as ``skipped`` and never uploaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from arcforge.build.output import OWNED_FILE
from arcforge.build.provenance import PROVENANCE_FILE, Provenance
from arcforge.build.reports import OLD_REPORT_FILES, REPORT_FILES
from arcforge.errors import PublishError, printable
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.shards import SHARD_RE, missing_dataset_hint

CARD_FILE = "README.md"
ROOT_FILES = (CARD_FILE, PROVENANCE_FILE)
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    """One file of the repo tree: its path in the repo, where it is on disk, its size and sha256."""

    path_in_repo: str  # POSIX path
    local_path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Operation:
    """One operation of the commit. ``size``/``sha256`` are None for deletions."""

    kind: str  # "add" | "delete"
    path_in_repo: str
    size: int | None = None
    sha256: str | None = None
    local_path: Path | None = None

    def to_dict(self) -> dict:
        return {"op": self.kind, "path": self.path_in_repo, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class RepoTree:
    """The files of a built folder that make up the repo, plus what was left out."""

    root: Path
    files: tuple[LocalFile, ...]
    skipped: tuple[str, ...]  # relative paths not uploaded

    @property
    def sources(self) -> list[str]:
        """Source names that have shards (the first path segment of every shard)."""
        return sorted({f.path_in_repo.split("/", 1)[0] for f in self.files if is_shard_path(f.path_in_repo)})

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def is_shard_path(path_in_repo: str) -> bool:
    """``<source>/<split>-XXXXX-of-YYYYY.parquet`` (exactly one folder level)."""
    # plain string ops: this runs once per remote file (100k-file repos plan in ~0.1 s)
    folder, sep, name = path_in_repo.partition("/")
    return (
        bool(sep)
        and bool(folder)
        and not folder.startswith(".")
        and "/" not in name
        and SHARD_RE.match(name) is not None
    )


def is_managed_path(path_in_repo: str) -> bool:
    """Files a build owns on the Hub: shards, reports and the provenance file.

    Only these are deleted when a new build no longer has them; anything else in the repo (a
    ``.gitattributes``, images a maintainer added) is never touched. Reports at the root in Parquet are
    where earlier builds put them: a new build's commit removes them.
    """
    return is_shard_path(path_in_repo) or path_in_repo in (PROVENANCE_FILE, *REPORT_FILES, *OLD_REPORT_FILES)


def sha256_file(path: Path, progress: Progress = NULL_PROGRESS, key: str = "hash") -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            progress.advance(key, len(chunk))
    return h.hexdigest()


def collect_files(out: Path, *, progress: Progress | None = None) -> RepoTree:
    """Scan a built dataset folder and hash every file of the repo tree (sorted by path)."""
    progress = progress or NULL_PROGRESS
    root = Path(out)
    if not root.is_dir():
        raise PublishError(f"{root}: dataset folder not found", hint=missing_dataset_hint(root))
    chosen, skipped = _scan(root)
    _check_complete(root, chosen)
    sizes = {rel: p.stat().st_size for rel, p in chosen}
    progress.start("hash", "Hashing files", total=sum(sizes.values()), unit="bytes")
    files = tuple(
        LocalFile(rel, p, sizes[rel], sha256_file(p, progress, "hash")) for rel, p in sorted(chosen)
    )
    progress.finish("hash")
    return RepoTree(root=root, files=files, skipped=tuple(sorted(skipped)))


def _scan(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(repo path, file) of the files of the repo tree, and the other files (printable), in walk order."""
    chosen: list[tuple[str, Path]] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if _in_repo_tree(p, rel):
                chosen.append((rel, p))
            elif rel != OWNED_FILE:  # the build's list of its own files: bookkeeping, not a stray file
                skipped.append(printable(rel))
    return chosen, skipped


def _in_repo_tree(p: Path, rel: str) -> bool:
    """A regular file (not a link) that is a root file (card, provenance), a report, or a shard."""
    depth = rel.count("/")
    return (
        p.is_file()
        and not p.is_symlink()
        and ((depth == 0 and rel in ROOT_FILES) or rel in REPORT_FILES or (depth == 1 and is_shard_path(rel)))
    )


def _check_complete(root: Path, chosen: list[tuple[str, Path]]) -> None:
    """Refuse a folder without a dataset card (with its YAML block), provenance or shards."""
    for required in (CARD_FILE, PROVENANCE_FILE):
        if not any(rel == required for rel, _ in chosen):
            raise PublishError(
                f"{root / required}: missing; a built dataset has a dataset card and provenance",
                hint="rebuild it with `arcforge build --out DIR`",
            )
    if not any(is_shard_path(rel) for rel, _ in chosen):
        raise PublishError(
            f"{root}: no Parquet shards (<source>/<split>-00000-of-0000N.parquet) found",
            hint="rebuild it with `arcforge build --out DIR`",
        )
    card_head = (root / CARD_FILE).read_bytes()[:4]
    if not card_head.startswith(b"---"):
        raise PublishError(
            f"{root / CARD_FILE}: the dataset card has no YAML metadata block (--- ... ---)",
            hint="rebuild the dataset; the card's `configs:` tell the Hub how to load the shards",
        )


def plan_operations(tree: RepoTree, remote_files: Iterable[str] | None) -> list[Operation]:
    """The exact operations of the commit: one add per local file (sorted by path), then one delete per
    managed remote file (old shard/report/provenance) the new build no longer has (sorted by path).

    ``remote_files`` is the file list at the parent commit; None means "not known" (dry run without Hub
    access) and yields additions only.
    """
    adds = [Operation("add", f.path_in_repo, f.size, f.sha256, f.local_path) for f in tree.files]
    if remote_files is None:
        return adds
    local = {f.path_in_repo for f in tree.files}
    stale = sorted({p for p in remote_files if p not in local and is_managed_path(p)})
    return adds + [Operation("delete", p) for p in stale]


def write_tree(tree: RepoTree, dest: Path) -> Path:
    """Write exactly the repo tree into ``dest`` (which must not exist or be empty).

    Files are copied into a sibling temp folder first and renamed into place, so an interrupted run
    leaves no half-written ``dest``.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PublishError(
            f"{dest}: already exists and is not an empty folder",
            hint="pick a new --to-dir, or remove the old one first",
        )
    if dest.resolve() == tree.root.resolve() or tree.root.resolve() in dest.resolve().parents:
        raise PublishError(f"{dest}: --to-dir must be outside the dataset folder {tree.root}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for f in tree.files:
            target = tmp / f.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.local_path, target)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def check_sources(tree: RepoTree, prov: Provenance, *, allow_unknown_license: bool) -> None:
    """The license gate: every shard folder must be a source in provenance.json, and sources with an
    ``unknown`` license are refused unless ``allow_unknown_license``."""
    listed = {s.name for s in prov.sources}
    unlisted = [s for s in tree.sources if s not in listed]
    if unlisted:
        raise PublishError(
            f"{tree.root / PROVENANCE_FILE}: no provenance (repo, commit, license) for shard folder(s) "
            f"{', '.join(unlisted)}",
            hint="rebuild the dataset so provenance.json lists every source it contains",
        )
    present = set(tree.sources)
    unknown = [s for s in prov.unknown_license_sources if s.name in present]
    if unknown and not allow_unknown_license:
        names = ", ".join(f"{s.name} ({s.repo})" for s in unknown)
        raise PublishError(
            f"refusing to publish sources with an unknown license: {names}",
            hint="their upstream grants no clear right to redistribute; rebuild without them, or pass "
            "--allow-unknown-license if you have checked that you may publish them",
        )
