"""Where fetches work, and the clean-up after a killed one.

A fetch downloads or copies into a staging folder ``$ARCFORGE_HOME/tmp/fetch-<name>-<pid>-*`` and renames
it into place (``place``); a cache folder it replaces is first moved into ``tmp/old-<pid>-*/`` with a note
of where it belongs. ``recover`` (run by each fetch and build) puts such a folder back where it is missing
and removes the staging folders of processes that are gone; folders of a live process are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from arcforge import fslock, paths

_OLD_RE = re.compile(r"old-(?P<pid>\d+)-\w+")
_STAGING_RE = re.compile(r"fetch-[a-z0-9_]+-(?P<pid>\d+)-\w+")
_DEST_FILE = ".dest"  # in an old-* holder: the cache folder the aside copy belongs to


def _tmp_lock() -> Path:
    return paths.tmp_dir()  # the folder itself is locked: no lock file is left behind


def staging_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"fetch-{name}-{os.getpid()}-", dir=paths.tmp_dir()))


def place(staging: Path, dest: Path) -> None:
    """Rename ``staging`` to ``dest``. An existing ``dest`` is first moved into ``tmp/old-<pid>-*/`` next
    to a note of where it belongs, so that ``recover`` can put it back if a kill lands between the two
    renames; on an error it is put back at once."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with fslock.locked(_tmp_lock()):
        holder = aside = None
        if dest.exists() or dest.is_symlink():
            holder = Path(tempfile.mkdtemp(prefix=f"old-{os.getpid()}-", dir=paths.tmp_dir()))
            (holder / _DEST_FILE).write_text(str(dest), encoding="utf-8")
            aside = holder / dest.name
            os.rename(dest, aside)
        try:
            os.rename(staging, dest)
        except BaseException:
            if aside is not None:
                os.rename(aside, dest)
            raise
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)


def recover(max_age_s: float = 24 * 3600) -> list[str]:
    """Clean up after fetches that were killed: put a cache folder moved aside back where it is missing,
    then remove the working folders of processes that are gone. Returns what was done."""
    done: list[str] = []
    tmp = paths.tmp_dir()
    with fslock.locked(_tmp_lock()):
        for d in sorted(tmp.iterdir()):
            if d.name.startswith(".") or not d.is_dir():
                continue
            done += _recover_folder(d, max_age_s)
    return done


def _recover_folder(d: Path, max_age_s: float) -> list[str]:
    """One working folder: left alone while its process runs; else the folder it moved aside put back
    (``old-*``) and the working folder removed. One without a pid in its name goes when it is old."""
    pid = fslock.owner_pid(d.name, _OLD_RE)
    if pid is None:
        pid = fslock.owner_pid(d.name, _STAGING_RE)
    if pid is None:  # a folder of an older arcforge (no pid in the name): age decides
        return _remove_if_stale(d, max_age_s)
    if not fslock.abandoned(pid):
        return []
    done = _restore_aside(d) if d.name.startswith("old-") else []
    shutil.rmtree(d, ignore_errors=True)
    return [*done, f"removed {d.name}"]


def _remove_if_stale(d: Path, max_age_s: float) -> list[str]:
    """Remove an older arcforge's ``fetch-*``/``old-*`` folder last changed more than ``max_age_s`` ago."""
    try:
        stale = d.name.startswith(("fetch-", "old-")) and time.time() - d.stat().st_mtime > max_age_s
    except OSError:
        stale = False
    if stale:
        shutil.rmtree(d, ignore_errors=True)
        return [f"removed {d.name}"]
    return []


def _restore_aside(d: Path) -> list[str]:
    """Put the cache folder that an ``old-*`` folder holds back where it came from, if that place is free."""
    try:
        dest = Path((d / _DEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        dest = None
    aside = d / dest.name if dest is not None else None
    if aside is not None and aside.exists() and not dest.exists() and not dest.is_symlink():
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(aside, dest)
        return [f"restored {dest}"]
    return []
