"""Property tests: disguised copies of real evaluation tasks are excluded at the right level."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcforge.build.dedup import LEVELS, NEAR_THRESHOLD, run_dedup
from arcforge.grids import apply_symmetry, recolor
from arcforge.task import Pair, Task, tasks_to_table
from tests.dedup_data import load_tasks

EVAL = {("arc_agi_1", "evaluation")}
N_REF = 60


@pytest.fixture(scope="session")
def eval_tasks(shared_sources) -> list[Task]:
    return load_tasks(
        shared_sources, "fchollet/ARC-AGI", "data/evaluation/*.json", "arc_agi_1", "evaluation", "data"
    )[:N_REF]


@pytest.fixture(scope="session")
def eval_table(eval_tasks) -> pa.Table:
    return tasks_to_table(eval_tasks)


def _run(eval_table: pa.Table, tasks: list[Task]):
    table = pa.concat_tables([eval_table, tasks_to_table(tasks)])
    return run_dedup(table, eval_splits=EVAL, exclude_eval=True)


def _perm(rng: np.random.Generator, fix_zero: bool) -> np.ndarray:
    if fix_zero:
        return np.r_[0, 1 + rng.permutation(9)]
    return rng.permutation(10)


def _random_grid(rng: np.random.Generator) -> np.ndarray:
    h, w = rng.integers(3, 12, 2)
    g = rng.integers(0, 10, (h, w)).astype(np.int8)
    g[rng.random((h, w)) < 0.5] = 0
    return g


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    idx=st.integers(0, N_REF - 1),
    sym=st.integers(0, 7),
    recolor_mode=st.sampled_from(["none", "zero", "any"]),
    seed=st.integers(0, 2**32 - 1),
    change=st.sampled_from(["none", "drop", "add"]),
)
def test_disguised_copy_is_excluded_at_its_level(
    eval_table, eval_tasks, idx, sym, recolor_mode, seed, change
):
    rng = np.random.default_rng(seed)
    src = eval_tasks[idx]
    perm = np.arange(10) if recolor_mode == "none" else _perm(rng, recolor_mode == "zero")

    def f(g):
        return recolor(apply_symmetry(g, sym), perm)

    pairs = [Pair(f(p.input), f(p.output)) for p in src.pairs]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]  # shuffle; roles are re-assigned below
    if change == "drop" and len(pairs) >= 3:
        pairs = pairs[1:]
    elif change == "add":
        pairs.insert(int(rng.integers(0, len(pairs) + 1)), Pair(_random_grid(rng), _random_grid(rng)))
    else:
        change = "none"
    n_test = int(rng.integers(1, len(pairs)))  # any split: train/test roles do not matter
    copy = Task("disguised/x", "disguised", "training", pairs[n_test:], pairs[:n_test])
    r = _run(eval_table, [copy])
    rows = r.excluded.to_pylist()
    assert len(rows) == 1, f"copy of {src.id} (sym={sym}, recolor={recolor_mode}, {change}) not excluded"
    row = rows[0]
    if change != "none":
        expected = "subset"
    elif recolor_mode != "none" and not np.array_equal(perm, np.arange(10)):
        expected = "recolored"
    else:
        expected = "symmetric" if sym else "exact"
    # The first level that applies is reported: a transform can happen to be a no-op on this task.
    assert LEVELS.index(row["level"]) <= LEVELS.index(expected)
    assert src.id in row["eval_ids"]
    assert r.table.num_rows == N_REF  # only the copy was removed; every evaluation row stays


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n_pairs=st.integers(2, 5))
def test_random_unrelated_tasks_are_kept(eval_table, seed, n_pairs):
    rng = np.random.default_rng(seed)
    tasks = []
    for k in range(3):
        pairs = [Pair(_random_grid(rng), _random_grid(rng)) for _ in range(n_pairs)]
        tasks.append(Task(f"random/{k}", "random", "training", pairs[:-1], pairs[-1:]))
    r = _run(eval_table, tasks)
    assert r.excluded.num_rows == 0 and r.duplicates.num_rows == 0
    assert r.table.num_rows == N_REF + 3


@SETTINGS
@given(idx=st.integers(0, N_REF - 1), seed=st.integers(0, 2**32 - 1))
def test_one_leaked_pair_is_found(eval_table, eval_tasks, idx, seed):
    rng = np.random.default_rng(seed)
    src = eval_tasks[idx]
    leaked = src.pairs[int(rng.integers(0, len(src.pairs)))]
    sym, perm = int(rng.integers(0, 8)), rng.permutation(10)
    p = Pair(
        recolor(apply_symmetry(leaked.input, sym), perm), recolor(apply_symmetry(leaked.output, sym), perm)
    )
    others = [Pair(_random_grid(rng), _random_grid(rng)) for _ in range(3)]
    r = _run(eval_table, [Task("leak/x", "leak", "training", [*others, p], [others[0]])])
    rows = r.excluded.to_pylist() + r.reported.to_pylist()
    mine = [x for x in rows if x["id"] == "leak/x"]
    assert mine and mine[0]["level"] == "leaked_pair" and src.id in mine[0]["eval_ids"]


def test_edited_outputs_are_a_near_duplicate_and_tiny_leaks_are_only_reported(eval_table, eval_tasks):
    rng = np.random.default_rng(3)
    src = next(t for t in eval_tasks if len(t.pairs) >= 4 and min(p.input.size for p in t.pairs) > 9)
    edited = []
    for p in src.pairs:  # every output gets one cell changed: no pair survives, every input does
        out = p.output.copy()
        out[0, 0] = (out[0, 0] + 1) % 10
        edited.append(Pair(apply_symmetry(p.input, 5), apply_symmetry(out, 5)))
    near = Task("near/x", "near", "training", edited[1:], edited[:1])
    tiny_src = next(t for t in eval_tasks if t.pairs[0].input.size <= 4)  # e.g. a 2x2 input
    tiny = Task(
        "tiny/x",
        "tiny",
        "training",
        [tiny_src.pairs[0], Pair(_random_grid(rng), _random_grid(rng))],
        [Pair(_random_grid(rng), _random_grid(rng))],
    )
    r = _run(eval_table, [near, tiny])
    ex = {x["id"]: x for x in r.excluded.to_pylist()}
    assert ex["near/x"]["level"] == "near_duplicate" and ex["near/x"]["eval_ids"] == [src.id]
    assert NEAR_THRESHOLD <= ex["near/x"]["similarity"] < 1
    assert "tiny/x" not in ex
    rep = {x["id"]: x for x in r.reported.to_pylist()}
    assert rep["tiny/x"]["level"] == "leaked_pair" and rep["tiny/x"]["reason"].startswith("trivial pair")
    assert r.counts["reported.leaked_pair"] == 1 and r.counts["excluded.near_duplicate"] == 1


def test_empty_and_reference_free_tables(eval_table):
    empty = eval_table.schema.empty_table()
    r = run_dedup(empty, eval_splits=EVAL, exclude_eval=True)
    assert r.table.num_rows == 0 and r.excluded.num_rows == 0
    r = run_dedup(eval_table, eval_splits=set(), exclude_eval=True)  # no reference: only within-collection
    assert r.excluded.num_rows == 0 and r.table.num_rows == N_REF
