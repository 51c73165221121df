"""The sources kept inside neoneye/arc-dataset-collection (PQA's full zip, synth_riddles' tar.gz archives,
Sort-of-ARC, nosound, dbigham): fetched from a loopback GitHub (the network boundary) serving a tarball of
the collection's layout, each source in its own cache folder (``cache_key``), then built through
``archive!glob`` with the archive safety rules. The offline mirror copies only arc-dataset-bad of the
collection, so these sources are unavailable there (``test_fetch_mirror``)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from fetch_server import TarballServer, github_tarball
from upstream_formats import collection_files, tar_gz_of, task_json

from arcforge import paths
from arcforge.build.pipeline import build
from arcforge.shards import read_table
from arcforge.sources import fetch
from arcforge.sources.manifest import load_manifests
from arcforge.sources.members import unpacked_dir

NAMES = ("neoneye_pqa", "neoneye_synth_riddles", "neoneye_sort_of_arc", "neoneye_nosound", "neoneye_dbigham")


def _collection(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "collection"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture()
def github(monkeypatch, arcforge_home):
    with TarballServer() as srv:
        monkeypatch.setenv("ARCFORGE_GITHUB_URL", srv.url)
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield srv


def _serve(github, tmp_path, files) -> dict:
    ms = load_manifests()
    m = ms["neoneye_pqa"]
    github.add_tarball(
        m.owner, m.repo_name, m.commit, github_tarball(_collection(tmp_path, files), m.repo_name, m.commit)
    )
    return ms


def test_collection_sources_fetch_into_their_own_folders_and_build(github, tmp_path, arcforge_home):
    ms = _serve(github, tmp_path, collection_files())
    results = {r.name: r for r in fetch.fetch_sources([ms[n] for n in NAMES])}  # one repo@commit: no clash
    assert {r.status for r in results.values()} == {"fetched"}, {n: r.error for n, r in results.items()}
    for name in NAMES:  # one repo@commit, one cache folder per source, each with its own files only
        m = ms[name]
        assert results[name].path == paths.source_dir(m.owner, m.repo_name, m.commit, "repo", name)
    assert fetch.cache_dir(ms["neoneye_bad"]) == paths.source_dir(
        "neoneye", "arc-dataset-collection", ms["neoneye_bad"].commit
    )  # as before
    assert results["neoneye_synth_riddles"].files == 4  # two archives, LICENSE, readme
    stats = build(arcforge_home / "out", sources=list(NAMES))
    assert stats.tasks == {
        "neoneye_pqa": {"training": 3},
        "neoneye_synth_riddles": {"training": 5},
        "neoneye_sort_of_arc": {"training": 2},
        "neoneye_nosound": {"training": 3},
        "neoneye_dbigham": {"training": 2},
    }
    ids = set(read_table(arcforge_home / "out")["id"].to_pylist())
    assert "neoneye_pqa/PQA-dataset_10k/closure-filling/closure-filling-0" in ids
    assert f"neoneye_synth_riddles/rigid_15x15_depth_1_10k/{300:08x}" in ids
    assert f"neoneye_nosound/{410:08x}" in ids
    lic = dict(
        zip(
            read_table(arcforge_home / "out")["source"].to_pylist(),
            read_table(arcforge_home / "out")["license"].to_pylist(),
            strict=True,
        )
    )
    assert (
        lic["neoneye_pqa"] == lic["neoneye_sort_of_arc"] == "unknown"
        and lic["neoneye_synth_riddles"] == "MIT"
    )


def test_a_hostile_tar_gz_is_quarantined_whole_and_the_build_goes_on(github, tmp_path, arcforge_home):
    files = collection_files()
    link = tarfile.TarInfo("evil/escape.json")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    files["dataset/synth_riddles/all_depth_3_10k.tar.gz"] = tar_gz_of({"evil/ok.json": task_json(1)}, [link])
    bomb = io.BytesIO()  # a tar whose entry climbs out of the tree
    with tarfile.open(fileobj=bomb, mode="w:gz") as tf:
        info = tarfile.TarInfo("../outside.json")
        info.size = len(task_json(2))
        tf.addfile(info, io.BytesIO(task_json(2)))
    files["dataset/synth_riddles/e_009d5c81_10x10_250k.tar.gz"] = bomb.getvalue()
    ms = _serve(github, tmp_path, files)
    [r] = fetch.fetch_sources([ms["neoneye_synth_riddles"]])
    assert r.status == "fetched", r.error
    stats = build(arcforge_home / "out", sources=["neoneye_synth_riddles"])
    assert stats.tasks == {"neoneye_synth_riddles": {"training": 5}}  # the two good archives
    q = [
        json.loads(line)
        for line in (arcforge_home / "out" / "reports" / "quarantine.jsonl").read_text().splitlines()
    ]
    bad = {row["path"]: row for row in q}
    assert set(bad) == {
        "dataset/synth_riddles/all_depth_3_10k.tar.gz",
        "dataset/synth_riddles/e_009d5c81_10x10_250k.tar.gz",
    }
    assert all(row["reason"] == "bad_archive" for row in q)
    assert "pointing outside the tree" in bad["dataset/synth_riddles/all_depth_3_10k.tar.gz"]["detail"]
    assert "climbs out of the tree" in bad["dataset/synth_riddles/e_009d5c81_10x10_250k.tar.gz"]["detail"]
    assert (
        not (arcforge_home / "outside.json").exists()
        and not (paths.home() / "unpacked" / "outside.json").exists()
    )
    # a good archive is unpacked once, under its content's digest; nothing is left of the refused ones
    root = r.path / "dataset" / "synth_riddles"
    assert unpacked_dir(root / "rigid_15x15_depth_1_10k.tar.gz").is_dir()
    assert not unpacked_dir(root / "all_depth_3_10k.tar.gz").exists()
    assert not [p for p in (paths.home() / "unpacked").iterdir() if p.name.startswith(".")]
