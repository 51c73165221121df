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
from collections.abc import Iterator, Sequence
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
    _Refs,
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

__all__ = [
    "COMMON_TASKS",
    "DUPLICATES_SCHEMA",
    "EXCLUDED_SCHEMA",
    "INFO_BITS",
    "LEVELS",
    "NEAR_THRESHOLD",
    "REPORTED_SCHEMA",
    "TRIVIAL_CELLS",
    "Batching",
    "DedupResult",
    "run_dedup",
]
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
    counts: dict[str, int] = field(
        default_factory=dict
    )  # e.g. {"excluded.exact": 3, "duplicates.symmetric": 9}
    reported: pa.Table | None = None  # REPORTED_SCHEMA: matches reported but not dropped
    rules: dict[str, pa.Table] = field(default_factory=dict)  # the rule level's reports, when it ran


def _priority_rank(sources: list[str], priority: Sequence[str]) -> list[tuple[int, str]]:
    order = {s: i for i, s in enumerate(priority)}
    return [(order.get(s, len(order)), s) for s in sources]


def keep_rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """Rows where ``keep``, taken chunk by chunk (a whole-table take would first concatenate the chunks)."""
    out, base = [], 0
    for batch in table.to_batches():
        idx = np.flatnonzero(keep[base : base + batch.num_rows])
        base += batch.num_rows
        if len(idx):
            out.append(batch if len(idx) == batch.num_rows else batch.take(pa.array(idx)))
    return pa.Table.from_batches(out, schema=table.schema)


@dataclass(frozen=True)
class Batching:
    """How ``run_dedup`` splits its work: batches of ``chunk`` tasks over ``workers`` processes (> 1: forked
    workers compute the signatures and exact keys). The result does not depend on it."""

    chunk: int = 20_000
    workers: int = 1


def run_dedup(
    table: pa.Table,
    *,
    eval_splits: set[tuple[str, str]],
    extra_reference: pa.Table | None = None,
    exclude_eval: bool = False,
    priority: Sequence[str] = (),
    near_threshold: float = NEAR_THRESHOLD,
    progress: Progress | None = None,
    batching: Batching = Batching(),
) -> DedupResult:
    """Remove evaluation copies (with ``exclude_eval``) and within-collection duplicates; see the module doc.

    ``batching``: batches and worker processes for the signatures and exact keys (the result does not depend
    on it: every step after them works per task or on sets)."""
    progress = progress or NULL_PROGRESS
    work = _with_reference(table, extra_reference)
    smallest = min(batching.chunk, MIN_PARALLEL_CHUNK)
    pool = _forked_pool(work, batching.workers, smallest)
    try:
        chunk = _chunk_for(batching.chunk, smallest, work, pool)
        prep = _prepare(table, work, eval_splits, chunk, pool, progress)
        return _run(
            prep,
            exclude_eval=exclude_eval,
            priority=priority,
            near_threshold=near_threshold,
            progress=progress,
        )
    finally:
        if pool is not None:
            pool.close()
        _SHARED.clear()


def _with_reference(table: pa.Table, extra_reference: pa.Table | None) -> pa.Table:
    """The table to work on: ``table``'s rows, then the ``--eval-local`` reference rows (if any)."""
    if extra_reference is not None and extra_reference.num_rows:
        return pa.concat_tables([table, extra_reference.select(table.column_names).cast(table.schema)])
    return table


