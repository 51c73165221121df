"""``build --local`` of one zip holding N tasks vs. the same N tasks as loose files (the baseline), in the
same run. The zip must cost about what the loose files cost, at every N: no work per chunk that grows
with the archive (opening it, checking every member again).

Usage: python benchmarks/bench_zip_local.py [--tasks 12500 25000 50000] [--workers 1]
Writes benchmarks/results/zip_local.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arcforge.build.pipeline import build

RESULTS = Path(__file__).resolve().parent / "results" / "zip_local.json"


def _task(i: int) -> bytes:
    """A small distinct task (3x3 grids; the cells spell ``i`` so no two tasks are duplicates)."""
    digits = [int(c) for c in f"{i:09d}"]
    grid = [digits[0:3], digits[3:6], digits[6:9]]
    flip = [row[::-1] for row in grid]
    return json.dumps(
        {"train": [{"input": grid, "output": flip}], "test": [{"input": flip, "output": grid}]}
    ).encode()


def _timed_build(local: Path, out: Path, workers: int) -> float:
    t0 = time.perf_counter()
    stats = build(out, local=[local], use_cache=False, workers=workers)
    took = time.perf_counter() - t0
    assert stats.total_tasks > 0
    return took


def run(n: int, workers: int, tmp: Path) -> dict:
    loose, zipped = tmp / f"loose{n}", tmp / f"zipped{n}"
    loose.mkdir()
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "tasks.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            data = _task(i)
            (loose / f"{i:07d}.json").write_bytes(data)
            zf.writestr(f"tasks/{i:07d}.json", data)
    t_loose = _timed_build(loose, tmp / f"out-loose{n}", workers)
    t_zip = _timed_build(zipped, tmp / f"out-zip{n}", workers)
    row = {
        "tasks": n,
        "loose_s": round(t_loose, 2),
        "zip_s": round(t_zip, 2),
        "ratio": round(t_zip / t_loose, 2),
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, nargs="+", default=[12_500, 25_000, 50_000])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        os.environ["ARCFORGE_HOME"] = str(Path(d) / "home")
        rows = [run(n, args.workers, Path(d)) for n in args.tasks]
    RESULTS.write_text(
        json.dumps({"workers": args.workers, "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
