"""Hub sources (the ``hub`` kind): fetched from a loopback Hub (the network boundary) with the real
huggingface_hub, or from a folder mirror at ``hf/<org>/<name>/``; each file checked against its sha256 pin;
then built with the upstream formats (BARC JSONL, simon-arc JSONL with run-length grids, Parquet copies)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hub_server import HubServer
from upstream_formats import arc_parquet, barc_jsonl, simon_jsonl, simon_line

import arcforge.hub.download  # noqa: F401  (registers the Hub client, as `arcforge fetch` does)
from arcforge import paths
from arcforge.build.pipeline import build
from arcforge.shards import read_table
from arcforge.sources import fetch, hub_fetch, lock
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests

BARC, SIMON, PARQUET = "barc_100k_gpt4", "simon_arc_solve_color", "arc_agi_1_parquet"
FAST = RetryPolicy(attempts=3, base_delay=0.0, timeout=5.0, deadline=60.0)


def _upstream_files() -> dict[str, dict[str, bytes]]:
    bad_rle = dict(simon_line(7), input=simon_line(7)["input"].replace("I0\n4 3 ", "I0\n5 3 ", 1))
    return {
        BARC: {
            "100k-gpt4-description-gpt4omini-code_generated_problems.jsonl": barc_jsonl(
                6,
                bad_lines={
                    2: "{not json",
                    4: json.dumps({"uid": "x", "examples": [[[[1]], [[12]]], [[[1]], [[1]]]]}),
                },
            ),
            "README.md": b"---\nlicense: mit\n---\n",
            ".gitattributes": b"*.jsonl filter=lfs\n",
        },
        SIMON: {
            "data.jsonl": simon_jsonl(
                5, broken={1: bad_rle, 3: {"instruction": "histogram", "input": "0:12"}}
            ),
            "README.md": b"---\nlicense: mit\n---\n",
        },
        PARQUET: {
            "data/training-00000-of-00001.parquet": arc_parquet(4, "a"),
            "data/evaluation-00000-of-00001.parquet": arc_parquet(2, "e"),
            "README.md": b"# arc-agi\n",
        },
    }


def _serve(hub: HubServer) -> dict:
    ms = load_manifests()
    files = _upstream_files()
    for name, fs in files.items():
        hub.add(ms[name].repo, ms[name].commit, fs)
    return ms


def test_hub_sources_fetch_pin_and_build(hub_online, arcforge_home):
    ms = _serve(hub_online)
    results = {r.name: r for r in fetch.fetch_sources([ms[n] for n in (BARC, SIMON, PARQUET)], retry=FAST)}
    assert {r.status for r in results.values()} == {"fetched"}, [r.error for r in results.values()]
    barc = results[BARC]
    m = ms[BARC]
    assert barc.path == paths.sources_dir() / "hf" / "barc0" / m.repo_name / m.commit
    kept = sorted(
        p.relative_to(barc.path).as_posix()
        for p in barc.path.rglob("*")
        if p.is_file() and not p.name.startswith(".arcforge")
    )
    assert kept == [
        "100k-gpt4-description-gpt4omini-code_generated_problems.jsonl",
        "README.md",
    ]  # not .gitattributes
    pin = lock.find_pin(m)  # recorded on first fetch, with each file's sha256
    assert pin is not None and pin.lock_path == lock.home_lock_path() and pin.digest == barc.digest
    assert set(pin.sha256) == set(kept) and pin.sha256["README.md"] == lock.sha256_of(barc.path / "README.md")
    assert tomllib.loads(lock.home_lock_path().read_text())[BARC]["sha256"] == dict(pin.sha256)
    # a second fetch trusts the verified cache
    assert {r.status for r in fetch.fetch_sources([m], retry=FAST)} == {"cached"}

    stats = build(arcforge_home / "out", sources=[BARC, SIMON, PARQUET])
    assert stats.tasks == {
        BARC: {"training": 6},
        SIMON: {"training": 5},
        PARQUET: {"evaluation": 2, "training": 4},
    }
    assert stats.quarantined == {"bad_rle": 1, "bad_structure": 1, "bad_value": 1, "invalid_json": 1}
    table = read_table(arcforge_home / "out")
    ids = table["id"].to_pylist()
    assert f"{BARC}/100k-gpt4-description-gpt4omini-code_generated_problems/p00000" in ids
    assert f"{SIMON}/data/l00000001" in ids and f"{PARQUET}/training-00000-of-00001/a0000" in ids
    q = [
        json.loads(line)
        for line in (arcforge_home / "out" / "reports" / "quarantine.jsonl").read_text().splitlines()
    ]
    rle = [r for r in q if r["reason"] == "bad_rle"]
    assert rle and rle[0]["source"] == SIMON and "line 2: I0:" in rle[0]["detail"]


class Recorder:
    """A ``Progress`` that keeps what it was told."""

    def __init__(self) -> None:
        self.totals: dict[str, float | None] = {}
        self.done: dict[str, float] = {}

    def start(self, key, description, total=None, *, unit="items"):
        self.totals[key], self.done[key] = total, 0

    def advance(self, key, amount=1):
        self.done[key] += amount

    def update(self, key, *, completed=None, total=None):
        self.totals[key] = total if total is not None else self.totals[key]
        self.done[key] = completed if completed is not None else self.done[key]

    def finish(self, key):
        pass


def test_download_progress_counts_the_bytes_as_they_arrive(hub_online, arcforge_home):
    ms = _serve(hub_online)
    rec = Recorder()
    [r] = fetch.fetch_sources([ms[PARQUET]], retry=FAST, progress=rec)
    assert r.status == "fetched"
    size = sum(len(d) for d in _upstream_files()[PARQUET].values())
    assert rec.totals[PARQUET] == rec.done[PARQUET] == size


def test_a_download_cut_off_resumes_with_a_range_request(hub_online, arcforge_home):
    ms = load_manifests()
    name = "100k-gpt4-description-gpt4omini-code_generated_problems.jsonl"
    big = (
        barc_jsonl(40) * 4000
    )  # ~24 MB: huggingface_hub writes in 10 MB chunks, so half of it reaches the disk
    hub_online.add(ms[BARC].repo, ms[BARC].commit, {name: big})
    hub_online.plans[name] = ["drop"]
    [r] = fetch.fetch_sources([ms[BARC]], retry=FAST)
    assert r.status == "fetched", r.error
    gets = hub_online.gets(name)
    assert len(gets) == 2 and " bytes=" not in gets[0] and " bytes=" in gets[1]  # the rest only, then
    assert int(gets[1].rsplit("bytes=", 1)[1].rstrip("-")) >= 10 << 20
    assert (r.path / name).read_bytes() == big


def test_a_file_that_differs_from_its_pin_is_named_and_never_cached(hub_online, arcforge_home, tmp_path):
    ms = _serve(hub_online)
    m = ms[SIMON]
    good = lock.digest_from_hashes({"README.md": "0" * 64, "data.jsonl": "1" * 64})
    lock.write_lock(
        lock.home_lock_path(),
        [
            lock.Pin(
                SIMON,
                m.repo,
                m.commit,
                good,
                2,
                lock.home_lock_path(),
                0,
                {"README.md": "0" * 64, "data.jsonl": "1" * 64},
            )
        ],
    )
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "failed" and "README.md from" in r.error and "pins " + "0" * 64 in r.error
    assert fetch.cached_path(m) is None and not any(paths.tmp_dir().iterdir())


def test_the_deadline_ends_a_stalled_download(hub_online, arcforge_home):
    ms = _serve(hub_online)
    hub_online.plans["data.jsonl"] = ["stall"] * 5
    policy = RetryPolicy(attempts=2, base_delay=0.0, timeout=30.0, deadline=2.0)
    [r] = fetch.fetch_sources([ms[SIMON]], retry=policy)
    assert r.status == "failed" and "deadline" in r.error and "ARCFORGE_FETCH_DEADLINE" in r.hint


def test_a_server_error_is_retried_and_a_refusal_is_one_clear_line(hub_online, arcforge_home):
    ms = _serve(hub_online)
    hub_online.plans["data.jsonl"] = ["503"]  # transient: tried again
    [r] = fetch.fetch_sources([ms[SIMON]], retry=FAST)
    assert r.status == "fetched", r.error
    hub_online.plans["data/evaluation-00000-of-00001.parquet"] = ["403"] * 9  # refused: one clear line
    [r] = fetch.fetch_sources([ms[PARQUET]], retry=FAST)
    assert r.status == "failed" and "the Hub refused" in r.error and "evaluation-00000-of-00001" in r.error
    assert len(hub_online.gets("/data/evaluation-00000-of-00001.parquet")) == 1  # not retried
    assert fetch.cached_path(ms[PARQUET]) is None and not any(paths.tmp_dir().iterdir())


def test_unknown_revision_is_unavailable(hub_online, arcforge_home):
    ms = load_manifests()
    hub_online.add(ms[SIMON].repo, "f" * 40, _upstream_files()[SIMON])  # the repo, at another commit only
    [r] = fetch.fetch_sources([ms[SIMON]], retry=FAST)
    assert r.status == "unavailable" and ms[SIMON].commit in r.error


def _hf_mirror(root: Path) -> Path:
    ms = load_manifests()
    for name, files in _upstream_files().items():
        for rel, data in files.items():
            p = root / "hf" / ms[name].owner / ms[name].repo_name / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return root


def test_folder_mirror_serves_hub_sources_without_the_network(arcforge_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_HUB_URL", "http://127.0.0.1:9")  # the Hub must not be needed
    mirror = _hf_mirror(tmp_path / "mirror")
    ms = load_manifests()
    results = {
        r.name: r
        for r in fetch.fetch_sources([ms[BARC], ms[SIMON], ms["barc_100k_gpt4omini"]], mirror=mirror)
    }
    assert results[BARC].status == results[SIMON].status == "fetched"
    assert results[BARC].origin == str(mirror / "hf" / "barc0" / ms[BARC].repo_name)
    other = results["barc_100k_gpt4omini"]  # not in this mirror: unavailable, with where it was looked for
    assert other.status == "unavailable" and "is not in the mirror" in other.error
    assert str(mirror / "hf" / "barc0") in other.hint


def test_url_mirror_does_not_serve_hub_sources(arcforge_home):
    [r] = fetch.fetch_sources([load_manifests()[SIMON]], mirror="http://127.0.0.1:9")
    assert r.status == "unavailable" and "serves GitHub tarballs" in r.error


def test_hub_manifests_pin_a_full_commit_or_a_revision_locked_on_fetch():
    hub = [m for m in load_manifests().values() if m.kind == "hub"]
    assert {m.name for m in hub} >= {BARC, "barc_100k_gpt4omini", SIMON, PARQUET}
    for m in hub:
        assert m.settings == {"repo_type": "dataset"} and m.tasks
        assert (len(m.commit), m.revision) == (40, "") or (m.commit, m.revision) == ("", "main")


def test_without_a_hub_client_the_error_says_what_to_do(arcforge_home, monkeypatch):
    monkeypatch.setattr(hub_fetch, "_client", None)  # the sources stage alone: arcforge.hub never imported
    [r] = fetch.fetch_sources([load_manifests()[SIMON]], retry=FAST)
    assert r.status == "failed" and "no Hub client is registered" in r.error
    assert "import arcforge.hub.download" in r.hint


@pytest.mark.parametrize("workers", [1, 2])
def test_a_big_jsonl_file_read_in_parts_gives_the_same_build(arcforge_home, monkeypatch, workers):
    from arcforge.build import ingest

    m = load_manifests()[BARC]
    root = paths.source_dir(m.owner, m.repo_name, m.commit, m.kind)
    root.mkdir(parents=True)
    name = "100k-gpt4-description-gpt4omini-code_generated_problems.jsonl"
    (root / name).write_bytes(barc_jsonl(40, bad_lines={5: "{oops", 17: "[]", 30: ""}))
    whole = build(arcforge_home / "whole", sources=[BARC], use_cache=False, workers=1)
    monkeypatch.setattr(ingest, "PART_BYTES", 1500)  # ~10 parts, cut at line starts
    parts = build(arcforge_home / "parts", sources=[BARC], use_cache=False, workers=workers)
    assert parts.tasks == whole.tasks == {BARC: {"training": 40}}
    assert parts.quarantined == whole.quarantined == {"bad_structure": 1, "invalid_json": 1}
    assert read_table(arcforge_home / "parts").equals(read_table(arcforge_home / "whole"))
    q = [(arcforge_home / d / "reports" / "quarantine.jsonl").read_text() for d in ("whole", "parts")]
    assert q[0] == q[1] and "l00000006: line 6: not valid JSON" in q[0]  # lines count from the file's start
