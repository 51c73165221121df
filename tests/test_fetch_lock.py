"""The digest definition and the lock files that pin it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from arcforge.errors import ManifestError
from arcforge.sources import lock
from arcforge.sources.manifest import load_manifests

UNPINNED = "sequence_arc"  # a shipped manifest whose repo is not in the mirror: no shipped pin


def test_shipped_pins_are_the_digests_of_the_shared_copies(shared_sources, mirrored_names):
    ms = load_manifests()
    pins = lock.read_lock(lock.repo_lock_path())
    assert set(pins) == mirrored_names  # the unmirrored sources have no shipped pin
    assert UNPINNED not in pins
    for name, pin in pins.items():
        m = ms[name]
        assert pin.applies_to(m)
        assert lock.digest_tree(shared_sources / m.owner / m.repo_name, m.files) == (pin.digest, pin.files)
        assert lock.find_pin(m) == pin


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_digest_equals_the_documented_coreutils_pipeline(shared_sources):
    m = load_manifests()["arc_community"]
    root = shared_sources / m.owner / m.repo_name
    cmd = (
        "find . -type f ! -name '.arcforge-*' | sed 's|^\\./||' | LC_ALL=C sort "
        "| xargs -d '\\n' sha256sum | sha256sum"
    )
    out = subprocess.run(cmd, shell=True, cwd=root, capture_output=True, text=True, check=True).stdout
    assert "sha256:" + out.split()[0] == lock.digest_tree(root, m.files)[0]


def test_digest_depends_on_paths_and_contents_not_on_order():
    a = {"x/a.json": "0" * 64, "b.json": "1" * 64}
    assert lock.digest_from_hashes(a) == lock.digest_from_hashes(dict(reversed(a.items())))
    assert lock.digest_from_hashes(a) != lock.digest_from_hashes({"x/c.json": "0" * 64, "b.json": "1" * 64})
    assert lock.digest_from_hashes(a) != lock.digest_from_hashes({"x/a.json": "0" * 64, "b.json": "2" * 64})
    assert lock.digest_from_hashes(a) != lock.digest_from_hashes({"x/a.json": "0" * 64})


def test_record_pin_writes_the_home_lock_only(arcforge_home):
    m = load_manifests()[UNPINNED]
    shipped = lock.repo_lock_path(m).read_bytes()
    path = lock.record_pin(m, "sha256:" + "ab" * 32, 4)
    assert path == arcforge_home / "digests.lock"
    assert lock.find_pin(m).digest == "sha256:" + "ab" * 32 and lock.find_pin(m).files == 4
    assert lock.repo_lock_path(m).read_bytes() == shipped


def test_a_pin_for_another_commit_does_not_apply(arcforge_home):
    m = load_manifests()[UNPINNED]
    lock.write_lock(
        lock.home_lock_path(),
        [lock.Pin(UNPINNED, m.repo, "0" * 40, "sha256:" + "cd" * 32, 1, lock.home_lock_path())],
    )
    assert lock.find_pin(m) is None


def test_broken_lock_file_names_itself(tmp_path):
    bad = tmp_path / "digests.lock"
    bad.write_text("[x]\nrepo = 'a/b'\ncommit = 'c'\n")
    with pytest.raises(ManifestError, match=r"digests\.lock: entry \[x\] needs"):
        lock.read_lock(bad)
    bad.write_text("not = [toml")
    with pytest.raises(ManifestError, match="not a valid lock file"):
        lock.read_lock(bad)
