"""Vectorized canonical keys: invariance, discrimination, Arrow slicing, odd inputs."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from arcforge.build import canon
from arcforge.errors import DedupError
from arcforge.grids import apply_symmetry, recolor
from arcforge.task import PAIRS_TYPE, TASK_SCHEMA, Pair, Task, tasks_to_table
from tests.dedup_data import arc_table, load_tasks


def _task(pairs, tid="t/x"):
    return Task(tid, "t", "training", pairs[:-1], pairs[-1:])


def _g(rows):
    return np.asarray(rows, dtype=np.int8)


def test_exact_key_partitions_tasks_like_the_fingerprint(shared_sources):
    table = arc_table(shared_sources)
    ek = canon.exact_keys(table)
    by_fp, by_key = defaultdict(set), defaultdict(set)
    for fp, k in zip(table.column("fingerprint").to_pylist(), ek.key1.tolist(), strict=True):
        by_fp[fp].add(k)
        by_key[k].add(fp)
    assert all(len(v) == 1 for v in by_fp.values()) and all(len(v) == 1 for v in by_key.values())
    assert len(by_key) < table.num_rows  # the real data has exact duplicates (pairs reordered)


def test_keys_are_invariant_under_each_transform(shared_sources):
    tasks = load_tasks(
        shared_sources, "fchollet/ARC-AGI", "data/training/*.json", "arc_agi_1", "training", "data"
    )[:40]
    rng = np.random.default_rng(1)
    out = []
    for t in tasks:
        s, perm = int(rng.integers(1, 8)), rng.permutation(10)
        sym = [Pair(apply_symmetry(p.input, s), apply_symmetry(p.output, s)) for p in t.pairs]
        rec = [Pair(recolor(p.input, perm), recolor(p.output, perm)) for p in sym]
        out += [_task(t.pairs[::-1]), _task(sym), _task(rec)]
    a, b = canon.exact_keys(tasks_to_table(tasks)), canon.exact_keys(tasks_to_table(out))
    assert (a.key1 == b.key1[0::3]).all()  # reordered pairs / roles: exact
    assert (a.key2 == b.key2[1::3]).all() and (a.key3 == b.key3[2::3]).all()
    assert (a.key2 != b.key2[2::3]).sum() >= 35  # a recoloring is not a symmetry (bar symmetric tasks)
    inv_a, inv_b = canon.invariants(tasks_to_table(tasks)), canon.invariants(tasks_to_table(out))
    assert (inv_a.task_inv == inv_b.task_inv[2::3]).all()
    assert len(set(a.key3.tolist())) == 40  # distinct tasks keep distinct keys


def test_color_swap_within_a_pair_is_not_a_recoloring():
    # T: each pair keeps its color; U: the color changes within each pair. Same masks, not equivalent.
    m, n = _g([[1, 0], [0, 0]]), _g([[0, 0], [0, 1]])
    t = _task([Pair(m * 1, n * 1), Pair(m * 2, n * 2)])
    u = _task([Pair(m * 1, n * 2), Pair(m * 2, n * 1)])
    ek = canon.exact_keys(tasks_to_table([t, u]))
    assert ek.key3[0] != ek.key3[1]


def test_batches_and_slices_give_the_same_keys(shared_sources):
    table = arc_table(shared_sources).slice(100, 300)
    whole = canon.invariants(table, batch_size=10_000)
    small = canon.invariants(table, batch_size=7)
    assert np.array_equal(whole.task_inv, small.task_inv)
    assert np.array_equal(whole.pair_task, small.pair_task) and np.array_equal(whole.pair_inv, small.pair_inv)
    a, b = np.lexsort((whole.grid_inv, whole.grid_task)), np.lexsort((small.grid_inv, small.grid_task))
    assert np.array_equal(whole.grid_inv[a], small.grid_inv[b])  # grids come in a per-batch order
    part = canon.exact_keys(table.slice(50, 20))
    assert np.array_equal(part.key3, canon.exact_keys(table).key3[50:70])


def test_hidden_test_output_and_odd_shapes():
    wide = _g([[1, 2, 3, 4, 5, 6, 7, 8, 9] * 10])  # 1 x 90, like 1D-ARC
    t = Task("t/a", "t", "training", [Pair(wide, wide[:, ::-1])], [Pair(wide, None)])
    u = Task("t/b", "t", "training", [Pair(wide, wide[:, ::-1])], [Pair(wide, wide)])
    ek = canon.exact_keys(tasks_to_table([t, u]))
    assert ek.key1[0] != ek.key1[1]
    assert sorted(canon.invariants(tasks_to_table([t, u])).grid_task.tolist()) == [0, 0, 0, 1, 1, 1, 1]


def test_ragged_grid_is_a_clear_error():
    pairs = pa.array([[{"input": [[1, 2], [3]], "output": [[1]]}]], PAIRS_TYPE)
    cols = {f.name: pa.array(["x"]) if f.type == pa.string() else pa.nulls(1, f.type) for f in TASK_SCHEMA}
    table = pa.table({**cols, "train": pairs, "test": pairs}).select(TASK_SCHEMA.names).cast(TASK_SCHEMA)
    with pytest.raises(DedupError, match="not rectangular"):
        canon.invariants(table)
