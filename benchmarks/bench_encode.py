"""Tokenizer throughput: ``arcforge.train.tokenize.encode`` against the same example spelled out part by part.

    python benchmarks/bench_encode.py [--tasks 300] [--repeats 5]

The evaluator encodes every vote transform of every test input, and the trainer (``num_workers`` 0 by
default: in the training process) every example it packs, so encoding sits on both critical paths. In one
run, alternating, best of ``--repeats``, on the demo's synthetic easy tasks and (when ``../shared`` is
there) the ARC-AGI-1 training tasks, training examples (``loss_on="outputs"``) and decoding prompts:

- ``reference``: ``reference_encode`` below, the plain composition of the tokenizer's parts, one grid and
  one pair at a time (``grid_tokens``, ``lookup_table``, ``next_rc``, ``frame_lookups``,
  ``frame_evidence``), which is how ``encode`` worked before; ``tests/test_train_data.py`` checks
  ``encode`` against it, array for array;
- ``encode``: preallocated arrays, each grid size's token layout and frame-image indices cached.

Also the loader alone (shards -> tasks -> augmentation -> tokens -> packed batches of the demo's size),
milliseconds per batch. Results: ``benchmarks/results/encode.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge import synthetic
from arcforge.build import shard_writer
from arcforge.demo.run import DEMO_RUN
from arcforge.grids import Grid
from arcforge.task import Task, parse_task_object, tasks_to_table
from arcforge.train.data import PackedBatches
from arcforge.train.tokenize import (
    BOS,
    EOS,
    GRID_START,
    INPUT,
    N_COLORS,
    OUTPUT,
    encode,
    frame_evidence,
    frame_lookups,
    grid_tokens,
    lookup_table,
    next_rc,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "encode.json"


def reference_encode(
    train: list[tuple[Grid, Grid]], test_in: Grid, test_out: Grid | None, loss_on: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``encode``'s (tokens, positions, targets) spelled out from the tokenizer's parts, one grid and one
    pair at a time (``encode`` as it was before its layouts were cached): tokens and (row, col) from
    ``grid_tokens``, sizes on input cells, lookups into the pair's input table at each token's cell and at
    ``next_rc``, and the frame evidence of earlier pairs."""
    toks, rc5, tgt = [[BOS]], [np.zeros((1, 5), np.int64)], [[False]]
    n = len(train)
    grids = [
        (g, m, t, j)
        for j, (i, o) in enumerate(train)
        for g, m, t in ((i, INPUT, False), (o, OUTPUT, loss_on == "outputs"))
    ] + [(test_in, INPUT, False, n)]
    if test_out is not None:
        grids.append((test_out, OUTPUT, True, n))
    for g, marker, target, pair in grids:
        t, rc = grid_tokens(g)
        hw = np.zeros_like(rc)
        if marker == INPUT:
            hw[t < N_COLORS] = g.shape
        toks += [[marker], t]
        rc5 += [np.array([[0, 0, 0, 0, pair]]), np.concatenate([rc, hw, np.full((len(t), 1), pair)], 1)]
        tgt += [[False], [target] * len(t)]
    tail = [EOS] if test_out is not None else [OUTPUT, GRID_START]
    toks.append(tail)
    rc5.append(np.array([[0, 0, 0, 0, n]] * len(tail)))
    tgt.append([test_out is not None] * len(tail))
    tokens, rc5 = np.concatenate(toks), np.concatenate(rc5)
    tables = [lookup_table(g) for g in [i for i, _ in train] + [test_in]]
    nrc = next_rc(tokens, rc5[:, :2])
    looks = np.zeros((len(tokens), 2 * len(tables[0])), np.int64)
    for p, table in enumerate(tables):  # every token looks into its own pair's input
        at = rc5[:, 4] == p
        looks[at] = frame_lookups(table, rc5[at, :2], nrc[at])
    evidence = frame_evidence(tables[:n], [o for _, o in train])[rc5[:, 4]]
    positions = np.concatenate([np.arange(len(tokens))[:, None], rc5, looks, evidence], 1)
    return tokens, positions, np.concatenate(tgt)


def _cases(tasks: list[Task]) -> list[tuple]:
    out = []
    for t in tasks:
        train = [(p.input, p.output) for p in t.train if p.output is not None]
        pair = t.test[0]
        out.append((train, pair.input, pair.output, "outputs"))  # a training example
        out.append((train, pair.input, None, "test"))  # a decoding prompt
    return out


def _arc1(n: int) -> list[Task]:
    folder = ROOT.parent / "shared" / "arc-sources" / "fchollet" / "ARC-AGI" / "data" / "training"
    out = []
    for f in sorted(folder.glob("*.json"))[:n] if folder.is_dir() else []:
        train, test, _ = parse_task_object(json.loads(f.read_text()))
        out.append(
            Task(
                id=f"arc_agi_1/data/training/{f.stem}",
                source="arc_agi_1",
                split="training",
                train=train,
                test=test,
            )
        )
    return out


def _time(fn, cases: list[tuple]) -> float:
    t0 = time.perf_counter()
    for train, test_in, test_out, loss_on in cases:
        fn(train, test_in, test_out, loss_on=loss_on)
    return time.perf_counter() - t0


def _loader_ms(tmp: Path, tasks: list[Task], batches: int) -> float:
    shard_writer.write_shards(tasks_to_table(tasks), tmp / "data")
    cfg = replace(DEMO_RUN.data, root=str(tmp / "data"))  # the demo's stream
    it = iter(PackedBatches(cfg, num_workers=1))
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - t0) / batches * 1e3


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loader-batches", type=int, default=100)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    fams = synthetic.families(easy_only=True)
    sets = {
        "synthetic easy": _cases(list(synthetic.generate(a.tasks, seed=0, families=fams, difficulty="easy")))
    }
    arc = _arc1(a.tasks)
    if arc:
        sets["ARC-AGI-1 training"] = _cases(arc)
    rows = {}
    for name, cases in sets.items():
        best = {"reference": float("inf"), "encode": float("inf")}
        for _ in range(a.repeats):  # alternating, best of each
            best["reference"] = min(best["reference"], _time(reference_encode, cases))
            best["encode"] = min(best["encode"], _time(encode, cases))
        rows[name] = {
            "examples": len(cases),
            "ms_per_example": {k: round(v / len(cases) * 1e3, 3) for k, v in best.items()},
            "speedup": round(best["reference"] / best["encode"], 2),
        }
    with tempfile.TemporaryDirectory(prefix="bench_encode_") as tmp:
        loader = _loader_ms(
            Path(tmp),
            list(synthetic.generate(2000, seed=0, families=fams, difficulty="easy")),
            a.loader_batches,
        )
    out = {
        "benchmark": "encode",
        "repeats": a.repeats,
        "sets": rows,
        "loader_ms_per_batch": round(loader, 2),
        "loader_batch": "8 packed rows of 384 tokens (the demo's)",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(f".{a.out.name}.tmp")
    tmp_out.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp_out, a.out)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
