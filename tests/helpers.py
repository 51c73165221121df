"""Test helpers: put the offline mirror's files into an ARCFORGE_HOME cache the way ``fetch`` would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from arcforge import paths
from arcforge.manifest import Manifest, glob_match, split_archive_glob


def mirrored(manifests: dict[str, Manifest], shared: Path) -> list[Manifest]:
    """The manifests whose repo is in the offline mirror."""
    return [m for m in manifests.values() if (shared / m.owner / m.repo_name).is_dir()]


def populate_cache(home: Path, manifests: list[Manifest], shared: Path) -> None:
    """Place each manifest's ``files`` from ``shared/<owner>/<repo>`` at ``home``'s source dir.

    Files are hard-linked when possible (fast, no copy of tama's 5000 files) and copied otherwise;
    nothing is ever written back to ``shared`` (the build only reads the cache).
    """
    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(home)
    try:
        for m in manifests:
            src = shared / m.owner / m.repo_name
            dst = paths.source_dir(m.owner, m.repo_name, m.commit)
            if dst.is_dir():
                continue
            tmp = dst.with_name(dst.name + ".tmp")
            outer_globs = [split_archive_glob(g)[0] for g in m.files]
            for f in sorted(src.rglob("*")):
                rel = f.relative_to(src).as_posix()
                if f.is_file() and any(glob_match(rel, g) for g in outer_globs):
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(f, target)
                    except OSError:
                        shutil.copyfile(f, target)
            tmp.rename(dst)
    finally:
        if old is None:
            os.environ.pop("ARCFORGE_HOME", None)
        else:
            os.environ["ARCFORGE_HOME"] = old
