"""Replace a built dataset folder so that nothing is lost: arcforge's own files are swapped, all else stays.

A build writes every file into ``.<out>.building-<pid>`` beside ``out``; ``commit`` then:

1. writes ``.arcforge-build.json`` into it: the list of files this build wrote (arcforge's files);
2. hard-links every file of ``out`` that the PREVIOUS build did not write (notes, a ``--local`` input
   folder kept inside ``out``, ...) into the new folder at the same path (copied where a link is
   impossible). A foreign file where the new build writes one is refused: nothing is overwritten;
3. ``rename(out, .<out>.old-<pid>)``, ``rename(building, out)``, then removes the old folder, deleting
   only files that are arcforge's or that have a twin (the link or copy) in the new ``out``.

A kill can stop this at any point. ``recover(out)``, run by every build before it starts (and by
``commit``), returns every state to a complete folder; for folders whose process is gone:

- ``.old-<pid>`` and no ``out`` (killed between the two renames): the old folder goes back to ``out``;
- ``.old-<pid>`` and ``out`` (killed after the second rename): the old folder is removed as in step 3;
- ``.building-<pid>``: removed (every foreign file in it is a link or copy of one kept in ``out``).

A folder from an older arcforge without ``.arcforge-build.json`` but with the card's marker counts as
arcforge's for its shards, reports, card and provenance; everything else in it is foreign.
Swaps and recovery of one ``out`` hold a lock on its parent folder, so two builds never interleave them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from arcforge import fslock
from arcforge.errors import BuildError

OWNED_FILE = ".arcforge-build.json"
_LEGACY_TOP = {
    "README.md",
    "provenance.json",
    "quarantine.parquet",
    "excluded.parquet",
    "duplicates.parquet",
    "reported.parquet",
    *(
        f"reports/{n}.jsonl"
        for n in ("quarantine", "excluded", "duplicates", "reported", "rules", "rule_errors", "rule_lineage")
    ),
}
_LEGACY_SHARD = re.compile(r"^[^/]+/\w+(?:\.\w+)*-\d{5}-of-\d{5}\.parquet$")


def building_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.building-{os.getpid()}"


def _work_re(out: Path, kind: str) -> re.Pattern[str]:
    return re.compile(re.escape(f".{out.name}.{kind}-") + r"(?P<pid>\d+)")


# --- what arcforge wrote ---------------------------------------------------------------------------------
def _walk_files(root: Path) -> list[str]:
    """Relative posix paths of every non-directory entry under ``root`` (symlinks are not followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
    return sorted(out)


def _empty_dirs(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if not dirnames and not filenames and Path(dirpath) != root:
            out.append(os.path.relpath(dirpath, root).replace(os.sep, "/"))
    return out


def owned_files(folder: Path) -> set[str]:
    """Relative paths of the files arcforge wrote in ``folder`` (its list, or the legacy layout)."""
    try:
        data = json.loads((folder / OWNED_FILE).read_text(encoding="utf-8"))
        files = data["files"] if isinstance(data, dict) else None
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            return set(files) | {OWNED_FILE}
    except (OSError, ValueError, KeyError):
        pass
    from arcforge.build.card import MARKER

    readme = folder / "README.md"
    try:
        is_build = readme.is_file() and MARKER in readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        is_build = False
    if not is_build:
        return set()
    return {f for f in _walk_files(folder) if f in _LEGACY_TOP or _LEGACY_SHARD.match(f)}


def is_build(folder: Path) -> bool:
    """A folder that an arcforge build wrote (it may hold other files too)."""
    return (folder / OWNED_FILE).is_file() or bool(owned_files(folder))


# --- removing without losing foreign files -----------------------------------------------------------------
def _twin(path: Path, other: Path) -> bool:
    """``other`` holds the same file as ``path``: the same inode (a hard link) or identical bytes."""
    try:
        if path.is_symlink() or other.is_symlink():
            return path.is_symlink() and other.is_symlink() and os.readlink(path) == os.readlink(other)
        a, b = path.stat(), other.stat()
        if os.path.samestat(a, b):
            return True
        if a.st_size != b.st_size:
            return False
        with open(path, "rb") as fa, open(other, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def remove_replaced(old: Path, new: Path) -> list[str]:
    """Delete ``old`` (a replaced build) except foreign files that have no twin in ``new``.

    Returns the relative paths kept; the folder stays (with only those) if any were kept."""
    owned = owned_files(old)
    kept = []
    for rel in _walk_files(old):
        p = old / rel
        try:
            if rel in owned or _twin(p, new / rel):
                p.unlink()
                continue
        except OSError:  # cannot be removed (read-only): kept, and tried again by the next recovery
            pass
        kept.append(rel)
    if not kept:
        shutil.rmtree(old, ignore_errors=True)
    else:
        for d in sorted(_empty_dirs(old), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(old / d)
    return kept


# --- recovery -----------------------------------------------------------------------------------------------
def recover(out: Path) -> list[str]:
    """Bring ``out`` back to a complete state after a killed build; returns what was done (for logs)."""
    out = Path(out).absolute()
    done: list[str] = []
    if not out.parent.is_dir():
        return done
    with fslock.locked(out.parent):
        done += _recover_locked(out)
    return done


def _recover_locked(out: Path) -> list[str]:
    done = []
    entries = sorted(out.parent.iterdir())
    for kind in ("old", "building"):
        pattern = _work_re(out, kind)
        for d in entries:
            pid = fslock.owner_pid(d.name, pattern)
            if pid is None or not fslock.abandoned(pid) or not d.exists():
                continue
            if kind == "old" and not out.exists() and not out.is_symlink():
                os.rename(d, out)
                done.append(f"restored {out} from {d.name}")
            elif kind == "old":
                kept = remove_replaced(d, out)
                done.append(f"removed {d.name}" if not kept else f"kept {len(kept)} foreign file(s) in {d}")
            else:
                shutil.rmtree(d, ignore_errors=True)
                done.append(f"removed {d.name}")
    return done


# --- the swap -----------------------------------------------------------------------------------------------
def _carry_foreign(out: Path, building: Path, new_files: set[str]) -> None:
    """Link (or copy) every file of ``out`` that arcforge did not write into ``building``; refuse clashes."""
    owned = owned_files(out)
    for rel in _walk_files(out):
        if rel in owned:
            continue
        src, dst = out / rel, building / rel
        clash = rel in new_files or any(p in new_files for p in _parents(rel)) or dst.exists()
        if not clash:
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                clash = True
        if clash:
            raise BuildError(
                f"{src}: arcforge did not write this file and the new build would replace it; "
                f"{out} was left as it was",
                hint="move that file out of the way (or choose another --out)",
            )
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    for d in _empty_dirs(out):
        (building / d).mkdir(parents=True, exist_ok=True)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


CARD = "README.md"
EDITED_CARD = "README.edited.md"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _edited_card(out: Path) -> bool:
    """The user changed the dataset card since the build that wrote it (its digest is recorded)."""
    try:
        data = json.loads((out / OWNED_FILE).read_text(encoding="utf-8"))
        recorded = data.get("digests", {}).get(CARD) if isinstance(data, dict) else None
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(recorded, str) and (out / CARD).is_file() and _sha256(out / CARD) != recorded


def _keep_edited_card(out: Path, building: Path) -> str | None:
    """Carry the user's edited card into the new folder beside the new one; returns the note to show."""
    if not _edited_card(out):
        return None
    name, n = EDITED_CARD, 1
    while (out / name).exists() or (building / name).exists():
        n += 1
        name = f"README.edited-{n}.md"
    shutil.copy2(out / CARD, building / name)
    return (
        f"{out / CARD} had been edited since it was built: your version is kept as {out / name} "
        f"(the new card is {out / CARD}; move your changes into it, or keep them there)"
    )


def _check_writable(out: Path) -> None:
    """Refuse, before anything moves, an ``out`` whose previous files could not be removed after the swap
    (a read-only folder inside it): the swap would leave the old build beside the new one for good."""
    owned = owned_files(out)
    for d in sorted({os.path.dirname(rel) for rel in owned}):
        folder = out / d if d else out
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise BuildError(
                f"{folder}: read-only, so the previous build's files in it cannot be replaced; "
                f"{out} was left as it was",
                hint="make it writable, or choose another --out",
            )


def commit(out: Path, building: Path, files: list[str]) -> list[str]:
    """Swap the finished ``building`` folder in as ``out`` (see the module docstring); returns notes for the
    user (an edited card kept)."""
    out = Path(out).absolute()
    digests = {CARD: _sha256(building / CARD)} if CARD in files else {}
    (building / OWNED_FILE).write_text(
        json.dumps({"format": 1, "files": sorted(files), "digests": digests}, indent=1) + "\n",
        encoding="utf-8",
    )
    notes = []
    with fslock.locked(out.parent):
        _recover_locked(out)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            _check_writable(out)
            note = _keep_edited_card(out, building)
            notes += [note] if note else []
            _carry_foreign(out, building, set(files))
            os.rename(out, old)
        try:
            os.rename(building, out)
        except BaseException:
            if old.exists() and not out.exists():
                os.rename(old, out)
            raise
        if old.exists():
            remove_replaced(old, out)
    return notes
