"""Decontamination and within-collection dedup on the real ARC data (../shared/arc-sources)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from arcforge.build.dedup import (
    DUPLICATES_SCHEMA,
    EXCLUDED_SCHEMA,
    LEVELS,
    MIN_PARALLEL_CHUNK,
    REPORTED_SCHEMA,
    Batching,
    run_dedup,
)
from arcforge.task import TASK_SCHEMA
from tests.dedup_data import arc_table

EVAL = {("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation")}
PRIORITY = ("arc_agi_1", "arc_agi_2", "concept_arc")


@pytest.fixture(scope="session")
def real_table(shared_sources) -> pa.Table:
    return arc_table(shared_sources)


@pytest.fixture(scope="session")
def result(real_table):
    return run_dedup(real_table, eval_splits=EVAL, exclude_eval=True, priority=PRIORITY)


def _ids(t: pa.Table, col: str = "id") -> set[str]:
    return set(t.column(col).to_pylist())


def test_schemas_and_counts(result, real_table):
    assert result.table.schema == TASK_SCHEMA
    assert result.excluded.schema == EXCLUDED_SCHEMA
    assert result.duplicates.schema == DUPLICATES_SCHEMA
    assert result.reported.schema == REPORTED_SCHEMA
    removed = result.excluded.num_rows + result.duplicates.num_rows
    assert result.table.num_rows == real_table.num_rows - removed
    for kind, table in (("excluded", result.excluded), ("duplicates", result.duplicates)):
        levels = table.column("level").to_pylist()
        assert all(lvl in LEVELS for lvl in levels)
        assert sum(result.counts[f"{kind}.{lvl}"] for lvl in LEVELS) == table.num_rows


def test_arc2_training_copies_of_arc1_evaluation_are_excluded(result, sources_json):
    ex = result.excluded.to_pylist()
    arc2 = {r["id"]: r for r in ex if r["id"].startswith("arc_agi_2/training/")}
    exact = {i for i, r in arc2.items() if r["level"] == "exact"}
    # 376 ARC-1 evaluation ids are in ARC-2 training; all but the changed ac0c5833 are exact copies
    # (pairs reordered). Measured: 375 exact.
    assert len(exact) == 375
    for tid in ("0a1d4ef5", "e7639916", "fea12743", "00dbd492"):
        r = arc2[f"arc_agi_2/training/{tid}"]
        assert r["eval_ids"] == [f"arc_agi_1/evaluation/{tid}"] and r["eval_sources"] == ["arc_agi_1"]
    # The changed one still shares 3 of its 5 pairs with the original: a leaked pair.
    changed = arc2["arc_agi_2/training/ac0c5833"]
    assert changed["level"] == "leaked_pair" and changed["eval_ids"] == ["arc_agi_1/evaluation/ac0c5833"]
    assert changed["similarity"] == pytest.approx(0.6)
    assert "arc_agi_2/training/ac0c5833" not in _ids(result.table)


def test_arc1_training_40853293_is_evaluation_070dd51e(result):
    r = next(r for r in result.excluded.to_pylist() if r["id"] == "arc_agi_1/training/40853293")
    assert r["level"] == "exact" and r["eval_ids"] == ["arc_agi_1/evaluation/070dd51e"]
    assert r["similarity"] == 1.0


def test_concept_arc_center_minimal_is_kept(result):
    # Its all-zero 11x11 test input equals an ARC-1 evaluation test input, but no pair matches.
    cid = "concept_arc/MinimalTasks/CenterMinimal"
    assert cid in _ids(result.table)
    assert cid not in _ids(result.excluded)
    assert cid not in _ids(result.reported)


def test_evaluation_rows_all_stay(result, real_table):
    kept = result.table.to_pydict()
    for src, n in (("arc_agi_1", 400), ("arc_agi_2", 120)):
        got = sum(
            1 for s, sp in zip(kept["source"], kept["split"], strict=True) if s == src and sp == "evaluation"
        )
        assert got == n
    # ARC-2 evaluation holds 6 ARC-1 evaluation tasks: both stay, and the pair is reported.
    rep = {r["id"]: r for r in result.reported.to_pylist() if r["reason"].startswith("reference duplicate")}
    assert set(rep) == {
        f"arc_agi_2/evaluation/{t}"
        for t in ("0934a4d8", "136b0064", "16b78196", "981571dc", "aa4ec2a5", "da515329")
    }
    assert rep["arc_agi_2/evaluation/0934a4d8"]["eval_ids"] == ["arc_agi_1/evaluation/0934a4d8"]


def test_partial_overlap_between_evaluation_sets_is_reported(result):
    # ARC-2 eval db695cfb shares 5 of its 6 pairs with ARC-1 eval 55783887: reported, both kept.
    part = [r for r in result.reported.to_pylist() if r["reason"].startswith("reference partial")]
    assert [(r["id"], r["eval_ids"]) for r in part] == [
        ("arc_agi_2/evaluation/db695cfb", ["arc_agi_1/evaluation/55783887"])
    ]
    assert part[0]["similarity"] == pytest.approx(5 / 7)
    kept = _ids(result.table)
    assert {"arc_agi_2/evaluation/db695cfb", "arc_agi_1/evaluation/55783887"} <= kept


def test_within_collection_keeps_by_priority(result):
    dups = result.duplicates.to_pylist()
    # ARC-2 training repeats ARC-1 training tasks (pairs reordered): ARC-1 comes first in the priority.
    by_dropped = {d["dropped_id"]: d for d in dups}
    d = by_dropped["arc_agi_2/training/007bbfb7"]
    assert d["kept_id"] == "arc_agi_1/training/007bbfb7" and d["level"] == "exact"
    assert all(d["kept_source"] == "arc_agi_1" and d["dropped_source"] == "arc_agi_2" for d in dups)
    assert len(dups) == 390  # measured: 391 shared ids, one of them changed


def test_priority_order_decides_which_copy_stays(real_table):
    r = run_dedup(real_table, eval_splits=EVAL, exclude_eval=False, priority=("arc_agi_2", "arc_agi_1"))
    d = {x["dropped_id"]: x for x in r.duplicates.to_pylist()}
    assert d["arc_agi_1/training/007bbfb7"]["kept_id"] == "arc_agi_2/training/007bbfb7"
    # without --exclude-eval nothing is excluded; evaluation copies are only deduplicated among themselves:
    # ARC-1 training/40853293 equals ARC-2 training/070dd51e (an ARC-1 evaluation task), ARC-2 comes first
    assert r.excluded.num_rows == 0
    assert d["arc_agi_1/training/40853293"]["kept_id"] == "arc_agi_2/training/070dd51e"
    assert {"arc_agi_2/training/070dd51e", "arc_agi_1/evaluation/070dd51e"} <= _ids(r.table)


def test_extra_reference_is_reference_only(real_table):
    ev1 = real_table.filter(pa.compute.equal(real_table.column("split"), "evaluation"))
    ev1 = ev1.filter(pa.compute.equal(ev1.column("source"), "arc_agi_1"))
    rest = real_table.filter(pa.compute.invert(pa.compute.is_in(real_table.column("id"), ev1.column("id"))))
    r = run_dedup(rest, eval_splits=set(), extra_reference=ev1, exclude_eval=True)
    assert "arc_agi_1/training/40853293" in _ids(r.excluded)
    assert not _ids(r.table) & _ids(ev1)  # reference-only rows are never written
    assert r.counts["excluded.exact"] >= 376


def test_worker_processes_give_the_same_result(real_table, result):
    """Signatures and exact keys computed in forked workers, in batches: the same tables, row for row."""
    chunk = 300  # batches of 300 tasks (a build uses up to MIN_PARALLEL_CHUNK): several for each worker
    assert real_table.num_rows > 4 * chunk and chunk <= MIN_PARALLEL_CHUNK
    par = run_dedup(
        real_table,
        eval_splits=EVAL,
        exclude_eval=True,
        priority=PRIORITY,
        batching=Batching(chunk=chunk, workers=2),
    )
    for name in ("table", "excluded", "duplicates", "reported"):
        assert getattr(par, name).equals(getattr(result, name)), name
    assert par.counts == result.counts
    assert sum(v for k, v in par.counts.items() if k.startswith("excluded.")) > 0


def test_keeping_rows_copies_only_the_batches_that_lose_one(real_table):
    """A million-task build keeps most batches whole: those are the input's own buffers (a memory-mapped
    spill stays on disk), and only a batch that loses rows is gathered anew."""
    import numpy as np

    from arcforge.build.dedup import keep_rows

    table = pa.Table.from_batches(real_table.to_batches(max_chunksize=500))
    keep = np.ones(table.num_rows, dtype=bool)
    keep[[510, 777]] = False  # both in the second batch
    out = keep_rows(table, keep)
    assert out.num_rows == table.num_rows - 2
    ids = table.column("id").to_pylist()
    assert out.column("id").to_pylist() == [i for j, i in enumerate(ids) if keep[j]]
    ins, outs = table.to_batches(), out.to_batches()
    assert len(outs) == len(ins)
    for k, (a, b) in enumerate(zip(ins, outs, strict=True)):
        same = a.column("train").buffers()[-1].address == b.column("train").buffers()[-1].address
        assert same == (k != 1), k
