"""Nothing is lost: rebuilds keep files arcforge did not write, a kill between two renames (build output
or fetch cache) is recovered by the next run, leftovers are cleaned, concurrent first fetches keep every
pin, bad source names are refused, provenance holds names and no local path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arcforge import paths
from arcforge.build import output
from arcforge.build.pipeline import build
from arcforge.errors import BuildError, ShardError
from arcforge.shards import list_shards, read_table
from arcforge.sources import fetch, staging
from arcforge.sources.manifest import load_manifests
from tests import kill_child
from tests.test_build import GOOD, GOOD_B, GOOD_C, _local


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_rebuild_replaces_only_what_arcforge_wrote(arcforge_home, tmp_path):
    out = tmp_path / "out"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    build(out, local=[a])
    # The user keeps notes, a --local input folder and a file inside a source folder in `out`.
    (out / "notes.txt").write_text("my notes")
    mine = _local(
        out / "mine", {"t1.json": json.dumps(GOOD_B).encode(), "t2.json": json.dumps(GOOD_C).encode()}
    )
    (out / "a" / "README-a.md").write_text("about a")
    (out / "empty_dir").mkdir()
    (out / "link").symlink_to("notes.txt")
    stats = build(out, local=[mine])  # source `a` is gone from this build
    assert stats.total_tasks == 2 and [s.source for s in list_shards(out)] == ["mine"]
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "a" / "README-a.md").read_text() == "about a"
    assert sorted(p.name for p in (out / "a").iterdir()) == ["README-a.md"]  # a's shard was removed
    assert _files(out / "mine") == {
        "t1.json": json.dumps(GOOD_B).encode(),
        "t2.json": json.dumps(GOOD_C).encode(),
    } | {k: v for k, v in _files(out / "mine").items() if k.endswith(".parquet")}
    assert (out / "empty_dir").is_dir() and os.readlink(out / "link") == "notes.txt"
    owned = json.loads((out / output.OWNED_FILE).read_text())["files"]
    assert "notes.txt" not in owned and "mine/training-00000-of-00001.parquet" in owned
    assert _siblings(out) == []
    from arcforge.hub.plan import collect_files

    skipped = collect_files(out).skipped  # never uploaded; the build's own list is not even mentioned
    assert "notes.txt" in skipped and "mine/t1.json" in skipped and output.OWNED_FILE not in skipped


def test_a_build_without_the_owned_list_keeps_foreign_files_too(arcforge_home, tmp_path):
    out = tmp_path / "out"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    build(out, local=[a])
    (out / output.OWNED_FILE).unlink()  # as an older arcforge left it: only the card's marker
    (out / "notes.txt").write_text("mine")
    build(out, local=[a])
    assert (out / "notes.txt").read_text() == "mine" and (out / output.OWNED_FILE).is_file()


def test_a_foreign_file_where_the_build_writes_is_refused_and_nothing_changes(arcforge_home, tmp_path):
    out = tmp_path / "out"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    build(out, local=[a])
    b = _local(tmp_path / "b", {"y.json": json.dumps(GOOD_B).encode()})
    (out / "b").mkdir()
    (out / "b" / "training-00000-of-00001.parquet").write_bytes(b"user data")
    before = _files(out)
    with pytest.raises(BuildError, match="arcforge did not write this file"):
        build(out, local=[a, b])
    assert _files(out) == before and _siblings(out) == []


@pytest.mark.parametrize(
    "when, n, expect",
    [
        ("before", 1, "old"),  # killed before `out` was moved aside
        ("before", 2, "old"),  # between the two renames: `out` is missing until the next run
        ("after", 2, "new"),  # after the swap, before the old folder was removed
    ],
)
def test_build_killed_at_each_rename_is_recovered(arcforge_home, tmp_path, when, n, expect):
    out = tmp_path / "out"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    b = _local(tmp_path / "b", {"y.json": json.dumps(GOOD_B).encode()})
    build(out, local=[a])
    (out / "notes.txt").write_text("keep me")
    old_rows = read_table(out)
    assert kill_child.run(when, str(n), "build", str(out), str(b)) < 0
    if (when, n) == ("before", 2):
        assert not out.exists() and any(".old-" in s for s in _siblings(out))  # the window of the fault
        with pytest.raises(ShardError, match="dataset folder not found") as err:
            list_shards(out)  # readers never repair: they say what happened and what to do
        assert (
            "interrupted" in err.value.hint and "run the same `arcforge build --out` again" in err.value.hint
        )
        assert not out.exists()
    output.recover(out)  # what any next build does first
    assert _siblings(out) == [] and (out / "notes.txt").read_text() == "keep me"
    got = read_table(out)
    if expect == "old":
        assert got.equals(old_rows)
    else:
        assert got["source"].to_pylist() == ["b"]
    stats = build(out, local=[b])  # and the next build works normally
    assert stats.total_tasks == 1 and (out / "notes.txt").read_text() == "keep me" and _siblings(out) == []


def test_leftovers_of_a_running_build_are_left_alone(arcforge_home, tmp_path):
    out = tmp_path / "out"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    build(out, local=[a])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = tmp_path / f".out.building-{live.pid}"
        busy.mkdir()
        dead = tmp_path / ".out.building-999999999"
        dead.mkdir()
        output.recover(out)
        assert busy.is_dir() and not dead.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("when", ["before", "after"])
def test_fetch_killed_between_renames_restores_the_cache(arcforge_home, shared_sources, when):
    m = load_manifests()["arc_community"]
    first = fetch.fetch_source(m, mirror=fetch.resolve_mirror(shared_sources))
    assert first.status == "fetched"
    before = _files(first.path)
    # rename 1 moves the cache aside, rename 2 puts the new copy in place
    assert kill_child.run(when, "2", "fetch", m.name, str(m.path.parent), str(shared_sources)) < 0
    tmp_entries = [p.name for p in paths.tmp_dir().iterdir()]
    assert any(n.startswith("old-") for n in tmp_entries)
    if when == "before":
        assert not first.path.exists()  # the fault: the cache folder is gone until recovery
    done = staging.recover()
    assert any(d.startswith("restored") for d in done) == (when == "before")
    assert list(paths.tmp_dir().iterdir()) == []
    got = _files(first.path)
    for marker in (got, before):
        marker.pop(fetch.MARKER)  # holds the fetch time
    assert got == before
    assert fetch.fetch_source(m).status == "cached"


def test_leftover_fetch_staging_of_a_dead_process_is_removed(arcforge_home):
    stale = paths.tmp_dir() / "fetch-arc_agi_1-999999999-abc123"
    (stale / "data").mkdir(parents=True)
    mine = staging.staging_dir("arc_agi_1")  # this process is alive: left alone
    staging.recover()
    assert not stale.exists() and mine.is_dir()


def test_concurrent_first_fetches_keep_every_pin(arcforge_home):
    """Several processes record pins at the same moment; each read-modify-write of the home lock must
    see the others' (before the fix 2 of 4 were lost)."""
    procs, per = 6, 15
    arcforge_home.mkdir(parents=True, exist_ok=True)
    go = arcforge_home / "go"
    code = (
        "import sys, time, pathlib\n"
        "from arcforge.sources import lock\n"
        "from arcforge.sources.manifest import load_manifests\n"
        "m = load_manifests()['arc_agi_1']\n"
        "go = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.01)\n"
        "for i in range(int(sys.argv[3])):\n"
        "    lock.record_pin(type(m)(**{**m.__dict__, 'name': f'p{sys.argv[1]}_{i}'}), 'sha256:' + '0'*64, "
        "1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(kill_child.ROOT)}
    ps = [
        subprocess.Popen([sys.executable, "-c", code, str(k), str(go), str(per)], env=env)
        for k in range(procs)
    ]
    try:
        go.touch()
        assert all(p.wait(timeout=60) == 0 for p in ps)
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
    from arcforge.sources.lock import home_lock_path, read_lock

    assert len(read_lock(home_lock_path())) == procs * per


@pytest.mark.parametrize("name", ["../escaped", "Bad Name/x", "a/b", "UPPER", "", "1abc"])
def test_invalid_local_names_are_refused_before_writing(arcforge_home, tmp_path, name):
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    with pytest.raises(BuildError, match="not a valid source name"):
        build(tmp_path / "out", local=[a], local_names=[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_provenance_holds_names_not_local_paths(arcforge_home, tmp_path):
    a = _local(tmp_path / "secret_place" / "tasks", {"x.json": json.dumps(GOOD).encode()})
    held = _local(tmp_path / "secret_place" / "heldout", {"e.json": json.dumps(GOOD_B).encode()})
    out = tmp_path / "out"
    build(out, local=[a], local_names=["mine"], eval_local=[held], exclude_eval=True)
    for f in ("provenance.json", "README.md"):
        text = (out / f).read_text()
        assert str(tmp_path) not in text and "secret_place" not in text, f
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["options"]["local"] == ["mine"] and prov["options"]["eval_local"] == ["eval_heldout"]
    assert prov["options"]["max_grid"] is None and prov["options"]["seed"] == 0  # every option is recorded
    assert prov["sources"][0]["repo"] == "local:mine"


def test_a_bit_flip_in_the_build_cache_is_caught_and_the_source_parsed_again(arcforge_home, tmp_path):
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD_B).encode()})
    first = build(tmp_path / "o1", local=[a])
    assert first.cached_sources == []
    [entry] = (arcforge_home / "build-cache").glob("*.arrow")
    data = entry.read_bytes()
    assert data.count(b"\x04\x05\x06") == 1  # the test input row [4, 5, 6], stored as int8
    entry.write_bytes(data.replace(b"\x04\x05\x06", b"\x04\x05\x07"))  # one bit flipped on disk
    again = build(tmp_path / "o2", local=[a])
    assert again.cached_sources == []  # not trusted: parsed again
    assert read_table(tmp_path / "o2").equals(read_table(tmp_path / "o1"))
    assert build(tmp_path / "o3", local=[a]).cached_sources == ["a"]  # the fresh entry is used again


def test_an_out_that_is_a_symlink_keeps_pointing_at_the_rebuilt_folder(arcforge_home, tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    build(real, local=[a])
    link.symlink_to(real)
    (real / "notes.txt").write_text("keep")
    b = _local(tmp_path / "b", {"y.json": json.dumps(GOOD_B).encode()})
    build(link, local=[b])
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "notes.txt").read_text() == "keep" and [s.source for s in list_shards(real)] == ["b"]
