"""Fetch over real HTTP: GitHub-style tarballs built from a tiny hand-made upstream (tests/tiny_upstream.py),
served by a loopback server that stands in for codeload.github.com. Everything from the socket up is the
code that talks to GitHub; no real upstream data is needed."""

from __future__ import annotations

import json
import socket
import tarfile
from pathlib import Path

import pytest
from fetch_server import TarballServer, file_info, github_tarball

from arcforge import paths
from arcforge.sources import fetch, lock
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=10)
SMALL = ("tiny_unknown", "tiny_train", "tiny_eval")


@pytest.fixture(scope="module")
def ms(tiny):
    return tiny.ms


@pytest.fixture(scope="module")
def mirror(tiny):
    return tiny.mirror


def kept(m) -> int:
    return lock.find_pin(m).files


@pytest.fixture()
def server(monkeypatch, arcforge_home):
    with TarballServer() as srv:
        monkeypatch.setenv("ARCFORGE_GITHUB_URL", srv.url)
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield srv


def serve(server, shared, m, plan=None, **kw) -> bytes:
    body = github_tarball(shared / m.owner / m.repo_name, m.repo_name, m.commit, **kw)
    server.add_tarball(m.owner, m.repo_name, m.commit, body, plan)
    return body


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def tmp_is_clean() -> bool:
    return not any(paths.tmp_dir().iterdir())


def test_fetch_keeps_only_manifest_files_and_matches_the_pin(server, mirror, ms):
    m = ms["tiny_unknown"]
    serve(server, mirror, m, extra={"src/tool.py": b"print('not data')\n", "docs/x.md": b"#"})
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "fetched", r.error
    assert r.path == paths.source_dir("tiny-org", "arc-odd", m.commit)
    got = {k: v for k, v in snapshot(r.path).items() if k != fetch.MARKER}
    assert got == snapshot(mirror / "tiny-org" / "arc-odd")  # byte-identical, nothing extra
    assert r.digest == lock.find_pin(m).digest and not r.recorded_pin and r.files == kept(m) == 3
    assert json.loads((r.path / fetch.MARKER).read_text())["commit"] == m.commit
    assert server.count() == 1 and tmp_is_clean()


def test_valid_cache_makes_no_requests_and_force_refetches(server, mirror, ms):
    m = ms["tiny_train"]
    serve(server, mirror, m)
    assert fetch.fetch_sources([m], retry=FAST)[0].status == "fetched"
    assert fetch.cached_path(m) is not None
    again = fetch.fetch_sources([m], retry=FAST)[0]
    assert again.status == "cached" and again.digest == lock.find_pin(m).digest
    assert server.count() == 1
    assert fetch.fetch_sources([m], force=True, retry=FAST)[0].status == "fetched"
    assert server.count() == 2


@pytest.mark.parametrize("drop", ["drop-length", "drop-chunked", "drop-close"])
def test_dropped_connection_mid_body_is_retried(server, mirror, ms, drop):
    m = ms["tiny_unknown"]
    serve(server, mirror, m, plan=[drop])
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "fetched", r.error
    assert r.digest == lock.find_pin(m).digest
    assert server.count() == 2 and tmp_is_clean()


@pytest.mark.parametrize("drop", ["drop-length", "drop-close"])
def test_connection_that_always_drops_never_half_writes_the_cache(server, mirror, ms, drop):
    m, fresh = ms["tiny_unknown"], ms["tiny_train"]
    serve(server, mirror, m)
    first = fetch.fetch_sources([m], retry=FAST)[0]
    before = snapshot(first.path)
    serve(server, mirror, m, plan=[drop] * 3)
    serve(server, mirror, fresh, plan=[drop] * 3)
    r, rf = fetch.fetch_sources([m, fresh], force=True, retry=FAST)
    assert r.status == rf.status == "failed"
    assert "after 3 attempts" in r.error and "--mirror" in r.hint
    assert snapshot(first.path) == before  # old cache intact
    assert not fetch.cache_dir(fresh).exists()  # nothing half-written where there was nothing
    assert tmp_is_clean()


def test_transient_status_codes_are_retried_with_backoff(server, mirror, ms):
    m = ms["tiny_train"]
    serve(server, mirror, m, plan=["503", "429", "502"])
    [r] = fetch.fetch_sources([m], retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))
    assert r.status == "fetched", r.error
    assert server.count() == 4


