"""Benchmark and probe set for ``arcforge.build.dedup``.

    python benchmarks/bench_dedup.py speed [--sizes mirrored,100000,1000000]

``speed`` runs each size in a fresh subprocess (so peak RSS is per size): all mirrored sources
(../shared/arc-sources) and generated tasks (10% disguised copies, half of them of reference tasks).
Baselines in the same run: polars' hash of the nested train/test columns (an exact, order-sensitive
pass: it finds none of the reordered copies) and, on the mirrored data, the per-task Python fingerprint
(``Task.fingerprint``). Results go to benchmarks/results/dedup_speed.json. Recall and false positives:
``bench_decon.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
SHARED = HERE.parent.parent / "shared" / "arc-sources"
RESULTS = HERE / "results"
EVAL = {("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation")}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_one(size: str) -> dict:
    """Time one size (in this process)."""
    import polars as pl
    import pyarrow.compute as pc
    from dedup_data import generate, load_mirrored

    from arcforge.build.dedup import run_dedup

    if size == "mirrored":
        table, expected, evals = load_mirrored(SHARED), None, EVAL
    else:
        table, expected = generate(int(size), seed=7)
        evals = {("gen_eval", "evaluation")}
    n = table.num_rows
    cells = int(
        sum(
            pc.sum(
                pc.list_value_length(pc.list_flatten(pc.struct_field(pc.list_flatten(table.column(c)), [k])))
            ).as_py()
            or 0
            for c in ("train", "test")
            for k in (0, 1)
        )
    )
    rss_data = _rss_mb()
    t0 = time.perf_counter()
    r = run_dedup(
        table, eval_splits=evals, exclude_eval=True, priority=("arc_agi_1", "arc_agi_2", "concept_arc", "gen")
    )
    t_dedup = time.perf_counter() - t0
    rss_dedup = _rss_mb()  # peak so far: data + dedup (the baseline below runs after it)
    t0 = time.perf_counter()
    df = pl.from_arrow(table.select(["train", "test"]))
    h = df.select(pl.col("train").hash(), pl.col("test").hash())
    exact_dups = int(h.is_duplicated().sum())
    t_base = time.perf_counter() - t0
    out = {
        "size": size,
        "tasks": n,
        "cells": cells,
        "seconds": round(t_dedup, 2),
        "tasks_per_s": round(n / t_dedup),
        "baseline_polars_hash_s": round(t_base, 2),
        "baseline_exact_dup_rows": exact_dups,
        "ratio_vs_polars_hash": round(t_dedup / t_base, 2),
        "rss_after_data_mb": round(rss_data),
        "peak_rss_dedup_mb": round(rss_dedup),
        "peak_rss_with_baseline_mb": round(_rss_mb()),
        "counts": {k: v for k, v in r.counts.items() if v},
        "expected": expected,
        "load_avg": os.getloadavg()[0],
    }
    if size == "mirrored":
        from arcforge.task import tasks_from_batch

        t0 = time.perf_counter()
        fps = {t.fingerprint for b in table.to_batches(2000) for t in tasks_from_batch(b)}
        out["baseline_python_fingerprint_s"] = round(time.perf_counter() - t0, 2)
        out["python_fingerprint_distinct"] = len(fps)
    return out


def speed(sizes: list[str]) -> list[dict]:
    rows = []
    for size in sizes:
        res = subprocess.run(
            [sys.executable, __file__, "_one", size], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup_speed.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "_one"])
    ap.add_argument("size", nargs="?")
    ap.add_argument("--sizes", default="mirrored,100000,1000000")
    a = ap.parse_args()
    if a.mode == "_one":
        print(json.dumps(speed_one(a.size)))
    else:
        speed(a.sizes.split(","))


if __name__ == "__main__":
    main()
