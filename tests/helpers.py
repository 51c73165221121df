"""Test helpers: put the offline mirror's files into an ARCFORGE_HOME cache the way ``fetch`` would."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from arcforge import paths
from arcforge.sources.lock import kept_files, mirror_root
from arcforge.sources.manifest import Manifest, glob_match, split_archive_glob


def mirrored(manifests: dict[str, Manifest], shared: Path) -> list[Manifest]:
    """The manifests whose files the offline mirror holds (a repo it copied only in part, like neoneye's
    collection, serves only the sources whose files it has)."""
    return [
        m
        for m in manifests.values()
        if mirror_root(shared, m).is_dir() and kept_files(mirror_root(shared, m), m.files)
    ]


def populate_cache(home: Path, manifests: list[Manifest], shared: Path) -> None:
    """Place each manifest's ``files`` from ``shared/<owner>/<repo>`` at ``home``'s source dir.

    Files are hard-linked when possible (fast, no copy of tama's 5000 files) and copied otherwise;
    nothing is ever written back to ``shared`` (the build only reads the cache).
    """
    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(home)
    try:
        for m in manifests:
            src = mirror_root(shared, m)
            dst = paths.source_dir(m.owner, m.repo_name, m.commit, m.kind, m.cache_key)
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


def tasks_in_mirror(shared: Path, names: set[str]) -> dict[str, dict[str, int]]:
    """Tasks per source and split of the ``names`` sources, counted from the upstream files with plain
    globbing and json (not our code)."""

    def n(pattern: str) -> int:
        return len(list(shared.glob(pattern)))

    def zipped(path: str, folder: str) -> int:
        with zipfile.ZipFile(shared / path) as zf:
            return sum(1 for x in zf.namelist() if x.startswith(folder + "/") and x.endswith(".json"))

    iparc = [p for p in shared.glob("ac20/IPARC_ChallengeV2/Dataset/*/Task*.json") if "_soln" not in p.name]

    def listed(path: str) -> int:
        return len(json.loads((shared / path).read_text()))

    counts = {
        "arc_agi_1": {
            "training": n("fchollet/ARC-AGI/data/training/*.json"),
            "evaluation": n("fchollet/ARC-AGI/data/evaluation/*.json"),
        },
        "arc_agi_2": {
            "training": n("arcprize/ARC-AGI-2/data/training/*.json"),
            "evaluation": n("arcprize/ARC-AGI-2/data/evaluation/*.json"),
        },
        "concept_arc": {
            "training": n("victorvikram/ConceptARC/corpus/*/*.json")
            + n("victorvikram/ConceptARC/MinimalTasks/*.json")
        },
        "arc_1d": {"training": n("khalil-research/1D-ARC/dataset/*/*.json")},
        "mini_arc": {"training": n("KSB21ST/MINI-ARC/data/MiniARC/*.json")},  # traces are not tasks
        "neoneye_diva": {"training": n("neoneye/arc-dataset-diva/dataset/*/*.json")},
        "neoneye_tama": {"training": n("neoneye/arc-dataset-tama/dataset/*/*.json")},
        "synthetic_extend": {
            "training": zipped("frankaging/ARC_synthetic_extend/easy_l1.zip", "easy_l1")
            + zipped("frankaging/ARC_synthetic_extend/easy_l2.zip", "easy_l2")
        },
        "iparc": {"training": len(iparc)},
        "arc_community": {"training": n("arc-community/arc/levels/*/*.json")},
        "neoneye_bad": {"training": n("neoneye/arc-dataset-collection/dataset/arc-dataset-bad/data/*.json")},
        "barc": {
            "evaluation": listed("xu3kev/BARC/data_processing/test-time-finetune/arc_all_evaluation.json"),
            # annotated problems; those whose examples are annotated "bad" are dropped by default
            "synthetic_problems": sum(
                json.loads(p.read_text())["annotations"]["example"] != "bad"
                for p in shared.glob("xu3kev/BARC/synthetic_problems/*.json")
            ),
        },
        "re_arc": {
            "original_training": zipped("michaelhodel/re-arc/arc_original.zip", "arc_original/training"),
            "original_evaluation": zipped("michaelhodel/re-arc/arc_original.zip", "arc_original/evaluation"),
        },
    }
    assert names <= set(counts), f"count the tasks of {sorted(names - set(counts))} here too"
    return {name: c for name, c in counts.items() if name in names}
