"""What the reliability checks cost, each against its baseline in the same run (plain script).

1. Shard reading: ``shards.iter_batches`` (opens every file with a schema check and validates every batch:
   nulls, colors 0-9, rectangular non-empty grids) vs. pyarrow's bare ``ParquetFile.iter_batches`` over
   the same files. Ratio = checked / bare.
2. Build cache: a re-build whose sources come from the cache (sha256 of every entry verified first) vs.
   the first build that parsed them. Ratio = cached / parsed; and the verify alone vs. the cached build.
3. Decompression bomb: a ~260 KB gzip that inflates to 256 MiB, refused by ``extract_tar_gz``'s ratio cap,
   vs. inflating it whole (what a size-only limit allows). Ratio = inflate / refuse.

Usage: python benchmarks/bench_reliability.py [--tasks 3000] [--repeat 5]
Writes benchmarks/results/reliability.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq

from arcforge import shards
from arcforge.build.pipeline import build
from arcforge.errors import UnsafeArchiveError
from arcforge.sources import archive, integrity
from arcforge.synthetic import generate
from arcforge.task import task_to_row

RESULTS = Path(__file__).resolve().parent / "results" / "reliability.json"


def _median_pair(a, b, repeat: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, run interleaved so machine noise hits both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def bench_shards(root: Path, repeat: int) -> dict:
    files = [root / i.path for i in shards.list_shards(root)]

    def checked():
        return sum(b.num_rows for b in shards.iter_batches(root))

    def bare():
        return sum(b.num_rows for f in files for b in pq.ParquetFile(f).iter_batches(batch_size=256))

    assert checked() == bare()
    t_checked, t_bare = _median_pair(checked, bare, repeat)
    return {
        "rows": checked(),
        "files": len(files),
        "checked_s": round(t_checked, 4),
        "bare_s": round(t_bare, 4),
        "ratio_checked_over_bare": round(t_checked / t_bare, 3),
    }


def bench_cache(folder: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    build(work / "o1", local=[folder])
    parsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = build(work / "o2", local=[folder])
    cached = time.perf_counter() - t0
    assert stats.cached_sources == [folder.name]
    entries = list((Path(os.environ["ARCFORGE_HOME"]) / "build-cache").glob("*.arrow"))
    t0 = time.perf_counter()
    assert all(integrity.intact(p) for p in entries)
    verify = time.perf_counter() - t0
    return {
        "cache_bytes": sum(p.stat().st_size for p in entries),
        "parsed_build_s": round(parsed, 3),
        "cached_build_s": round(cached, 3),
        "verify_s": round(verify, 4),
        "ratio_cached_over_parsed": round(cached / parsed, 3),
        "verify_share_of_cached_build": round(verify / cached, 3),
    }


def _bomb(inflated: int) -> bytes:
    """A gzip'd tar with one entry of ``inflated`` zero bytes, made in 1 MiB steps."""
    import tarfile

    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    info = tarfile.TarInfo("repo-x/zeros.bin")
    info.size = inflated
    parts = [z.compress(info.tobuf(tarfile.GNU_FORMAT))]
    zero = bytes(1 << 20)
    for _ in range(inflated >> 20):
        parts.append(z.compress(zero))
    parts.append(z.compress(bytes(1024)))
    parts.append(z.flush())
    return b"".join(parts)


def bench_bomb(work: Path, repeat: int) -> dict:
    body = _bomb(1 << 28)

    def refuse():
        try:
            archive.extract_tar_gz(io.BytesIO(body), work / "bomb", lambda rel: False, archive="bomb")
        except UnsafeArchiveError:
            return
        raise AssertionError("the bomb was not refused")

    def inflate():
        d = zlib.decompressobj(31)
        n, data = 0, body
        while data:
            n += len(d.decompress(data, 1 << 20))
            data = d.unconsumed_tail
        assert n >= 1 << 28

    t_refuse, t_inflate = _median_pair(refuse, inflate, repeat)
    return {
        "compressed_bytes": len(body),
        "inflated_bytes": 1 << 28,
        "refuse_s": round(t_refuse, 4),
        "inflate_s": round(t_inflate, 4),
        "ratio_inflate_over_refuse": round(t_inflate / t_refuse, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["ARCFORGE_HOME"] = str(work / "home")
        folder = work / "tasks"
        folder.mkdir()
        for i, task in enumerate(generate(args.tasks, 0)):
            row = task_to_row(task)
            obj = {
                part: [{"input": p["input"], "output": p["output"]} for p in row[part]]
                for part in ("train", "test")
            }
            (folder / f"t{i:05d}.json").write_text(json.dumps(obj))
        result = {
            "tasks": args.tasks,
            "repeat": args.repeat,
            "cpu_count": os.cpu_count(),
            "cache": bench_cache(folder, work),
        }
        result["shard_read"] = bench_shards(work / "o1", args.repeat)
        result["bomb"] = bench_bomb(work, args.repeat)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