def test_corrupted_file_is_a_digest_error_and_the_old_cache_stays(server, mirror, ms):
    m = ms["tiny_unknown"]
    serve(server, mirror, m)
    good = fetch.fetch_sources([m], retry=FAST)[0]
    before = snapshot(good.path)
    name = "levels/" + sorted(p.name for p in (mirror / "tiny-org/arc-odd/levels").iterdir())[0]
    tampered = (mirror / "tiny-org/arc-odd" / name).read_bytes() + b" "  # one byte more
    serve(server, mirror, m, replace={name: tampered})
    [r] = fetch.fetch_sources([m], force=True, retry=FAST)
    assert r.status == "failed"
    assert "digest" in r.error and "digests.lock" in r.error and "left as it was" in r.error
    assert snapshot(good.path) == before and fetch.cached_path(m, verify=True) == good.path
    assert server.count() == 2  # a digest mismatch is not retried
    assert tmp_is_clean()


def _hostile(kind: str, top: str) -> tuple[tarfile.TarInfo, bytes, str]:
    """(entry, data, the name the error must mention)."""
    if kind == "absolute":
        return file_info("/tmp/evil.json", 2), b"{}", "/tmp/evil.json"
    if kind == "dotdot":
        return file_info(f"{top}/../../evil.json", 2), b"{}", "../../evil.json"
    if kind == "symlink-out":
        return (
            file_info(f"{top}/levels/evil.json", 0, tarfile.SYMTYPE, linkname="/etc/passwd"),
            b"",
            "evil.json",
        )
    if kind == "symlink-relative-out":
        return file_info(f"{top}/levels/up", 0, tarfile.SYMTYPE, linkname="../../../etc"), b"", "levels/up"
    if kind == "hardlink-out":
        return (
            file_info(f"{top}/levels/hard", 0, tarfile.LNKTYPE, linkname="../../etc/passwd"),
            b"",
            "levels/hard",
        )
    if kind == "symlink-kept":
        return file_info(f"{top}/levels/link.json", 0, tarfile.SYMTYPE, linkname="a.json"), b"", "link.json"
    if kind == "chardev":
        return file_info(f"{top}/dev/null0", 0, tarfile.CHRTYPE, devmajor=1, devminor=3), b"", "dev/null0"
    if kind == "fifo":
        return file_info(f"{top}/pipe", 0, tarfile.FIFOTYPE), b"", "pipe"
    if kind == "huge":  # the header claims 1 TiB; no data follows, it must be refused on the header alone
        return file_info(f"{top}/levels/big.json", 1 << 40), b"", "big.json"
    if kind == "other-top":
        return file_info("elsewhere/x.json", 2), b"{}", "elsewhere/x.json"
    if kind == "duplicate":
        return file_info(f"{top}/README.md", 2), b"{}", "README.md"
    raise AssertionError(kind)


HOSTILE = [
    "absolute",
    "dotdot",
    "symlink-out",
    "symlink-relative-out",
    "hardlink-out",
    "symlink-kept",
    "chardev",
    "fifo",
    "huge",
    "other-top",
    "duplicate",
]


@pytest.mark.parametrize("kind", HOSTILE)
def test_malicious_tarball_is_refused_naming_the_entry(server, mirror, ms, kind):
    m = ms["tiny_unknown"]
    info, data, needle = _hostile(kind, f"{m.repo_name}-{m.commit}")
    serve(server, mirror, m, raw_entries=[(info, data)])
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "failed"
    assert needle in r.error, r.error
    assert not fetch.cache_dir(m).exists() and tmp_is_clean()
    assert server.count() == 1  # refused, not retried
    assert not Path("/tmp/evil.json").exists()


def test_link_inside_the_tree_outside_the_kept_files_is_ignored(server, mirror, ms):
    m = ms["tiny_unknown"]
    link = file_info(
        f"{m.repo_name}-{m.commit}/docs/readme-link", 0, tarfile.SYMTYPE, linkname="../README.md"
    )
    serve(server, mirror, m, raw_entries=[(link, b"")])
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "fetched", r.error
    assert not (r.path / "docs").exists()


