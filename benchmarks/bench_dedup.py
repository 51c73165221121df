"""Benchmark and probe set for ``arcforge.dedup``.

    python benchmarks/bench_dedup.py speed [--sizes mirrored,100000,1000000]
    python benchmarks/bench_dedup.py probe

``speed`` runs each size in a fresh subprocess (so peak RSS is per size): all mirrored sources
(../shared/arc-sources) and generated tasks (10% disguised copies, half of them of reference tasks).
Baselines in the same run: polars' hash of the nested train/test columns (an exact, order-sensitive
pass: it finds none of the reordered copies) and, on the mirrored data, the per-task Python fingerprint
(``Task.fingerprint``). ``probe`` builds a labeled probe set (disguised copies of the real ARC-AGI-1/2
evaluation tasks at each level + clean real and random tasks) and reports precision/recall per level
and a sweep of the near-duplicate threshold. Results go to benchmarks/results/dedup_*.json.
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

import numpy as np

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

    from arcforge.dedup import run_dedup

    if size == "mirrored":
        table, expected, evals = load_mirrored(SHARED), None, EVAL
    else:
        table, expected = generate(int(size), seed=7)
        evals = {("gen_eval", "evaluation")}
    n = table.num_rows
    cells = int(sum(pc.sum(pc.list_value_length(pc.list_flatten(pc.struct_field(
        pc.list_flatten(table.column(c)), [k])))).as_py() or 0 for c in ("train", "test") for k in (0, 1)))
    rss_data = _rss_mb()
    t0 = time.perf_counter()
    r = run_dedup(table, eval_splits=evals, exclude_eval=True,
                  priority=("arc_agi_1", "arc_agi_2", "concept_arc", "gen"))
    t_dedup = time.perf_counter() - t0
    rss_dedup = _rss_mb()  # peak so far: data + dedup (the baseline below runs after it)
    t0 = time.perf_counter()
    df = pl.from_arrow(table.select(["train", "test"]))
    h = df.select(pl.col("train").hash(), pl.col("test").hash())
    exact_dups = int(h.is_duplicated().sum())
    t_base = time.perf_counter() - t0
    out = {
        "size": size, "tasks": n, "cells": cells, "seconds": round(t_dedup, 2), "tasks_per_s": round(n / t_dedup),
        "baseline_polars_hash_s": round(t_base, 2), "baseline_exact_dup_rows": exact_dups,
        "ratio_vs_polars_hash": round(t_dedup / t_base, 2),
        "rss_after_data_mb": round(rss_data), "peak_rss_dedup_mb": round(rss_dedup),
        "peak_rss_with_baseline_mb": round(_rss_mb()),
        "counts": {k: v for k, v in r.counts.items() if v}, "expected": expected,
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
        res = subprocess.run([sys.executable, __file__, "_one", size], capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup_speed.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


# --- probe set -----------------------------------------------------------------------------------------------
def _disguise(task, rng, sym=True, rec=True):
    from arcforge.grids import apply_symmetry, recolor
    from arcforge.task import Pair

    s = int(rng.integers(1, 8)) if sym else 0
    perm = (np.r_[0, 1 + rng.permutation(9)] if rng.random() < 0.5 else rng.permutation(10)) if rec \
        else np.arange(10)
    pairs = [Pair(recolor(apply_symmetry(p.input, s), perm), recolor(apply_symmetry(p.output, s), perm))
             for p in task.pairs]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def _edit(g, rng, k):
    g = g.copy()
    for _ in range(k):
        i, j = rng.integers(0, g.shape[0]), rng.integers(0, g.shape[1])
        g[i, j] = (g[i, j] + 1 + rng.integers(0, 9)) % 10
    return g


def probe_set(seed: int = 0):
    """(tasks, labels): labels are a level name for disguised copies and "clean" for clean tasks."""
    from dedup_data import load_mirrored

    from arcforge.task import Pair, Task, tasks_from_batch

    rng = np.random.default_rng(seed)
    allt = tasks_from_batch(load_mirrored(SHARED))
    refs = [t for t in allt if (t.source, t.split) in EVAL]
    # Clean real tasks: every mirrored non-evaluation source except ARC-AGI-2 training (which holds copies
    # of ARC-1 evaluation) and the two ARC-1 training tasks known to share an evaluation task or pair.
    known = {"arc_agi_1/training/40853293", "arc_agi_1/training/caa06a1f"}
    clean = [t for t in allt if (t.source, t.split) not in EVAL and t.source != "arc_agi_2" and t.id not in known]
    tasks, labels = [], []

    def add(pairs, label, k):
        n_test = int(rng.integers(1, len(pairs)))
        tasks.append(Task(f"probe/{label}/{k}", "probe", "training", pairs[n_test:], pairs[:n_test]))
        labels.append(label)

    for k in range(100):
        src = refs[int(rng.integers(len(refs)))]
        add([src.pairs[i] for i in rng.permutation(len(src.pairs))], "exact", k)
        add(_disguise(src, rng, rec=False), "symmetric", k)
        add(_disguise(src, rng), "recolored", k)
        src3 = [t for t in refs if len(t.pairs) >= 3][int(rng.integers(100))]
        d = _disguise(src3, rng)
        extra = clean[int(rng.integers(len(clean)))].pairs[0]
        add(d[1:] if k % 2 else [*d, extra], "subset", k)
        donor = clean[int(rng.integers(len(clean)))]
        add([*donor.pairs[:3], _disguise(src, rng)[0]], "leaked_pair", k)
        # near duplicate: every pair gets a few cells edited in its output (no pair survives intact)
        near = [Pair(p.input, _edit(p.output, rng, int(rng.integers(1, 4)))) for p in _disguise(src, rng)]
        add(near, "near_duplicate", k)
    for t in clean:
        tasks.append(t)
        labels.append("clean")
    for k in range(500):
        pairs = [Pair(*(rng.integers(0, 10, rng.integers(3, 15, 2)).astype(np.int8) for _ in range(2)))
                 for _ in range(int(rng.integers(3, 6)))]
        add(pairs, "clean", 1000 + k)
    return refs, tasks, labels


def probe() -> dict:
    from arcforge.dedup import LEVELS, NEAR_THRESHOLD, run_dedup
    from arcforge.task import tasks_to_table

    refs, tasks, labels = probe_set()
    table = tasks_to_table([*refs, *tasks])
    r = run_dedup(table, eval_splits=EVAL, exclude_eval=True, near_threshold=0.05)
    got = {x["id"]: (x["level"], x["similarity"]) for x in r.excluded.to_pylist()}
    ids = [t.id for t in tasks]
    res: dict = {"n_reference": len(refs), "n_clean": labels.count("clean"), "levels": {}}
    for lvl in LEVELS:
        pos = [i for i, lab in zip(ids, labels, strict=True) if lab == lvl]
        # as run_dedup would report with its default threshold
        hit = {i for i, (lv, sim) in got.items() if lv != "near_duplicate" or sim >= NEAR_THRESHOLD}
        caught = [i for i in pos if i in hit]
        at_level = [i for i in caught if got[i][0] == lvl]
        flagged = [i for i in ids if i in hit and got[i][0] == lvl]
        fp = [i for i, lab in zip(ids, labels, strict=True) if lab == "clean" and i in hit and got[i][0] == lvl]
        res["levels"][lvl] = {"positives": len(pos), "recall": len(caught) / max(1, len(pos)),
                              "reported_at_this_level": len(at_level) / max(1, len(pos)),
                              "flagged": len(flagged), "false_positives_clean": len(fp),
                              "precision": 1 - len(fp) / max(1, len(flagged))}
    sweep = []
    near_pos = [i for i, lab in zip(ids, labels, strict=True) if lab == "near_duplicate"]
    clean_ids = [i for i, lab in zip(ids, labels, strict=True) if lab == "clean"]
    for th in [*np.round(np.arange(0.1, 0.95, 0.05), 2), 0.33]:
        tp = sum(1 for i in near_pos if i in got and got[i][0] == "near_duplicate" and got[i][1] >= th)
        fp = sum(1 for i in clean_ids if i in got and got[i][0] == "near_duplicate" and got[i][1] >= th)
        sweep.append({"threshold": float(th), "recall": tp / len(near_pos), "false_positives_clean": fp,
                      "precision": tp / max(1, tp + fp)})
    res["near_threshold"] = NEAR_THRESHOLD
    res["near_threshold_sweep"] = sorted(sweep, key=lambda x: x["threshold"])
    res["clean_flagged"] = sorted((i, got[i][0], round(got[i][1], 3)) for i in clean_ids
                                  if i in got and (got[i][0] != "near_duplicate" or got[i][1] >= 0.2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup_probe.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "probe", "_one"])
    ap.add_argument("size", nargs="?")
    ap.add_argument("--sizes", default="mirrored,100000,1000000")
    a = ap.parse_args()
    if a.mode == "_one":
        print(json.dumps(speed_one(a.size)))
    elif a.mode == "speed":
        speed(a.sizes.split(","))
    else:
        print(json.dumps(probe(), indent=2))


if __name__ == "__main__":
    main()
