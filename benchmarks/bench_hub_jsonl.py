"""Parsing a multi-GB Hub JSONL file in BARC's layout: memory independent of the file's size.

The benchmark writes a JSONL file of ``--gb`` GB in BARC's layout (one problem per line: ``examples`` of
4-5 [input, output] pairs of grids 3x3 to 30x30, ``seeds``, ``uid`` and a ~2 kB ``source`` program, as in
barc0/*) into a temporary folder, deletes it afterwards, and measures, each in a fresh interpreter:

- ``arcforge``: the ``barc_jsonl`` format plug-in reading the file as a stream (every line decoded with
  msgspec, every grid validated into a task), as the build's workers call it;
- ``bare msgspec``: the baseline, ``for line in file: msgspec.json.decode(line)`` (no validation, no tasks).

Peak memory is the process's peak RSS (``ru_maxrss``) after parsing minus its peak RSS before parsing
(modules imported, the file not yet opened): the memory the parse itself added.

Usage: python benchmarks/bench_hub_jsonl.py [--gb 3] [--tmp DIR]   -> benchmarks/results/hub_jsonl.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "hub_jsonl.json"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[3])
import msgspec
from arcforge.formats import Member, RawTask, get
path, mode = sys.argv[1], sys.argv[2]
fmt = get("barc_jsonl")
def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = rss_kb()
t0 = time.perf_counter()
tasks = rejected = 0
if mode == "arcforge":
    member = Member(path, lambda: open(path, "rb").read(), open=lambda: open(path, "rb"))
    for item in fmt.read(member, {}):
        if isinstance(item, RawTask):
            tasks += 1
        else:
            rejected += 1
else:
    dec = msgspec.json.Decoder()
    with open(path, "rb") as f:
        for line in f:
            dec.decode(line)
            tasks += 1
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "base_rss_kb": base, "peak_rss_kb": rss_kb(), "records": tasks,
                  "rejected": rejected}))
"""


def _grid(rng: np.random.Generator) -> list:
    h, w = (int(x) for x in rng.integers(3, 31, size=2))
    return rng.integers(0, 10, size=(h, w)).tolist()


def _pool(n: int = 512) -> list[bytes]:
    """``n`` distinct problem lines (as bytes, without the uid): the file cycles through them."""
    rng = np.random.default_rng(0)
    source = "from common import *\n\n" + "".join(
        f"def step_{i}(grid):\n    return grid[::-1]\n" for i in range(60)
    )
    out = []
    for i in range(n):
        examples = [
            [g, np.flipud(np.array(g)).tolist()] for g in (_grid(rng) for _ in range(int(rng.integers(4, 6))))
        ]
        body = json.dumps(
            {"examples": examples, "seeds": [f"{i % 160:08x}.py"], "source": source}, separators=(",", ":")
        )
        out.append(body[1:].encode())  # without the opening brace: '{"uid":...,' is put in front
    return out


def write_file(path: Path, target_bytes: int) -> tuple[int, int]:
    pool = _pool()
    written = lines = 0
    with open(path, "wb", buffering=1 << 22) as f:
        while written < target_bytes:
            line = b'{"uid":"p%09d",' % lines + pool[lines % len(pool)] + b"\n"
            f.write(line)
            written += len(line)
            lines += 1
    return written, lines


def run(path: Path, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode, str(ROOT)], check=True, capture_output=True, text=True
    )
    r = json.loads(out.stdout)
    r["extra_peak_mb"] = round((r["peak_rss_kb"] - r["base_rss_kb"]) / 1024, 1)
    return r


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: the temp folder is still removed
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=float, default=3.0)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    target = int(args.gb * 1e9)
    folder = Path(tempfile.mkdtemp(prefix="bench-hub-jsonl-", dir=args.tmp))
    try:
        free = shutil.disk_usage(folder).free
        if free < target * 1.2:
            raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, not enough for a {args.gb} GB file")
        path = folder / "data_100k.jsonl"
        t0 = time.perf_counter()
        size, lines = write_file(path, target)
        write_s = time.perf_counter() - t0
        bare = run(path, "bare")
        ours = run(path, "arcforge")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mb = size / 1e6
    result = {
        "file": {
            "bytes": size,
            "gb": round(size / 1e9, 3),
            "lines": lines,
            "layout": "BARC JSONL (examples, seeds, uid, source), grids 3x3-30x30, 4-5 pairs",
            "write_s": round(write_s, 1),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "threads": 1,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "arcforge_barc_jsonl": {
            "seconds": round(ours["seconds"], 1),
            "mb_per_s": round(mb / ours["seconds"], 1),
            "tasks": ours["records"],
            "rejected": ours["rejected"],
            "extra_peak_rss_mb": ours["extra_peak_mb"],
        },
        "bare_msgspec_lines": {
            "seconds": round(bare["seconds"], 1),
            "mb_per_s": round(mb / bare["seconds"], 1),
            "records": bare["records"],
            "extra_peak_rss_mb": bare["extra_peak_mb"],
        },
        "throughput_vs_bare": round(bare["seconds"] / ours["seconds"], 3),
        "memory_goal_mb": 1024,
        "memory_goal_met": ours["extra_peak_mb"] <= 1024,
    }
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
