"""Hub sources pinned by a branch (``revision = "main"``, no commit): the first fetch from the (loopback) Hub
resolves the branch and locks its commit with the files' sha256; later fetches and builds stay on it when
the branch moves; ``fetch --update`` moves it; a folder mirror records the digests and leaves the commit
unresolved, saying so."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from upstream_formats import arc_parquet, barc_jsonl

import arcforge.hub.download  # noqa: F401  (registers the Hub client, as `arcforge fetch` does)
from arcforge import paths
from arcforge.build.pipeline import build
from arcforge.cli.app import app
from arcforge.errors import ManifestError
from arcforge.shards import read_table
from arcforge.sources import fetch, lock
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests

HEAVY, PARQUET2 = "barc_200k_heavy", "arc_agi_2_parquet"
FAST = RetryPolicy(attempts=3, base_delay=0.0, timeout=5.0, deadline=60.0)
C1, C2 = (hashlib.sha1(s).hexdigest() for s in (b"first", b"second"))
runner = CliRunner()


def _heavy_files(n: int) -> dict[str, bytes]:
    """BARC's layout in the dataset's two files: the first half of ``n`` problems, then the rest."""
    lines = barc_jsonl(n).splitlines(keepends=True)
    return {
        "data_100k.jsonl": b"".join(lines[: n // 2]),
        "data_suggestfunction_100k.jsonl": b"".join(lines[n // 2 :]),
        "README.md": b"---\nlicense: mit\n---\n",
        ".gitattributes": b"*.jsonl filter=lfs\n",
    }


def _other_layout() -> bytes:
    """A Parquet copy laid out one pair per row (task_id, input, output): not one task per row."""
    rows = [{"task_id": "x", "input": [[1, 2]], "output": [[2, 1]]}]
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue().to_pybytes()


def _serve(hub, name: str, commit: str, files: dict[str, bytes]) -> None:
    repo = load_manifests()[name].repo
    hub.add(repo, commit, files)
    hub.set_ref(repo, "main", commit)


def _kept(folder) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".arcforge")
    }


def test_first_fetch_locks_the_commit_and_later_fetches_and_builds_stay_on_it(hub_online, arcforge_home):
    v1 = _heavy_files(6)
    _serve(hub_online, HEAVY, C1, v1)
    parquet = {
        "data/evaluation-00000-of-00001.parquet": arc_parquet(2, "e"),
        "data/pairs-00000-of-00001.parquet": _other_layout(),
        "README.md": b"# arc-agi-2\n",
    }
    _serve(hub_online, PARQUET2, C2, parquet)
    ms = load_manifests()
    results = {r.name: r for r in fetch.fetch_sources([ms[HEAVY], ms[PARQUET2]], retry=FAST)}
    r = results[HEAVY]
    assert (r.status, r.commit, r.revision, r.recorded_pin) == ("fetched", C1, "main", True), r.error
    assert r.path == paths.sources_dir() / "hf" / "barc0" / ms[HEAVY].repo_name / C1
    assert _kept(r.path) == _kept_expected(v1)
    entry = tomllib.loads(lock.home_lock_path().read_text())[HEAVY]
    assert (entry["revision"], entry["commit"], entry["digest"]) == ("main", C1, r.digest)
    assert entry["sha256"]["data_100k.jsonl"] == hashlib.sha256(v1["data_100k.jsonl"]).hexdigest()
    assert results[PARQUET2].commit == C2

    # the branch moves on: the lock holds, whether the cache is there or not
    _serve(hub_online, HEAVY, C2, _heavy_files(8))
    resolves = len(hub_online.gets("/revision/main"))
    assert [x.status for x in fetch.fetch_sources([ms[HEAVY]], retry=FAST)] == ["cached"]
    shutil.rmtree(r.path)
    shutil.rmtree(arcforge_home / "hub-downloads")  # no local copy: the Hub is asked, at the locked commit
    [again] = fetch.fetch_sources([ms[HEAVY]], retry=FAST)
    assert (again.status, again.commit, again.path, again.recorded_pin) == ("fetched", C1, r.path, False)
    assert _kept(again.path) == _kept_expected(v1)
    assert len(hub_online.gets("/revision/main")) == resolves  # never resolved again
    assert hub_online.gets(f"/resolve/{C1}/data_100k.jsonl") and not hub_online.gets(f"/resolve/{C2}/data_")

    _built_at_the_locked_commits(arcforge_home / "out", ms)


def _built_at_the_locked_commits(out, ms) -> None:
    """The build reads the locked commits; the Parquet file in another layout costs one quarantine line."""
    stats = build(out, sources=[HEAVY, PARQUET2])
    assert stats.tasks == {HEAVY: {"training": 6}, PARQUET2: {"evaluation": 2}}
    assert stats.quarantined == {"bad_structure": 1}  # the Parquet file it cannot read: one line
    [q] = [json.loads(x) for x in (out / "reports/quarantine.jsonl").read_text().splitlines()]
    assert q["source"] == PARQUET2 and "pairs-00000-of-00001.parquet" in q["path"]
    assert "lack 'train' and 'test'" in q["detail"] and "task_id" in q["detail"]
    prov = {s["name"]: s for s in json.loads((out / "provenance.json").read_text())["sources"]}
    assert (prov[HEAVY]["commit"], prov[HEAVY]["revision"]) == (C1, "main")
    assert set(read_table(out)["commit"].to_pylist()) == {C1, C2}
    card = (out / "README.md").read_text()
    assert f"[{ms[HEAVY].repo}@{C1[:7]}]" in card


def _kept_expected(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k != ".gitattributes"}


def test_update_moves_the_lock_to_the_commit_the_branch_names_now(hub_online, arcforge_home):
    _serve(hub_online, HEAVY, C1, _heavy_files(6))
    m = load_manifests()[HEAVY]
    res = runner.invoke(app, ["sources", "--json"])
    row = {r["name"]: r for r in json.loads(res.stdout)["sources"]}[HEAVY]
    assert (row["commit"], row["revision"], row["pinned_in"], row["cached"]) == (None, "main", None, False)
    assert f"{m.repo}@main (not locked until fetched)" in _table_line(HEAVY)

    first = runner.invoke(app, ["fetch", HEAVY])
    assert first.exit_code == 0, first.output
    assert f"locked commit {C1}" in " ".join(first.output.split())
    assert f"{m.repo}@main -> {C1[:7]}" in _table_line(HEAVY)

    v2 = _heavy_files(8)
    _serve(hub_online, HEAVY, C2, v2)
    same = json.loads(runner.invoke(app, ["fetch", HEAVY, "--json"]).stdout)["sources"][0]
    assert (same["status"], same["commit"]) == ("cached", C1)
    moved = runner.invoke(app, ["fetch", "--update", HEAVY, "--json"])
    assert moved.exit_code == 0, moved.output
    got = json.loads(moved.stdout)["sources"][0]
    assert (got["status"], got["commit"], got["revision"]) == ("fetched", C2, "main")
    assert tomllib.loads(lock.home_lock_path().read_text())[HEAVY]["commit"] == C2
    assert _kept(fetch.cached_path(lock.locked(m))) == _kept_expected(v2)
    assert f"@main -> {C2[:7]}" in _table_line(HEAVY)
    assert build(arcforge_home / "out", sources=[HEAVY]).tasks == {HEAVY: {"training": 8}}
    _relocked_without_its_entry(hub_online, m)
    refused = runner.invoke(app, ["fetch", "--update", "arc_agi_1"])
    assert refused.exit_code == 2 and "arc_agi_1 is pinned by its commit" in " ".join(refused.output.split())


def _relocked_without_its_entry(hub, m) -> None:
    """Deleting the lock entry does what --update does, at the next fetch."""
    _serve(hub, HEAVY, C1, _heavy_files(6))
    lock.write_lock(lock.home_lock_path(), [])
    assert [(x.status, x.commit) for x in fetch.fetch_sources([m], retry=FAST)] == [("fetched", C1)]


def _table_line(name: str) -> str:
    table = runner.invoke(app, ["sources"], env={"COLUMNS": "300"})
    assert table.exit_code == 0, table.output
    return next(x for x in table.output.splitlines() if x.split()[:1] == [name])


def test_an_unknown_branch_is_unavailable_and_locks_nothing(hub_online, arcforge_home):
    m = load_manifests()[HEAVY]
    hub_online.add(m.repo, C1, _heavy_files(2))
    hub_online.set_ref(m.repo, "other", C1)  # the repository has no branch "main"
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "unavailable" and f"revision not found: {m.repo}@main" in r.error
    assert lock.find_pin(m) is None and not lock.home_lock_path().exists()


def _hf_mirror(root, name: str, files: dict[str, bytes]):
    m = load_manifests()[name]
    for rel, data in files.items():
        p = root / "hf" / m.owner / m.repo_name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_a_mirror_records_the_digests_and_leaves_the_commit_unresolved(hub_online, arcforge_home, tmp_path):
    v1 = _heavy_files(6)
    mirror = _hf_mirror(tmp_path / "mirror", HEAVY, v1)
    m = load_manifests()[HEAVY]
    [r] = fetch.fetch_sources([m], mirror=mirror)
    assert (r.status, r.commit, r.revision, r.recorded_pin) == ("fetched", None, "main", True), r.error
    assert r.path.name == "unresolved-" + r.digest.removeprefix("sha256:")[:16]
    assert hub_online.requests == []  # the mirror is all there is: the Hub is not asked
    entry = tomllib.loads(lock.home_lock_path().read_text())[HEAVY]
    assert (entry["revision"], entry["commit"]) == ("main", "") and len(entry["sha256"]) == 3
    assert f"{m.repo}@main (commit unresolved: fetched from a mirror)" in _table_line(HEAVY)
    assert [x.status for x in fetch.fetch_sources([m], mirror=mirror)] == ["cached"]

    _built_unresolved(arcforge_home / "out", m, r.digest)
    _locked_later_from_the_hub(hub_online, m, r, v1)


def _built_unresolved(out, m, digest: str) -> None:
    build(out, sources=[HEAVY])
    [prov] = json.loads((out / "provenance.json").read_text())["sources"]
    assert (prov["commit"], prov["revision"], prov["digest"]) == ("unresolved", "main", digest)
    assert f"{m.repo}@main (commit unresolved: fetched from a mirror)" in (out / "README.md").read_text()


def _locked_later_from_the_hub(hub_online, m, r, v1) -> None:
    """With the Hub: a plain fetch keeps the cache and asks nothing; --force resolves the branch, and files
    other than the recorded ones are refused while the same ones lock the commit."""
    _serve(hub_online, HEAVY, C2, _heavy_files(8))
    assert [x.status for x in fetch.fetch_sources([m], retry=FAST)] == ["cached"]
    assert hub_online.requests == []
    [other] = fetch.fetch_sources([m], force=True, retry=FAST)
    assert other.status == "failed" and "pins" in other.error and f"fetch --update {HEAVY}" in other.hint
    assert fetch.cached_path(lock.locked(m)) == r.path  # the cache was left as it was
    _serve(hub_online, HEAVY, C1, v1)
    [hub] = fetch.fetch_sources([m], force=True, retry=FAST)
    assert (hub.status, hub.commit, hub.digest, hub.recorded_pin) == ("fetched", C1, r.digest, True)
    assert tomllib.loads(lock.home_lock_path().read_text())[HEAVY]["commit"] == C1
    assert hub.path.name == C1


def test_update_from_a_mirror_takes_its_files_as_they_are_now(arcforge_home, tmp_path):
    m = load_manifests()[HEAVY]
    mirror = _hf_mirror(tmp_path / "mirror", HEAVY, _heavy_files(6))
    [first] = fetch.fetch_sources([m], mirror=mirror)
    v2 = _heavy_files(8)
    _hf_mirror(mirror, HEAVY, v2)  # the mirror is refreshed
    [same] = fetch.fetch_sources([m], mirror=mirror)
    assert (same.status, same.digest) == ("cached", first.digest)  # the recorded digests hold
    [moved] = fetch.fetch_sources([m], mirror=mirror, update=True)
    assert (moved.status, moved.commit, moved.recorded_pin) == ("fetched", None, True), moved.error
    assert moved.digest != first.digest and lock.find_pin(m).digest == moved.digest
    assert _kept(fetch.cached_path(m)) == _kept_expected(v2)
    assert lock.pins_from_mirror([m], mirror) == []  # locked per user, never in the shipped lock


def test_a_url_mirror_does_not_resolve_a_revision(hub_online, arcforge_home):
    [r] = fetch.fetch_sources([load_manifests()[HEAVY]], mirror="http://127.0.0.1:9")
    assert r.status == "unavailable" and "serves GitHub tarballs" in r.error and hub_online.requests == []


@pytest.mark.parametrize(
    "entry,ok",
    [
        ({"revision": "main", "commit": C1}, True),
        ({"revision": "main", "commit": ""}, True),
        ({"revision": "main", "commit": "main"}, False),
        ({"revision": 3, "commit": C1}, False),
    ],
)
def test_a_locked_revision_holds_a_full_commit_or_none(arcforge_home, entry, ok):
    path = lock.home_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {"repo": "barc0/x", "digest": "sha256:" + "0" * 64, **entry}
    path.write_text(f"[{HEAVY}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items()))
    if ok:
        assert lock.read_lock(path)[HEAVY].revision == "main"
    else:
        with pytest.raises(
            ManifestError, match=r"revision must be a string, and its commit a full 40-hex id"
        ):
            lock.read_lock(path)
