"""The per-task difficulty estimate: each measure in [0, 1], larger for more cells, colors, change."""

from __future__ import annotations

import numpy as np

from arcforge.difficulty import MEASURES, estimate, measures
from arcforge.task import Pair, Task, tasks_to_table


def _g(rows):
    return np.array(rows, dtype=np.int8)


def test_measures_of_small_and_large_tasks():
    tiny = [(_g([[1]]), _g([[1]]))] * 3
    m = measures(tiny)
    assert set(m) == set(MEASURES)
    assert m["size_change"] == 0 and m["change"] == 0 and m["colors"] == 0.1
    assert m["cells"] == 2 / 1800
    rng = np.random.default_rng(0)
    big = [
        (rng.integers(0, 10, (30, 30)).astype(np.int8), rng.integers(0, 10, (20, 30)).astype(np.int8))
        for _ in range(3)
    ]
    b = measures(big)
    assert b["colors"] == 1 and b["size_change"] == 1 and b["change"] == 1
    assert b["cells"] == 1500 / 1800 and 0.3 < b["compressed"] <= 1
    assert estimate(tiny) < 0.2 < 0.8 < estimate(big) <= 1


def test_hidden_test_output_counts_its_input_and_the_column_matches():
    t = Task("s/a", "s", "training", [Pair(_g([[1, 2]]), _g([[2, 1]]))], [Pair(_g([[3, 4]]), None)])
    assert 0 < t.difficulty < 1
    assert abs(tasks_to_table([t])["difficulty"][0].as_py() - t.difficulty) < 1e-6


def _by_the_formula(pairs):
    """docs/curation.md's definition, written out independently of arcforge.difficulty."""
    import zlib

    grids = [g for p in pairs for g in p if g is not None]
    n = len(pairs)
    change = sum(
        1.0 if o is not None and i.shape != o.shape else 0.0 if o is None else float((i != o).mean())
        for i, o in pairs
    )
    blob = b"".join(g.tobytes() for g in grids)
    return {
        "cells": min(1.0, sum(g.size for g in grids) / n / 1800),
        "colors": len(set(np.concatenate([g.ravel() for g in grids]).tolist())) / 10,
        "size_change": sum(o is not None and i.shape != o.shape for i, o in pairs) / n,
        "change": change / n,
        "compressed": min(1.0, (len(zlib.compress(blob, 6)) - len(zlib.compress(b"", 6))) / n / 900),
    }


def test_pair_parts_reused_across_tasks_give_each_task_its_own_measures():
    from arcforge.difficulty import combine, from_measures, pair_parts

    rng = np.random.default_rng(3)
    pool = []
    for i in range(12):
        h, w = rng.integers(1, 12, 2)
        inp = rng.integers(0, 10 if i % 3 else 3, (h, w)).astype(np.int8)
        out = None if i == 5 else (inp.T.copy() if i % 4 == 0 else np.where(inp == 1, 2, inp).astype(np.int8))
        pool.append((inp, out))
    parts = [pair_parts(i, o) for i, o in pool]
    for _ in range(40):  # tasks sharing pairs, as sampled generator tasks do
        idx = rng.choice(len(pool), int(rng.integers(1, 6)), replace=False).tolist()
        pairs = [pool[i] for i in idx]
        m = combine([parts[i] for i in idx])
        assert m == measures(pairs)
        assert from_measures(m) == estimate(pairs)
        ref = _by_the_formula(pairs)
        assert all(abs(m[k] - ref[k]) < 1e-12 for k in MEASURES), (m, ref)
