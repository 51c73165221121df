"""Folder-mirror fetch of the real sources in ../shared/arc-sources, and the cache it fills."""

from __future__ import annotations

import shutil

import pytest

from arcforge import paths
from arcforge.errors import FetchError
from arcforge.sources import fetch, lock
from arcforge.sources.manifest import glob_match, load_manifests, split_archive_glob


@pytest.fixture()
def big_home(arcforge_home):
    """An ARCFORGE_HOME that will hold every mirrored source (~70 MB, 10k files): removed right after the test
    instead of being left to pytest's tmp_path retention."""
    yield arcforge_home
    shutil.rmtree(arcforge_home, ignore_errors=True)


@pytest.fixture(scope="module")
def ms():
    return load_manifests()


def test_folder_mirror_fetches_the_mirrored_and_names_the_missing(
    big_home, shared_sources, sources_json, ms, mirrored_names
):
    pinned = {n for n, m in ms.items() if lock.find_pin(m)}
    results = {r.name: r for r in fetch.fetch_sources(ms.values(), mirror=shared_sources)}
    listed = {f"{s['owner']}/{s['repo']}": s for s in sources_json}
    fetched = {n for n, r in results.items() if r.status == "fetched"}
    assert fetched == mirrored_names
    for name in fetched:
        m, r = ms[name], results[name]
        assert r.path == paths.source_dir(m.owner, m.repo_name, m.commit, m.kind, m.cache_key)
        assert r.digest == lock.find_pin(m).digest and r.recorded_pin == (name not in pinned)
        kept = [
            f
            for f in (shared_sources / m.repo).rglob("*")
            if f.is_file()
            and any(
                glob_match(f.relative_to(shared_sources / m.repo).as_posix(), split_archive_glob(g)[0])
                for g in m.files
            )
        ]
        assert r.files == len(kept) <= listed[m.repo]["files"]
        assert lock.digest_tree(r.path, m.files) == (r.digest, r.files)
    for name in set(ms) - mirrored_names:
        repo = ms[name].repo
        r = results[name]
        # a repo the mirror lacks, or (neoneye's collection, copied in part) lacks this source's files
        why = "none of the files this source keeps" if repo in listed else f"{repo} is not in the mirror"
        assert r.status == "unavailable" and r.error.startswith(f"{name}: ") and why in r.error, r.error
        assert fetch.cached_path(ms[name]) is None
    assert not any(paths.tmp_dir().iterdir())
    # Second run: everything already valid, nothing copied.
    again = fetch.fetch_sources([ms[n] for n in sorted(fetched)], mirror=shared_sources)
    assert {r.status for r in again} == {"cached"}


def test_tampered_cache_is_not_trusted_and_is_refetched(arcforge_home, shared_sources, ms):
    m = ms["concept_arc"]
    [r] = fetch.fetch_sources([m], mirror=shared_sources)
    victim = r.path / "MinimalTasks" / "CountMinimal.json"
    original = victim.read_bytes()
    victim.write_bytes(original[:-1])
    assert fetch.cached_path(m) == r.path  # the cheap check trusts the marker...
    assert fetch.cached_path(m, verify=True) is None  # ...the full check does not
    [again] = fetch.fetch_sources([m], mirror=shared_sources)
    assert again.status == "fetched" and victim.read_bytes() == original


def test_cache_without_marker_is_not_a_cache(arcforge_home, shared_sources, ms):
    m = ms["neoneye_bad"]
    [r] = fetch.fetch_sources([m], mirror=shared_sources)
    (r.path / fetch.MARKER).unlink()
    assert fetch.cached_path(m) is None
    assert fetch.fetch_sources([m], mirror=shared_sources)[0].status == "fetched"


def test_mirror_from_environment(arcforge_home, shared_sources, ms, monkeypatch):
    monkeypatch.setenv("ARCFORGE_MIRROR", str(shared_sources))
    [r] = fetch.fetch_sources([ms["arc_community"]])
    assert r.status == "fetched" and r.origin == str(shared_sources / "arc-community" / "arc")


def test_missing_mirror_folder_is_an_error(arcforge_home, tmp_path, ms):
    with pytest.raises(FetchError, match=r"mirror folder .*nowhere does not exist"):
        fetch.fetch_sources([ms["arc_community"]], mirror=tmp_path / "nowhere")


def test_mirror_without_matching_files_fails_clearly(arcforge_home, tmp_path, ms):
    (tmp_path / "arc-community" / "arc" / "other").mkdir(parents=True)
    (tmp_path / "arc-community" / "arc" / "other" / "x.txt").write_text("no tasks here")
    [r] = fetch.fetch_sources([ms["arc_community"]], mirror=tmp_path)
    # the mirror has the repo but none of this source's files: unavailable here (as a repo it lacks), named
    assert r.status == "unavailable" and "none of the files this source keeps" in r.error
    assert "levels/npeter/*.json" in r.error and str(tmp_path / "arc-community" / "arc") in r.hint


def test_temp_folders_of_killed_fetches_are_swept_after_a_day(arcforge_home, shared_sources, ms):
    import os
    import time

    old, recent = paths.tmp_dir() / "fetch-arc_1d-dead", paths.tmp_dir() / "fetch-arc_1d-live"
    for d in (old, recent):
        (d / "data").mkdir(parents=True)
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    assert fetch.fetch_sources([ms["neoneye_bad"]], mirror=shared_sources)[0].status == "fetched"
    assert not old.exists() and recent.exists()