def _chunk_for(chunk: int, smallest: int, work: pa.Table, pool: WorkerPool | None) -> int:
    """Rows per batch: ``chunk``, or with a pool batches small enough that every worker gets some."""
    if pool is None:
        return chunk
    return max(smallest, min(chunk, -(-work.num_rows // (2 * pool.workers))))


@dataclass
class _Prepared:
    """What the pass starts from: the input ``table``, the working table (``table``'s ``n`` rows, then the
    reference-only ones), its invariants and reference rows, the reference tasks' exact keys when a worker
    computed them, and the batches and workers for the exact keys."""

    table: pa.Table
    work: pa.Table
    n: int
    inv: canon.Invariants
    is_ref: np.ndarray  # (rows,) bool
    ref_keys: canon.ExactKeys | None
    chunk: int
    pool: WorkerPool | None


def _prepare(
    table: pa.Table,
    work: pa.Table,
    eval_splits: set[tuple[str, str]],
    chunk: int,
    pool: WorkerPool | None,
    progress: Progress,
) -> _Prepared:
    """The reference rows and the invariants of every row (the reference tasks' exact keys in a worker,
    meanwhile, when there is a pool)."""
    n = table.num_rows
    is_ref = _reference_rows(work, n, eval_splits)
    ref_rows = np.flatnonzero(is_ref)
    ref_keys = None  # the reference tasks' exact keys: in a worker, while the others make signatures
    if pool is not None and len(ref_rows):
        ref_keys = pool.submit(_reference_keys_job, ref_rows)
    progress.start("dedup.invariants", "dedup: signatures", total=work.num_rows)
    computed = None
    if pool is not None:
        computed = pool.imap(_invariants_job, _spans(work.to_batches(max_chunksize=chunk)))
    inv = canon.invariants(work, batch_size=chunk, progress=progress, computed=computed)
    progress.finish("dedup.invariants")
    return _Prepared(
        table=table,
        work=work,
        n=n,
        inv=inv,
        is_ref=is_ref,
        ref_keys=ref_keys.result() if ref_keys else None,
        chunk=chunk,
        pool=pool,
    )


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
    return canon.exact_keys_of(
        canon.read_pairs(_SHARED[0].take(pa.array(rows))), np.arange(len(rows), dtype=np.int64)
    )


def _invariants_job(span: tuple[int, int]) -> tuple[np.ndarray, ...]:
    return canon.batch_invariants(_batch_at(span))


def _exact_keys_job(job: tuple[tuple[int, int], np.ndarray]) -> canon.ExactKeys:
    span, rows = job
    return canon.exact_keys_of(canon.read_pairs(_batch_at(span)), rows)


# --- one pass, in named steps -------------------------------------------------------------------------------
@dataclass
class _Pass:
    """What the steps of one pass share: the working table, its invariants and its reference rows."""

    work: pa.Table
    inv: canon.Invariants
    is_ref: np.ndarray  # (rows,) bool
    ref_rows: np.ndarray  # the reference row numbers
    pair_off: np.ndarray  # (rows + 1,) offset of each task's first pair in ``inv``
    refs: _Refs | None  # the reference tasks' keys and grids, None without reference rows
    exclude_eval: bool

    @property
    def decon(self) -> _Refs | None:
        """The reference tasks to decontaminate against, or None (no ``exclude_eval`` or no reference)."""
        return self.refs if self.exclude_eval else None


@dataclass
class _Names:
    """Source, split and id of the rows that can appear in a report (not of every row: a million strings)."""

    src: dict[int, str]
    spl: dict[int, str]
    ids: dict[int, str]


@dataclass
class _Found:
    """What the exact keys of the candidates give: their keys, and with decontamination the evidence that
    levels 4-6 decide on."""

    keys: np.ndarray  # (candidates, 3) uint64: levels 1-3
    pending: dict[int, list[PairHit]] = field(
        default_factory=dict
    )  # row -> pairs shared with reference tasks
    gparts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (row, grid key) per batch


_Excluded = dict[int, tuple[str, list[int], float]]  # row -> (level, ref indices, similarity)
_Reported = list[tuple[int, str, list[int], float, str]]  # (row, level, ref indices, similarity, reason)
_Dups = list[tuple[int, int, str]]  # (kept row, dropped row, level)


def _run(
    prep: _Prepared, *, exclude_eval: bool, priority: Sequence[str], near_threshold: float, progress: Progress
) -> DedupResult:
    """``run_dedup`` once the invariants are known."""
    work, inv, is_ref, chunk, pool = prep.work, prep.inv, prep.is_ref, prep.chunk, prep.pool
    cand_rows = np.flatnonzero(_candidates(inv, is_ref, exclude_eval))
    ref_rows = np.flatnonzero(is_ref)
    lineage = lineage_rows(work, is_ref, ref_rows) if exclude_eval else {}
    names = _names(work, cand_rows, ref_rows, lineage)
    st = _pass_state(work, inv, is_ref, ref_rows, prep.ref_keys, exclude_eval)
    reported: _Reported = []
    if st.refs is not None:
        reported += ref_overlaps(st.refs)
    excluded: _Excluded = {}
    found = _exact_keys(st, cand_rows, chunk, pool, progress, excluded)
    if st.decon is not None:
        excluded = _decontaminate(st, cand_rows, found, excluded, reported, lineage, near_threshold)
    dups = _duplicates(cand_rows, found.keys, excluded, names, priority)
    return _result(prep.table, prep.n, ref_rows, names, excluded, reported, dups)


def _candidates(inv: canon.Invariants, is_ref: np.ndarray, exclude_eval: bool) -> np.ndarray:
    """(rows,) bool: the non-reference tasks that need exact keys: their signature collides with another
    non-reference task's, or (with ``exclude_eval``) with a reference task's, or they share a pair or a
    non-trivial grid signature with a reference task."""
    nonref = ~is_ref
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
    return cand


def _names(
    work: pa.Table, cand_rows: np.ndarray, ref_rows: np.ndarray, lineage: dict[int, list[int]]
) -> _Names:
    """Source, split and id of the candidates, the reference rows and the lineage rows."""
    named = np.union1d(np.union1d(cand_rows, ref_rows), np.fromiter(lineage, np.int64, len(lineage)))
    src, spl, ids = (
        dict(zip(named.tolist(), work.column(c).take(pa.array(named)).to_pylist(), strict=True))
        for c in ("source", "split", "id")
    )
    return _Names(src=src, spl=spl, ids=ids)


def _pass_state(
    work: pa.Table,
    inv: canon.Invariants,
    is_ref: np.ndarray,
    ref_rows: np.ndarray,
    ref_keys: canon.ExactKeys | None,
    exclude_eval: bool,
) -> _Pass:
    """The shared state of the pass, with the reference tasks' keys and grids built."""
    pair_off = np.searchsorted(inv.pair_task, np.arange(work.num_rows + 1))
    refs = build_refs(work, ref_rows, inv, pair_off, ref_keys) if len(ref_rows) else None
    return _Pass(
        work=work,
        inv=inv,
        is_ref=is_ref,
        ref_rows=ref_rows,
        pair_off=pair_off,
        refs=refs,
        exclude_eval=exclude_eval,
    )


def _exact_keys(
    st: _Pass,
    cand_rows: np.ndarray,
    chunk: int,
    pool: WorkerPool | None,
    progress: Progress,
    excluded: _Excluded,
) -> _Found:
    """Exact keys of the candidates, batch by batch; with decontamination, levels 1-3 at once (into
    ``excluded``) and the pair hits and grid sets kept for the later levels."""
    found = _Found(keys=np.zeros((len(cand_rows), 3), np.uint64))
    progress.start("dedup.exact", "dedup: exact keys", total=len(cand_rows))
    for lo, hi, ek in _exact_key_batches(st.work, cand_rows, chunk, pool):
        rows = cand_rows[lo:hi]
        if len(rows):
            found.keys[lo:hi] = np.stack([ek.key1, ek.key2, ek.key3], axis=1)
            if st.decon is not None:
                _match_batch(st, rows, ek, found.keys[lo:hi], excluded, found)
        progress.advance("dedup.exact", len(rows))
    progress.finish("dedup.exact")
    return found


def _exact_key_batches(
    work: pa.Table, cand_rows: np.ndarray, chunk: int, pool: WorkerPool | None
) -> Iterator[tuple[int, int, canon.ExactKeys]]:
    """(lo, hi, exact keys of ``cand_rows[lo:hi]``) for each batch of ``work`` holding candidates, computed
    in ``pool`` when there is one, here otherwise."""
    batches = work.to_batches(max_chunksize=chunk)
    spans = _spans(batches)
    bounds = [np.searchsorted(cand_rows, [a, a + k]).tolist() for a, k in spans]
    todo = [i for i, (lo, hi) in enumerate(bounds) if hi > lo]  # batches holding candidates
    jobs = [(spans[i], cand_rows[bounds[i][0] : bounds[i][1]] - spans[i][0]) for i in todo]
    if pool is not None:
        eks = pool.imap(_exact_keys_job, jobs)
    else:
        eks = (
            canon.exact_keys_of(canon.read_pairs(batches[i]), rows)
            for i, (_, rows) in zip(todo, jobs, strict=True)
        )
    for i, ek in zip(todo, eks, strict=True):
        lo, hi = bounds[i]
        yield lo, hi, ek


def _match_batch(
    st: _Pass, rows: np.ndarray, ek: canon.ExactKeys, keys: np.ndarray, excluded: _Excluded, found: _Found
) -> None:
    """Levels 1-3 of one batch's candidates ``rows`` (their ``keys``) into ``excluded``; the pair hits of the
    others and the batch's grid set into ``found``."""
    refs = st.decon
    for t, row in enumerate(rows.tolist()):
        match = _exact_match(keys[t].tolist(), refs)
        if match is not None:
            excluded[row] = match
        elif ph := pair_hits(ek, t, refs):
            found.pending[row] = ph
    pr = ranges(st.pair_off, rows)
    found.gparts.append(grid_set(ek, rows[ek.pair_task], st.inv.in_trivial[pr], st.inv.out_trivial[pr]))


def _exact_match(keys: list[int], refs: _Refs) -> tuple[str, list[int], float] | None:
    """(level, reference indices, 1.0) at the first of levels 1-3 where a reference task has the same key."""
    for lvl, k in enumerate(keys):
        if k in refs.by_key[lvl]:
            return LEVELS[lvl], refs.by_key[lvl][k], 1.0
    return None


def _decontaminate(
    st: _Pass,
    cand_rows: np.ndarray,
    found: _Found,
    excluded: _Excluded,
    reported: _Reported,
    lineage: dict[int, list[int]],
    near_threshold: float,
) -> _Excluded:
    """Levels 4-7 after levels 1-3, every exclusion verified on the grids; returns the exclusions (those
    that do not verify go to ``reported``)."""
    refs = st.decon
    key3 = dict(zip(cand_rows.tolist(), found.keys[:, 2].tolist(), strict=True))
    common = _common_pairs(found.pending, key3)
    decisive_keys = _decide_pending(found.pending, refs, common, excluded, reported)
    if found.gparts:
        _near_duplicates(found.gparts, refs, excluded, near_threshold)
    excluded, unverified = verify_all(st.work, excluded, refs, decisive_keys, near_threshold)
    reported += unverified
    for row, hits in lineage.items():  # level 7: no grid in common, derived from a reference task
        excluded.setdefault(row, ("lineage", hits, 0.0))
    return excluded


def _common_pairs(pending: dict[int, list[PairHit]], key3: dict[int, int]) -> set[int]:
    """Pair keys shared, alone, with a reference task by at least ``COMMON_TASKS`` unrelated tasks."""
    alone: dict[int, set[int]] = defaultdict(set)
    for row, hits in pending.items():
        for h in hits:
            if sum(h.shared.values()) == 1:
                alone[next(iter(h.shared))].add(key3[row])
    return {k for k, tasks in alone.items() if len(tasks) >= COMMON_TASKS}


def _decide_pending(
    pending: dict[int, list[PairHit]], refs: _Refs, common: set[int], excluded: _Excluded, reported: _Reported
) -> dict[int, set[int]]:
    """Levels 4-5: each task with pair hits is excluded or reported; returns the decisive pair keys of the
    reference tasks involved in an exclusion."""
    decisive_keys: dict[int, set[int]] = {}
    for row, hits in pending.items():
        level, hit_refs, sim, why = decide(hits, refs, common)
        if level:
            excluded[row] = (level, hit_refs, sim)
            for h in hits:
                decisive_keys[h.ref] = {
                    k for k in refs.pair_keys[h.ref] if is_decisive(refs, h.ref, k, common)
                }
        else:
            reported.append((row, "leaked_pair", hit_refs, sim, why))
    return decisive_keys


def _near_duplicates(
    gparts: list[tuple[np.ndarray, np.ndarray]], refs: _Refs, excluded: _Excluded, near_threshold: float
) -> None:
    """Level 6 for the tasks not excluded yet, into ``excluded``."""
    ct, ck = (np.concatenate(x) for x in zip(*gparts, strict=True))
    open_ = ~np.isin(ct, np.fromiter(excluded, np.int64, len(excluded)))
    for row, lst in near_duplicates(ct[open_], ck[open_], refs, near_threshold).items():
        excluded[row] = ("near_duplicate", [r for _, r in lst], lst[0][0])


def _duplicates(
    cand_rows: np.ndarray, keys: np.ndarray, excluded: _Excluded, names: _Names, priority: Sequence[str]
) -> _Dups:
    """Within-collection duplicates among the candidates left: per level-3 key, the first by priority then
    id is kept, the others dropped with the level that links them to it."""
    dups: _Dups = []
    left = np.array([r not in excluded for r in cand_rows.tolist()], bool).reshape(-1)
    lrows, lkeys = cand_rows[left], keys[left]
    rank = _priority_rank([names.src[r] for r in lrows.tolist()], priority)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(lkeys[:, 2].tolist()):
        groups[k].append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (rank[i], names.ids[int(lrows[i])]))
        k0 = members[0]
        for i in members[1:]:
            lvl = 0 if lkeys[i, 0] == lkeys[k0, 0] else 1 if lkeys[i, 1] == lkeys[k0, 1] else 2
            dups.append((int(lrows[k0]), int(lrows[i]), LEVELS[lvl]))
    return dups


def _result(
    table: pa.Table,
    n: int,
    ref_rows: np.ndarray,
    names: _Names,
    excluded: _Excluded,
    reported: _Reported,
    dups: _Dups,
) -> DedupResult:
    """The kept rows and the three reports, with their counts per level."""
    drop = np.zeros(n, bool)
    for r in excluded:
        drop[r] = True
    for _, r, _ in dups:
        drop[r] = True
    exc_rows, rep_rows = _match_reports(names, ref_rows, excluded, reported)
    ids, src, spl = names.ids, names.src, names.spl
    dup_rows = [
        {
            "kept_id": ids[k],
            "kept_source": src[k],
            "dropped_id": ids[d],
            "dropped_source": src[d],
            "level": lvl,
            "kept_split": spl[k],
            "dropped_split": spl[d],
        }
        for k, d, lvl in dups
    ]
    kept = keep_rows(table, ~drop) if drop.any() else table
    return DedupResult(
        table=kept,
        excluded=pa.Table.from_pylist(exc_rows, schema=EXCLUDED_SCHEMA),
        duplicates=pa.Table.from_pylist(dup_rows, schema=DUPLICATES_SCHEMA),
        counts=_counts(exc_rows, dup_rows, rep_rows),
        reported=pa.Table.from_pylist(rep_rows, schema=REPORTED_SCHEMA),
    )


def _match_reports(
    names: _Names, ref_rows: np.ndarray, excluded: _Excluded, reported: _Reported
) -> tuple[list[dict], list[dict]]:
    """Rows of the excluded report (sorted by id) and of the reported one."""
    ids, src, spl = names.ids, names.src, names.spl
    ref_ids = [ids[r] for r in ref_rows.tolist()]
    ref_src = [src[r] for r in ref_rows.tolist()]

    def match_row(row: int, level: str, hits: list[int], sim: float) -> dict:
        return {
            "id": ids[row],
            "source": src[row],
            "split": spl[row],
            "eval_ids": [ref_ids[h] for h in hits],
            "level": level,
            "similarity": float(sim),
            "eval_sources": [ref_src[h] for h in hits],
        }

    exc_rows = [match_row(r, *excluded[r]) for r in sorted(excluded, key=lambda r: ids[r])]
    rep_rows = [{**match_row(r, lvl, h, s), "reason": why} for r, lvl, h, s, why in reported]
    return exc_rows, rep_rows


def _counts(exc_rows: list[dict], dup_rows: list[dict], rep_rows: list[dict]) -> dict[str, int]:
    """Rows of each report per level, every level listed."""
    counts = {f"{kind}.{lvl}": 0 for kind in ("excluded", "duplicates", "reported") for lvl in LEVELS}
    for r in exc_rows:
        counts[f"excluded.{r['level']}"] += 1
    for r in dup_rows:
        counts[f"duplicates.{r['level']}"] += 1
    for r in rep_rows:
        counts[f"reported.{r['level']}"] += 1
    return counts