def test_unreachable_github_is_a_clear_error_suggesting_a_mirror(monkeypatch, arcforge_home, ms):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ARCFORGE_GITHUB_URL", f"http://127.0.0.1:{port}")
    [r] = fetch.fetch_sources([ms["tiny_unknown"]], retry=RetryPolicy(attempts=2, base_delay=0.01))
    assert r.status == "failed"
    assert f"cannot reach 127.0.0.1:{port}" in r.error and "after 2 attempts" in r.error
    assert "--mirror" in r.hint and "ARCFORGE_MIRROR" in r.hint
    assert not fetch.cache_dir(ms["tiny_unknown"]).exists()


def test_http_mirror_serves_in_github_layout_and_names_missing_sources(monkeypatch, server, mirror, ms):
    monkeypatch.setenv("ARCFORGE_GITHUB_URL", "http://127.0.0.1:9")  # GitHub must not be needed
    serve(server, mirror, ms["tiny_eval"], plan=["ok-chunked"])
    ok, missing = fetch.fetch_sources(
        [ms["tiny_eval"], ms["tiny_train"]], mirror=server.url + "/", retry=FAST
    )
    assert (
        ok.status == "fetched" and ok.origin.startswith(server.url) and ok.files == kept(ms["tiny_eval"]) == 6
    )
    assert missing.status == "unavailable"
    assert missing.error.startswith("tiny_train:") and "HTTP 404" in missing.error


class RecordingProgress:
    """A Progress sink that remembers what it was told (the protocol's other implementation)."""

    def __init__(self):
        self.started, self.advanced, self.finished = {}, {}, set()

    def start(self, key, description, total=None, *, unit="items"):
        self.started[key] = unit

    def advance(self, key, amount=1):
        self.advanced[key] = self.advanced.get(key, 0) + amount

    def update(self, key, *, completed=None, total=None):
        if completed == 0:
            self.advanced[key] = 0

    def finish(self, key):
        self.finished.add(key)


def test_several_sources_in_parallel_report_bytes(server, mirror, ms):
    chosen = [ms[n] for n in SMALL]
    bodies = {m.name: serve(server, mirror, m) for m in chosen}
    prog = RecordingProgress()
    results = fetch.fetch_sources(chosen, progress=prog, workers=3, retry=FAST)
    assert [r.name for r in results] == list(SMALL) and all(r.status == "fetched" for r in results)
    assert prog.started == dict.fromkeys(SMALL, "bytes") and prog.finished == set(SMALL)
    assert prog.advanced == {n: len(b) for n, b in bodies.items()}


def test_unpinned_source_records_its_digest_then_enforces_it(server, mirror, tmp_path):
    m = load_manifests()["sequence_arc"]  # the shipped manifest: no pin in the shipped lock
    assert lock.find_pin(m) is None
    # A small stand-in for Sequence_ARC: one of the tiny upstream's evaluation tasks.
    ev = sorted((mirror / "tiny-org/arc-eval/data/evaluation").glob("*.json"))[:2]
    src = tmp_path / "Sequence_ARC" / "data" / "evaluation"
    src.mkdir(parents=True)
    (src / "a.json").write_text(ev[0].read_text())
    body = github_tarball(tmp_path / "Sequence_ARC", "Sequence_ARC", m.commit)
    server.add_tarball("seedling123", "Sequence_ARC", m.commit, body)
    [r] = fetch.fetch_sources([m], retry=FAST)
    assert r.status == "fetched" and r.recorded_pin and r.files == 1
    assert r.pin_path == lock.home_lock_path()
    assert lock.find_pin(m).digest == r.digest
    assert "sequence_arc" not in lock.read_lock(lock.repo_lock_path(m))  # the shipped lock is never written
    # Upstream now serves something else for the same commit: refused against the recorded pin.
    (src / "a.json").write_text(ev[1].read_text())
    server.add_tarball(
        "seedling123",
        "Sequence_ARC",
        m.commit,
        github_tarball(tmp_path / "Sequence_ARC", "Sequence_ARC", m.commit),
    )
    [again] = fetch.fetch_sources([m], force=True, retry=FAST)
    assert again.status == "failed" and str(lock.home_lock_path()) in again.error
    assert fetch.cached_path(m, verify=True) == r.path
