"""A build of all the mirrored sources loads with `datasets.load_dataset`, every config, counts checked
against the source files themselves."""

from __future__ import annotations

from collections import Counter

import pytest

from arcforge.build.reports import read_report
from arcforge.shards import list_shards, read_table
from tests.helpers import tasks_in_mirror


def test_counts_match_the_source_files(full_build, shared_sources, mirrored_names):
    out, stats = full_build
    expected = tasks_in_mirror(shared_sources, mirrored_names)
    assert expected["arc_agi_1"] == {"training": 400, "evaluation": 400}  # sanity of the counting itself
    assert stats.found == expected
    # Every task found is written, quarantined, or dropped by dedup (and listed in its report).
    q = Counter(r["source"] for r in read_report(out, "quarantine").to_pylist())
    ex = Counter(read_report(out, "excluded")["source"].to_pylist())
    dup = Counter(read_report(out, "duplicates")["dropped_source"].to_pylist())
    for src, splits in expected.items():
        written = sum(i.rows for i in list_shards(out, [src]))
        assert written + q[src] + ex[src] + dup[src] == sum(splits.values()), src
    import json

    bad = sum(
        json.loads(p.read_text())["annotations"]["example"] == "bad"
        for p in shared_sources.glob("xu3kev/BARC/synthetic_problems/*.json")
    )
    assert stats.skipped == {
        "IPARC solution program (not a task)": 500,
        "Mini-ARC user action trace (not a task)": 10,
        "BARC problem annotated example='bad' (dropped; see the manifest's drop option)": bad,
    }


def test_ids_paths_and_provenance(full_build):
    out, _ = full_build
    t = read_table(
        out,
        sources=["arc_agi_1", "synthetic_extend"],
        columns=["id", "path", "repo", "commit", "license", "split"],
    )
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
    row = datasets.load_dataset(
        str(out), name="arc_agi_1", split="evaluation", cache_dir=str(tmp_path / "hf")
    )[0]
    assert row["id"] == "arc_agi_1/evaluation/00576224" and row["train"][0]["input"] == [[8, 6], [6, 4]]
