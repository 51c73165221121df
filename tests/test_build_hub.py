"""A build of all 11 mirrored sources loads with `datasets.load_dataset`, every config, counts checked
against the source files themselves."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import pytest

from arcforge.reports import read_report
from arcforge.shards import list_shards, read_table


def _tasks_in_files(shared: Path) -> dict[str, dict[str, int]]:
    """Tasks per source and split, counted from the upstream files with plain globbing (not our code)."""
    def n(pattern: str) -> int:
        return len(list(shared.glob(pattern)))

    def zipped(path: str, folder: str) -> int:
        with zipfile.ZipFile(shared / path) as zf:
            return sum(1 for x in zf.namelist() if x.startswith(folder + "/") and x.endswith(".json"))

    iparc = [p for p in shared.glob("ac20/IPARC_ChallengeV2/Dataset/*/Task*.json") if "_soln" not in p.name]
    return {
        "arc_agi_1": {"training": n("fchollet/ARC-AGI/data/training/*.json"),
                      "evaluation": n("fchollet/ARC-AGI/data/evaluation/*.json")},
        "arc_agi_2": {"training": n("arcprize/ARC-AGI-2/data/training/*.json"),
                      "evaluation": n("arcprize/ARC-AGI-2/data/evaluation/*.json")},
        "concept_arc": {"training": n("victorvikram/ConceptARC/corpus/*/*.json")
                        + n("victorvikram/ConceptARC/MinimalTasks/*.json")},
        "arc_1d": {"training": n("khalil-research/1D-ARC/dataset/*/*.json")},
        "mini_arc": {"training": n("KSB21ST/MINI-ARC/data/MiniARC/*.json")},  # traces are not tasks
        "neoneye_diva": {"training": n("neoneye/arc-dataset-diva/dataset/*/*.json")},
        "neoneye_tama": {"training": n("neoneye/arc-dataset-tama/dataset/*/*.json")},
        "synthetic_extend": {"training": zipped("frankaging/ARC_synthetic_extend/easy_l1.zip", "easy_l1")
                             + zipped("frankaging/ARC_synthetic_extend/easy_l2.zip", "easy_l2")},
        "iparc": {"training": len(iparc)},
        "arc_community": {"training": n("arc-community/arc/levels/*/*.json")},
        "neoneye_bad": {"training": n("neoneye/arc-dataset-collection/dataset/arc-dataset-bad/data/*.json")},
    }


def test_counts_match_the_source_files(full_build, shared_sources):
    out, stats = full_build
    expected = _tasks_in_files(shared_sources)
    assert expected["arc_agi_1"] == {"training": 400, "evaluation": 400}  # sanity of the counting itself
    assert stats.found == expected
    # Every task found is written, quarantined, or dropped by dedup (and listed in its report).
    q = Counter(r["source"] for r in read_report(out, "quarantine").to_pylist())
    ex = Counter(read_report(out, "excluded")["source"].to_pylist())
    dup = Counter(read_report(out, "duplicates")["dropped_source"].to_pylist())
    for src, splits in expected.items():
        written = sum(i.rows for i in list_shards(out, [src]))
        assert written + q[src] + ex[src] + dup[src] == sum(splits.values()), src
    assert stats.skipped == {"IPARC solution program (not a task)": 500,
                             "Mini-ARC user action trace (not a task)": 10}


def test_ids_paths_and_provenance(full_build):
    out, _ = full_build
    t = read_table(out, sources=["arc_agi_1", "synthetic_extend"], columns=["id", "path", "repo", "commit",
                                                                           "license", "split"])
    rows = {r["id"]: r for r in t.to_pylist()}
    r = rows["arc_agi_1/evaluation/00576224"]
    assert r["path"] == "data/evaluation/00576224.json" and r["repo"] == "fchollet/ARC-AGI"
    assert r["commit"] == "399030444e0ab0cc8b4e199870fb20b863846f34" and r["license"] == "Apache-2.0"
    z = rows["synthetic_extend/easy_l1/c59eb873_syn_11"]
    assert z["path"] == "easy_l1.zip!easy_l1/c59eb873_syn_11.json" and z["split"] == "training"


def test_load_dataset_every_config(full_build, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    out, stats = full_build
    configs = datasets.get_dataset_config_names(str(out))
    assert set(configs) == {"default", *stats.tasks}
    from arcforge.task import TASK_SCHEMA

    features = datasets.Features.from_arrow_schema(TASK_SCHEMA)
    for name in configs:
        ds = datasets.load_dataset(str(out), name=name, cache_dir=str(tmp_path / "hf"))
        if name == "default":
            want = Counter()
            for splits in stats.tasks.values():
                want.update(splits)
        else:
            want = stats.tasks[name]
        assert {s: d.num_rows for s, d in ds.items()} == dict(want), name
        for d in ds.values():
            assert d.features == features
            assert set(d["source"]) == ({name} if name != "default" else set(d["source"]))
    # The report parquet files at the root are never read as data (explicit configs).
    default = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert sum(d.num_rows for d in default.values()) == stats.total_tasks
    row = datasets.load_dataset(str(out), name="arc_agi_1", split="evaluation", cache_dir=str(tmp_path / "hf"))[0]
    assert row["id"] == "arc_agi_1/evaluation/00576224" and row["train"][0]["input"] == [[8, 6], [6, 4]]
