"""Within-collection de-duplication, in one pass with decontamination (``--exclude-eval``, whose levels,
decisions and verification live in ``arcforge.build.decon``).

The build calls ``run_dedup`` once on the table of all validated tasks. Rows whose (source, split) is in
``eval_splits`` are the evaluation *reference*: they are never removed. ``extra_reference`` (tasks from
``--eval-local``) is reference-only and never written. A task is the multiset of its pairs: train and test
roles and pair order never matter.

Within the collection (always on), non-reference tasks equal at levels 1-3 are kept once: the first by
``priority`` (source order; unlisted sources after, alphabetically), ties by id; the rest go to
``duplicates`` with the level that links them to the kept task. Excluded tasks are removed first.
Reference tasks equal to each other (ARC-AGI-2 evaluation holds 6 ARC-AGI-1 evaluation tasks), or sharing
some decisive pairs, all stay and are listed in ``reported`` (reason ``reference ...``).

How: every task gets symmetry/recolor/order-invariant signatures in one vectorized pass
(``arcforge.build.canon.invariants``); only tasks whose signature collides with another task, or that share a
pair or grid signature with a reference task, get exact keys (``arcforge.build.canon.exact_keys``). Joins are
hash joins on uint64 keys; nothing compares all pairs of tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge.build import canon
from arcforge.build.canon import TRIVIAL_CELLS
from arcforge.build.decon import (
    COMMON_TASKS,
    EXCLUDED_SCHEMA,
    INFO_BITS,
    LEVELS,
    NEAR_THRESHOLD,
    REPORTED_SCHEMA,
    PairHit,
    build_refs,
    decide,
    grid_set,
    is_decisive,
    lineage_rows,
    near_duplicates,
    pair_hits,
    ranges,
    ref_overlaps,
    verify_all,
)
from arcforge.build.parallel import WorkerPool, forks
from arcforge.progress import NULL_PROGRESS, Progress

__all__ = ["COMMON_TASKS", "DUPLICATES_SCHEMA", "EXCLUDED_SCHEMA", "INFO_BITS", "LEVELS", "NEAR_THRESHOLD",
           "REPORTED_SCHEMA", "TRIVIAL_CELLS", "DedupResult", "run_dedup"]
DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("kept_id", pa.string()),
        pa.field("kept_source", pa.string()),
        pa.field("dropped_id", pa.string()),
        pa.field("dropped_source", pa.string()),
        pa.field("level", pa.string()),
        pa.field("kept_split", pa.string()),
        pa.field("dropped_split", pa.string()),
    ]
)


@dataclass
class DedupResult:
    table: pa.Table  # kept rows (TASK_SCHEMA)
    excluded: pa.Table  # EXCLUDED_SCHEMA: non-eval rows removed because they copy an eval task
    duplicates: pa.Table  # DUPLICATES_SCHEMA: within-collection copies dropped
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"excluded.exact": 3, "duplicates.symmetric": 9}
    reported: pa.Table | None = None  # REPORTED_SCHEMA: matches reported but not dropped
    rules: dict[str, pa.Table] = field(default_factory=dict)  # the rule level's reports, when it ran



def _priority_rank(sources: list[str], priority: Sequence[str]) -> list[tuple[int, str]]:
    order = {s: i for i, s in enumerate(priority)}
    return [(order.get(s, len(order)), s) for s in sources]


def _keep_rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """Rows where ``keep``, taken chunk by chunk (a whole-table take would first concatenate the chunks)."""
    out, base = [], 0
    for batch in table.to_batches():
        idx = np.flatnonzero(keep[base : base + batch.num_rows])
        base += batch.num_rows
        if len(idx):
            out.append(batch if len(idx) == batch.num_rows else batch.take(pa.array(idx)))
    return pa.Table.from_batches(out, schema=table.schema)


def run_dedup(
    table: pa.Table,
    *,
    eval_splits: set[tuple[str, str]],
    extra_reference: pa.Table | None = None,
    exclude_eval: bool = False,
    priority: Sequence[str] = (),
    near_threshold: float = NEAR_THRESHOLD,
    progress: Progress | None = None,
    chunk: int = 20_000,
    workers: int = 1,
) -> DedupResult:
    """Remove evaluation copies (with ``exclude_eval``) and within-collection duplicates; see the module doc.

    ``workers`` > 1: the signatures and exact keys of batches of tasks are computed in that many forked
    processes (the result does not depend on it: every step after them works per task or on sets)."""
    progress = progress or NULL_PROGRESS
    n = table.num_rows
    work = table
    if extra_reference is not None and extra_reference.num_rows:
        work = pa.concat_tables([table, extra_reference.select(table.column_names).cast(table.schema)])
    ntot = work.num_rows
    smallest = min(chunk, MIN_PARALLEL_CHUNK)
    pool = _forked_pool(work, workers, smallest)
    if pool is not None:  # batches small enough that every worker gets some
        chunk = max(smallest, min(chunk, -(-ntot // (2 * pool.workers))))
    try:
        is_ref = _reference_rows(work, n, eval_splits)
        ref_rows = np.flatnonzero(is_ref)
        ref_keys = None  # the reference tasks' exact keys: in a worker, while the others make signatures
        if pool is not None and len(ref_rows):
            ref_keys = pool.submit(_reference_keys_job, ref_rows)
        progress.start("dedup.invariants", "dedup: signatures", total=ntot)
        computed = None
        if pool is not None:
            computed = pool.imap(_invariants_job, _spans(work.to_batches(max_chunksize=chunk)))
        inv = canon.invariants(work, batch_size=chunk, progress=progress, computed=computed)
        progress.finish("dedup.invariants")
        return _run(work, n, inv, chunk, pool, is_ref, ref_keys.result() if ref_keys else None,
                    exclude_eval=exclude_eval, priority=priority, near_threshold=near_threshold,
                    progress=progress, table=table)
    finally:
        if pool is not None:
            pool.close()
        _SHARED.clear()


# --- the parallel parts: worker processes forked once the table exists read it as the parent does -----------
MIN_PARALLEL_CHUNK = 2_000  # tasks per batch when the batches go to worker processes
_SHARED: list[pa.Table] = []  # the table being deduplicated, inherited by the forked workers


def _forked_pool(work: pa.Table, workers: int, smallest: int) -> WorkerPool | None:
    """A pool of ``workers`` processes forked now (they see ``work`` without a copy), or None: one
    worker, fewer than two batches of ``smallest`` rows, or no ``fork`` on this system (the work then
    runs here, with the same result)."""
    workers = min(workers, work.num_rows // max(1, smallest))  # no more processes than batches to share
    if workers <= 1 or not forks():
        return None
    _SHARED[:] = [work]
    return WorkerPool(workers)


def _spans(batches: list[pa.RecordBatch]) -> list[tuple[int, int]]:
    """(first row, rows) of each batch of the table."""
    starts = np.cumsum([0, *(b.num_rows for b in batches)]).tolist()
    return [(starts[i], b.num_rows) for i, b in enumerate(batches)]


def _batch_at(span: tuple[int, int]) -> pa.RecordBatch:
    """In a worker: the batch of the shared table at ``span`` (a slice of one chunk: no copy)."""
    start, rows = span
    part = _SHARED[0].slice(start, rows).combine_chunks().to_batches()
    return part[0] if part else pa.RecordBatch.from_pylist([], schema=_SHARED[0].schema)


def _reference_rows(work: pa.Table, n: int, eval_splits: set[tuple[str, str]]) -> np.ndarray:
    """(rows,) bool: the reference rows (``eval_splits``, and every row from ``n`` on: ``--eval-local``)."""
    keys = pc.binary_join_element_wise(work.column("source"), work.column("split"), "/")
    wanted = pa.array(sorted(f"{a}/{b}" for a, b in eval_splits), pa.string())
    is_ref = pc.is_in(keys, value_set=wanted).to_numpy(zero_copy_only=False).astype(bool)
    is_ref[n:] = True
    return is_ref


def _reference_keys_job(rows: np.ndarray) -> canon.ExactKeys:
    return canon.exact_keys_of(canon.read_pairs(_SHARED[0].take(pa.array(rows))),
                               np.arange(len(rows), dtype=np.int64))


def _invariants_job(span: tuple[int, int]) -> tuple[np.ndarray, ...]:
    return canon.batch_invariants(_batch_at(span))


def _exact_keys_job(job: tuple[tuple[int, int], np.ndarray]) -> canon.ExactKeys:
    span, rows = job
    return canon.exact_keys_of(canon.read_pairs(_batch_at(span)), rows)


def _run(work: pa.Table, n: int, inv: canon.Invariants, chunk: int, pool: WorkerPool | None,
         is_ref: np.ndarray, ref_keys: canon.ExactKeys | None, *, exclude_eval: bool, priority: Sequence[str],
         near_threshold: float, progress: Progress, table: pa.Table) -> DedupResult:
    """``run_dedup`` once the invariants are known (``pool``: workers for the exact keys, or None;
    ``ref_keys``: the reference tasks' exact keys when already computed)."""
    ntot = work.num_rows
    nonref = ~is_ref
    pair_off = np.searchsorted(inv.pair_task, np.arange(ntot + 1))

    # --- candidates -----------------------------------------------------------------------------------
    _, tgrp, tcnt = np.unique(inv.task_inv, return_inverse=True, return_counts=True)
    refc = np.bincount(tgrp[is_ref], minlength=len(tcnt))
    cand = nonref & (tcnt - refc >= 2)[tgrp]
    if exclude_eval:
        cand |= nonref & (refc > 0)[tgrp]
        hit = np.isin(inv.pair_inv, inv.pair_inv[is_ref[inv.pair_task]]) & nonref[inv.pair_task]
        cand[inv.pair_task[hit]] = True
        keep = ~inv.grid_trivial  # near duplicates: tasks sharing a non-trivial grid signature
        gref = keep & is_ref[inv.grid_task]
        ghit = keep & ~gref & np.isin(inv.grid_inv, inv.grid_inv[gref])
        cand[inv.grid_task[ghit]] = True
    cand_rows = np.flatnonzero(cand)
    ref_rows = np.flatnonzero(is_ref)
    lineage = lineage_rows(work, is_ref, ref_rows) if exclude_eval else {}
    # ids, sources and splits of the rows that can appear in a report (not of every row: a million strings)
    named = np.union1d(np.union1d(cand_rows, ref_rows), np.fromiter(lineage, np.int64, len(lineage)))
    src, spl, ids = (dict(zip(named.tolist(), work.column(c).take(pa.array(named)).to_pylist(), strict=True))
                     for c in ("source", "split", "id"))

    excluded: dict[int, tuple[str, list[int], float]] = {}  # row -> (level, ref indices, similarity)
    reported: list[tuple[int, str, list[int], float, str]] = []
    refs = build_refs(work, ref_rows, inv, pair_off, ref_keys) if len(ref_rows) else None
    if refs is not None:
        reported += ref_overlaps(refs)

    # --- exact keys of the candidates, in chunks; levels 1-3 at once, pair hits for later ---------------
    keys = np.zeros((len(cand_rows), 3), np.uint64)
    pending: dict[int, list[PairHit]] = {}
    gparts: list[tuple[np.ndarray, np.ndarray]] = []
    progress.start("dedup.exact", "dedup: exact keys", total=len(cand_rows))
    batches = work.to_batches(max_chunksize=chunk)
    spans = _spans(batches)
    bounds = [np.searchsorted(cand_rows, [a, a + k]).tolist() for a, k in spans]
    todo = [i for i, (lo, hi) in enumerate(bounds) if hi > lo]  # batches holding candidates
    jobs = [(spans[i], cand_rows[bounds[i][0] : bounds[i][1]] - spans[i][0]) for i in todo]
    if pool is not None:
        eks = pool.imap(_exact_keys_job, jobs)
    else:
        eks = (canon.exact_keys_of(canon.read_pairs(batches[i]), rows) for i, (_, rows) in zip(todo, jobs,
                                                                                            strict=True))
    for i, ek in zip(todo, eks, strict=True):
        lo, hi = bounds[i]
        rows = cand_rows[lo:hi]
        if len(rows):
            keys[lo:hi] = np.stack([ek.key1, ek.key2, ek.key3], axis=1)
            if exclude_eval and refs is not None:
                for t, row in enumerate(rows.tolist()):
                    for lvl, k in enumerate(keys[lo + t].tolist()):
                        if k in refs.by_key[lvl]:
                            excluded[row] = (LEVELS[lvl], refs.by_key[lvl][k], 1.0)
                            break
                    else:
                        if ph := pair_hits(ek, t, refs):
                            pending[row] = ph
                pr = ranges(pair_off, rows)
                gparts.append(grid_set(ek, rows[ek.pair_task], inv.in_trivial[pr], inv.out_trivial[pr]))
        progress.advance("dedup.exact", len(rows))
    progress.finish("dedup.exact")

    if exclude_eval and refs is not None:
        # --- levels 4-5: evidence first (pairs shared, alone, by several unrelated tasks), then decide ---
        key3 = dict(zip(cand_rows.tolist(), keys[:, 2].tolist(), strict=True))
        alone: dict[int, set[int]] = defaultdict(set)
        for row, hits in pending.items():
            for h in hits:
                if sum(h.shared.values()) == 1:
                    alone[next(iter(h.shared))].add(key3[row])
        common = {k for k, tasks in alone.items() if len(tasks) >= COMMON_TASKS}
        decisive_keys: dict[int, set[int]] = {}
        for row, hits in pending.items():
            level, hit_refs, sim, why = decide(hits, refs, common)
            if level:
                excluded[row] = (level, hit_refs, sim)
                for h in hits:
                    decisive_keys[h.ref] = {k for k in refs.pair_keys[h.ref] if is_decisive(refs, h.ref, k, common)}
            else:
                reported.append((row, "leaked_pair", hit_refs, sim, why))
        # --- level 6 ------------------------------------------------------------------------------------
        if gparts:
            ct, ck = (np.concatenate(x) for x in zip(*gparts, strict=True))
            open_ = ~np.isin(ct, np.fromiter(excluded, np.int64, len(excluded)))
            for row, lst in near_duplicates(ct[open_], ck[open_], refs, near_threshold).items():
                excluded[row] = ("near_duplicate", [r for _, r in lst], lst[0][0])
        # --- verify every exclusion on the grids --------------------------------------------------------
        excluded, unverified = verify_all(work, excluded, refs, decisive_keys, near_threshold)
        reported += unverified
        # --- level 7: no grid in common, derived from a reference task ---------------------------------
        for row, hits in lineage.items():
            excluded.setdefault(row, ("lineage", hits, 0.0))

    # --- within-collection duplicates among what is left ------------------------------------------------
    dups: list[tuple[int, int, str]] = []  # (kept row, dropped row, level)
    left = np.array([r not in excluded for r in cand_rows.tolist()], bool).reshape(-1)
    lrows, lkeys = cand_rows[left], keys[left]
    rank = _priority_rank([src[r] for r in lrows.tolist()], priority)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(lkeys[:, 2].tolist()):
        groups[k].append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (rank[i], ids[int(lrows[i])]))
        k0 = members[0]
        for i in members[1:]:
            lvl = 0 if lkeys[i, 0] == lkeys[k0, 0] else 1 if lkeys[i, 1] == lkeys[k0, 1] else 2
            dups.append((int(lrows[k0]), int(lrows[i]), LEVELS[lvl]))

    # --- outputs -------------------------------------------------------------------------------------------
    drop = np.zeros(n, bool)
    for r in excluded:
        drop[r] = True
    for _, r, _ in dups:
        drop[r] = True
    ref_ids = [ids[r] for r in ref_rows.tolist()]
    ref_src = [src[r] for r in ref_rows.tolist()]

    def match_row(row: int, level: str, hits: list[int], sim: float) -> dict:
        return {"id": ids[row], "source": src[row], "split": spl[row], "eval_ids": [ref_ids[h] for h in hits],
                "level": level, "similarity": float(sim), "eval_sources": [ref_src[h] for h in hits]}

    exc_rows = [match_row(r, *excluded[r]) for r in sorted(excluded, key=lambda r: ids[r])]
    rep_rows = [{**match_row(r, lvl, h, s), "reason": why} for r, lvl, h, s, why in reported]
    dup_rows = [{"kept_id": ids[k], "kept_source": src[k], "dropped_id": ids[d], "dropped_source": src[d],
                 "level": lvl, "kept_split": spl[k], "dropped_split": spl[d]} for k, d, lvl in dups]
    counts = {f"{kind}.{lvl}": 0 for kind in ("excluded", "duplicates", "reported") for lvl in LEVELS}
    for r in exc_rows:
        counts[f"excluded.{r['level']}"] += 1
    for r in dup_rows:
        counts[f"duplicates.{r['level']}"] += 1
    for r in rep_rows:
        counts[f"reported.{r['level']}"] += 1
    kept = _keep_rows(table, ~drop) if drop.any() else table
    return DedupResult(
        table=kept,
        excluded=pa.Table.from_pylist(exc_rows, schema=EXCLUDED_SCHEMA),
        duplicates=pa.Table.from_pylist(dup_rows, schema=DUPLICATES_SCHEMA),
        counts=counts,
        reported=pa.Table.from_pylist(rep_rows, schema=REPORTED_SCHEMA),
    )
