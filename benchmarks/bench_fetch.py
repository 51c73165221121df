"""Fetch benchmarks (plain script): arcforge's fetch paths against naive baselines in the same run.

1. HTTP tarball (neoneye_tama: 5002 files, ~24 MB raw) served from loopback, GitHub URL layout:
   arcforge's streaming fetch (verify + atomic place) vs. read-whole-body + ``tarfile.extractall``.
   Wall time and peak Python heap (tracemalloc, separate runs).
2. Folder mirror, all 11 sources: ``fetch_sources(mirror=...)`` (copy + hash + verify) vs.
``shutil.copytree``.
3. Re-run on a valid cache (full re-hash) and the cheap ``cached_path`` check, vs. the first fetch.

Usage: python benchmarks/bench_fetch.py [--shared ../shared/arc-sources]
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arcforge.sources import fetch
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_heap(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def make_tarball(src: Path, repo: str, commit: str, out: Path) -> None:
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=f"{repo}-{commit}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "arc-sources"
    )
    args = ap.parse_args()
    ms = load_manifests()
    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    os.environ["ARCFORGE_HOME"] = str(work / "home")
    os.environ.pop("ARCFORGE_MIRROR", None)
    rows = []
    try:
        # --- 1. HTTP tarball --------------------------------------------------------------------------------
        m = ms["neoneye_tama"]
        serve_root = work / "www"
        tgz = serve_root / m.owner / m.repo_name / "tar.gz" / m.commit
        tgz.parent.mkdir(parents=True)
        make_tarball(args.shared / m.owner / m.repo_name, m.repo_name, m.commit, tgz)

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(serve_root))
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        os.environ["ARCFORGE_GITHUB_URL"] = base
        os.environ["no_proxy"] = "127.0.0.1"
        url = f"{base}/{m.owner}/{m.repo_name}/tar.gz/{m.commit}"
        retry = RetryPolicy(attempts=1)

        def ours():
            [r] = fetch.fetch_sources([m], force=True, retry=retry)
            assert r.status == "fetched", r.error

        def naive():
            dest = work / "naive"
            shutil.rmtree(dest, ignore_errors=True)
            body = urllib.request.urlopen(url).read()
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                tar.extractall(dest, filter="data")

        t_ours, t_naive = timed(ours), timed(naive)
        h_ours, h_naive = peak_heap(ours), peak_heap(naive)
        size = tgz.stat().st_size
        rows.append(
            (
                "HTTP tarball, neoneye_tama (%.1f MB .tar.gz), wall" % (size / 1e6),
                f"{t_ours:.2f} s",
                f"{t_naive:.2f} s",
                t_ours / t_naive,
            )
        )
        rows.append(
            (
                "  same, peak Python heap",
                f"{h_ours / 1e6:.1f} MB",
                f"{h_naive / 1e6:.1f} MB",
                h_ours / h_naive,
            )
        )
        httpd.shutdown()

        # --- 2. folder mirror, all 11 ----------------------------------------------------------------------
        mirrored = [x for x in ms.values() if (args.shared / x.owner / x.repo_name).is_dir()]

        def ours_mirror():
            rs = fetch.fetch_sources(mirrored, mirror=args.shared, force=True)
            assert all(r.status == "fetched" for r in rs)

        def copytree():
            dest = work / "copy"
            shutil.rmtree(dest, ignore_errors=True)
            for x in mirrored:
                shutil.copytree(args.shared / x.owner / x.repo_name, dest / x.owner / x.repo_name)

        t_mirror, t_copy = timed(ours_mirror), timed(copytree)
        rows.append(
            (
                f"folder mirror, {len(mirrored)} sources (verified)",
                f"{t_mirror:.2f} s",
                f"{t_copy:.2f} s",
                t_mirror / t_copy,
            )
        )

        # --- 3. valid cache ---------------------------------------------------------------------------------
        t_cached = timed(lambda: fetch.fetch_sources(mirrored, mirror=args.shared))
        t_cheap = timed(lambda: [fetch.cached_path(x) for x in mirrored])
        rows.append(
            (
                "re-run on valid cache (full re-hash) vs first fetch",
                f"{t_cached:.2f} s",
                f"{t_mirror:.2f} s",
                t_cached / t_mirror,
            )
        )
        rows.append(
            (
                "cached_path() x11 (marker + pin) vs first fetch",
                f"{t_cheap * 1e3:.1f} ms",
                f"{t_mirror:.2f} s",
                t_cheap / t_mirror,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| measurement | arcforge | baseline | ratio |")
    print("| --- | --- | --- | --- |")
    for name, a, b, ratio in rows:
        print(f"| {name} | {a} | {b} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
