"""The pure parts of publishing: the provenance file, the repo tree, the exact operation list, the
license gate, and the --to-dir export (loaded back with `datasets`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from arcforge.build.provenance import PROVENANCE_FILE, read_provenance, write_provenance
from arcforge.build.reports import read_report
from arcforge.errors import BuildError, PublishError
from arcforge.hub.plan import (
    Operation,
    check_sources,
    collect_files,
    is_managed_path,
    plan_operations,
    write_tree,
)
from arcforge.shards import list_shards, read_table
from tests.publish_helpers import build_out, hf_env  # noqa: F401  (fixture)

EXPECTED_TREE = [
    "README.md",
    "arc_agi_1/evaluation-00000-of-00002.parquet",
    "arc_agi_1/evaluation-00001-of-00002.parquet",
    "arc_agi_1/training-00000-of-00002.parquet",
    "arc_agi_1/training-00001-of-00002.parquet",
    "arc_community/training-00000-of-00001.parquet",
    "provenance.json",
    "reports/duplicates.jsonl",
    "reports/excluded.jsonl",
    "reports/quarantine.jsonl",
]


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return build_out(tmp_path / "out")


# --- provenance ------------------------------------------------------------------------------------------
def test_provenance_round_trip_and_is_deterministic(tmp_path: Path):
    sources = [
        {"name": "b_src", "repo": "o/b", "commit": "c" * 40, "license": "unknown", "tasks": 3},
        {
            "name": "a_src",
            "repo": "o/a",
            "commit": "a" * 40,
            "license": "MIT",
            "digest": "sha256:ab",
            "citation": "@misc{a}",
        },
    ]
    opts = {"exclude_eval": True, "out": Path("/x/y")}
    p = write_provenance(tmp_path / "one", sources=sources, options=opts)
    write_provenance(tmp_path / "two", sources=list(reversed(sources)), options=opts)
    assert p == tmp_path / "one" / PROVENANCE_FILE
    assert p.read_bytes() == (tmp_path / "two" / PROVENANCE_FILE).read_bytes()  # order-independent
    prov = read_provenance(tmp_path / "one")
    assert [s.name for s in prov.sources] == ["a_src", "b_src"]
    a, b = prov.sources
    assert (a.repo, a.commit, a.license, a.digest, a.citation) == (
        "o/a",
        "a" * 40,
        "MIT",
        "sha256:ab",
        "@misc{a}",
    )
    assert b.extra == {"tasks": 3} and b.digest == ""
    assert [s.name for s in prov.unknown_license_sources] == ["b_src"]
    assert prov.options == {"exclude_eval": True, "out": "/x/y"}
    assert prov.arcforge_version
    assert not list(tmp_path.glob("one/.*tmp"))  # the atomic write left no temp file


def test_provenance_errors_name_the_file(tmp_path: Path):
    with pytest.raises(BuildError, match=r"provenance.json: provenance file not found"):
        read_provenance(tmp_path)
    with pytest.raises(BuildError, match=r"source 'x' lacks commit, license"):
        write_provenance(tmp_path, sources=[{"name": "x", "repo": "o/x"}], options={})
    with pytest.raises(BuildError, match=r"listed twice: x"):
        src = {"name": "x", "repo": "o/x", "commit": "c", "license": "MIT"}
        write_provenance(tmp_path, sources=[src, src], options={})
    (tmp_path / PROVENANCE_FILE).write_text("{not json")
    with pytest.raises(BuildError, match=rf"{tmp_path / PROVENANCE_FILE}: not valid JSON"):
        read_provenance(tmp_path)
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps({"format_version": 99, "sources": []}))
    with pytest.raises(BuildError, match="format_version 99 is not supported"):
        read_provenance(tmp_path)


# --- the repo tree ------------------------------------------------------------------------------------------
def test_collect_files_lists_exactly_the_repo_tree_with_sizes_and_digests(out: Path):
    (out / ".DS_Store").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    (out / "arc_agi_1" / "scratch.parquet").write_bytes(b"nope")
    tree = collect_files(out)
    assert [f.path_in_repo for f in tree.files] == EXPECTED_TREE
    for f in tree.files:
        data = (out / f.path_in_repo).read_bytes()
        assert (f.size, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert f.local_path == out / f.path_in_repo
    assert tree.skipped == (".DS_Store", "arc_agi_1/scratch.parquet", "notes.txt")
    assert tree.sources == ["arc_agi_1", "arc_community"]


@pytest.mark.parametrize("missing", ["README.md", "provenance.json"])
def test_collect_files_requires_card_and_provenance(out: Path, missing: str):
    (out / missing).unlink()
    with pytest.raises(PublishError, match=rf"{out / missing}: missing"):
        collect_files(out)


def test_collect_files_requires_shards_and_a_card_with_metadata(out: Path, tmp_path: Path):
    (out / "README.md").write_text("# no metadata block\n")
    with pytest.raises(PublishError, match="has no YAML metadata block"):
        collect_files(out)
    for shard in list_shards(out):
        (out / shard.path).unlink()
    with pytest.raises(PublishError, match="no Parquet shards"):
        collect_files(out)
    with pytest.raises(PublishError, match="dataset folder not found"):
        collect_files(tmp_path / "nope")


# --- operations ---------------------------------------------------------------------------------------------
def test_plan_operations_adds_everything_and_deletes_only_stale_build_files(out: Path):
    tree = collect_files(out)
    remote = [
        ".gitattributes",
        "README.md",
        "images/logo.png",
        "CITATION.cff",  # not ours: kept
        "arc_agi_1/training-00000-of-00002.parquet",  # replaced by an add
        "arc_agi_1/training-00000-of-00003.parquet",
        "arc_agi_1/training-00002-of-00003.parquet",  # old sharding
        "re_arc/training-00000-of-00001.parquet",  # a source the new build dropped
        "provenance.json",
        "reports/quarantine.jsonl",
        "quarantine.parquet",
        "reported.parquet",  # reports where older builds put them: removed
        "arc_agi_1/notes/x-00000-of-00001.parquet",  # deeper than a shard: not ours
    ]
    ops = plan_operations(tree, remote)
    by_path = {f.path_in_repo: f for f in tree.files}
    assert ops == [
        *(Operation("add", p, by_path[p].size, by_path[p].sha256, out / p) for p in EXPECTED_TREE),
        Operation("delete", "arc_agi_1/training-00000-of-00003.parquet"),
        Operation("delete", "arc_agi_1/training-00002-of-00003.parquet"),
        Operation("delete", "quarantine.parquet"),
        Operation("delete", "re_arc/training-00000-of-00001.parquet"),
        Operation("delete", "reported.parquet"),
    ]
    assert ops[-2].to_dict() == {
        "op": "delete",
        "path": "re_arc/training-00000-of-00001.parquet",
        "size": None,
        "sha256": None,
    }
    # unknown remote (dry run): additions only
    assert plan_operations(tree, None) == ops[: len(EXPECTED_TREE)]


def test_managed_paths():
    assert is_managed_path("src/training-00000-of-00001.parquet")
    assert is_managed_path("reports/excluded.jsonl") and is_managed_path("provenance.json")
    assert is_managed_path("excluded.parquet")  # where older builds put the reports
    assert not is_managed_path("reports/notes.jsonl")
    assert not is_managed_path("README.md")  # always re-added, never deleted
    assert not is_managed_path(".gitattributes")
    assert not is_managed_path("training-00000-of-00001.parquet")  # not under a source folder
    assert not is_managed_path(".hidden/training-00000-of-00001.parquet")


# --- license gate -------------------------------------------------------------------------------------------
def test_license_gate_refuses_unknown_unless_allowed(out: Path):
    tree, prov = collect_files(out), read_provenance(out)
    with pytest.raises(PublishError, match=r"unknown license: arc_community \(arc-community/arc\)") as e:
        check_sources(tree, prov, allow_unknown_license=False)
    assert "--allow-unknown-license" in e.value.hint
    check_sources(tree, prov, allow_unknown_license=True)


def test_license_gate_passes_known_licenses_and_requires_provenance_for_every_source(tmp_path):
    out = build_out(tmp_path / "out", sources=("arc_agi_1",))
    check_sources(collect_files(out), read_provenance(out), allow_unknown_license=False)
    write_provenance(out, sources=[], options={})
    with pytest.raises(PublishError, match=r"no provenance .* for shard folder"):
        check_sources(collect_files(out), read_provenance(out), allow_unknown_license=True)


# --- --to-dir -----------------------------------------------------------------------------------------------
def test_write_tree_is_exact_and_loads_with_datasets(out: Path, tmp_path: Path, hf_env: Path):  # noqa: F811
    (out / "notes.txt").write_text("mine")
    dest = write_tree(collect_files(out), tmp_path / "export")
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == EXPECTED_TREE
    for rel in written:
        assert (dest / rel).read_bytes() == (out / rel).read_bytes()
    assert not list(tmp_path.glob(".export.partial-*"))

    import datasets

    for config, splits in {"arc_agi_1": ["training", "evaluation"], "arc_community": ["training"]}.items():
        ds = datasets.load_dataset(str(dest), config, cache_dir=str(hf_env / "datasets"))
        assert sorted(ds.keys()) == sorted(splits)
        for split in splits:
            want = read_table(out, sources=[config], splits=[split])
            assert ds[split]["id"] == want["id"].to_pylist()
            assert ds[split]["train"] == want["train"].to_pylist()
    assert read_report(dest, "quarantine").num_rows == 1


def test_write_tree_refuses_a_non_empty_or_inner_destination(out: Path, tmp_path: Path):
    tree = collect_files(out)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    with pytest.raises(PublishError, match="already exists and is not an empty folder"):
        write_tree(tree, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "keep"
    with pytest.raises(PublishError, match="must be outside the dataset folder"):
        write_tree(tree, out / "export")
    (tmp_path / "empty").mkdir()
    assert write_tree(tree, tmp_path / "empty") == tmp_path / "empty"
