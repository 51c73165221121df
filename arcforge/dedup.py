"""Decontamination (``--exclude-eval``) and within-collection de-duplication.

The build calls ``run_dedup`` once on the table of all validated tasks. Rows whose (source, split) is in
``eval_splits`` are the evaluation *reference*: they are never removed. ``extra_reference`` (tasks from
``--eval-local``) is reference-only and never written. A task is the multiset of its pairs: train and test
roles and pair order never matter. With ``exclude_eval`` a non-reference task is removed when it matches a
reference task at one of these levels (the first that applies is reported):

1. ``exact``: the same multiset of (input, output) pairs.
2. ``symmetric``: equal after one of the 8 rotations/reflections applied to every grid of the task.
3. ``recolored``: equal after one color permutation applied consistently to every grid of the task
   (0 may move or stay), combined with any symmetry of level 2.
4. ``subset``: its pairs are a strict subset or superset of the reference task's pairs (dropped or added
   pairs), with one consistent symmetry + recoloring over the shared pairs, and the shared pairs are
   *decisive* (below).
5. ``leaked_pair``: it contains a decisive pair of a reference task, up to a symmetry and a recoloring of
   that pair.
6. ``near_duplicate``: the Jaccard similarity of the sets of its non-trivial grids (inputs and outputs,
   each up to symmetry and recoloring; a grid with at most ``TRIVIAL_CELLS`` cells, or at most that many
   cells off its most frequent color, is trivial) with a reference task's is at least ``NEAR_THRESHOLD``.

A shared pair is *decisive* unless evidence says a coincidence is likely:

- a reference **test** pair is always decisive: a copy of an evaluation answer is never waved through;
- a reference train pair is not decisive when it holds fewer than ``INFO_BITS`` bits
  (``canon.information_bits`` of its input plus its output: log2 of the number of grids with its shape
  and color counts; a 3x3 grid with one dot is 3.2 bits), or when it is *common*: at least
  ``COMMON_TASKS`` unrelated non-reference tasks (distinct up to symmetry and recoloring, each sharing only
  that one pair with the reference) contain it. Such matches are *reported*, not dropped.

Every exclusion is verified on the grids themselves before it is made (``canon.canonical_form``: the
smallest form over the 8 symmetries, colors renamed by first appearance): equal multisets of pair forms
(levels 1-3), shared pair forms (4-5) and the Jaccard similarity of grid forms (6), which is the reported
similarity. A match that does not verify (a hash collision) is reported as ``unverified`` and removes
nothing.

Within the collection (always on), non-reference tasks equal at levels 1-3 are kept once: the first by
``priority`` (source order; unlisted sources after, alphabetically), ties by id; the rest go to
``duplicates`` with the level that links them to the kept task. Excluded tasks are removed first.
Reference tasks equal to each other (ARC-AGI-2 evaluation holds 6 ARC-AGI-1 evaluation tasks), or sharing
some decisive pairs, all stay and are listed in ``reported`` (reason ``reference ...``).

How: every task gets symmetry/recolor/order-invariant signatures in one vectorized pass
(``arcforge.canon.invariants``); only tasks whose signature collides with another task, or that share a
pair or grid signature with a reference task, get exact keys (``arcforge.canon.exact_keys``). Joins are
hash joins on uint64 keys; nothing compares all pairs of tasks.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge import canon
from arcforge.canon import TRIVIAL_CELLS
from arcforge.grids import apply_symmetry
from arcforge.parallel import WorkerPool, forks
from arcforge.progress import NULL_PROGRESS, Progress

LEVELS: tuple[str, ...] = ("exact", "symmetric", "recolored", "subset", "leaked_pair", "near_duplicate")
MAX_CHOICES = 256  # sub-tasks tried per (task, reference) pair at the subset level
INFO_BITS = 20.0  # a reference train pair with less information is never decisive on its own
COMMON_TASKS = 3  # ... nor one found in this many unrelated non-reference tasks
NEAR_THRESHOLD = 0.30  # chosen on one half of the evaluation tasks, scored on the other (bench_decon.py)
__all__ = ["COMMON_TASKS", "DUPLICATES_SCHEMA", "EXCLUDED_SCHEMA", "INFO_BITS", "LEVELS", "NEAR_THRESHOLD",
           "REPORTED_SCHEMA", "TRIVIAL_CELLS", "DedupResult", "run_dedup"]

EXCLUDED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("split", pa.string()),
        pa.field("eval_ids", pa.list_(pa.string())),
        pa.field("level", pa.string()),
        pa.field("similarity", pa.float64()),
        pa.field("eval_sources", pa.list_(pa.string())),  # source of each of eval_ids
    ]
)
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
# Matches that are reported but remove nothing: trivial leaked pairs, reference tasks equal to each other.
REPORTED_SCHEMA = pa.schema([*EXCLUDED_SCHEMA, pa.field("reason", pa.string())])


@dataclass
class DedupResult:
    table: pa.Table  # kept rows (TASK_SCHEMA)
    excluded: pa.Table  # EXCLUDED_SCHEMA: non-eval rows removed because they copy an eval task
    duplicates: pa.Table  # DUPLICATES_SCHEMA: within-collection copies dropped
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"excluded.exact": 3, "duplicates.symmetric": 9}
    reported: pa.Table | None = None  # REPORTED_SCHEMA: matches reported but not dropped




@dataclass
class _Refs:
    """Exact keys and grids of the reference tasks, and lookups from keys to reference indices."""

    rows: np.ndarray  # reference row numbers in the working table
    ek: canon.ExactKeys
    pb: canon.PairBatch  # their grids, for verification
    bits: dict[int, float]  # canonical pair key -> information bits of the pair
    by_key: list[dict[int, list[int]]]  # level 1..3: key -> reference indices
    by_pair: dict[int, list[int]]  # canonical pair key -> reference indices (one per task)
    pair_keys: list[Counter]  # per reference index: multiset of canonical pair keys
    test_keys: list[set[int]]  # per reference index: canonical keys of its test pairs
    grid_t: np.ndarray  # (G,) reference index of each non-trivial grid key (unique per task)
    grid_k: np.ndarray  # (G,) uint64 grid key


def _unique_pairs(t: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, k) rows deduplicated, sorted by t then k."""
    order = np.lexsort((k, t))
    t, k = t[order], k[order]
    first = np.r_[True, (t[1:] != t[:-1]) | (k[1:] != k[:-1])] if len(t) else np.zeros(0, bool)
    return t[first], k[first]


def _grid_set(ek: canon.ExactKeys, owner: np.ndarray, in_triv: np.ndarray, out_triv: np.ndarray):
    """Non-trivial grid keys of the pairs of ``ek`` (their owners ``owner``), unique per owner."""
    t = np.r_[owner[~in_triv], owner[~out_triv]]
    k = np.r_[ek.grid_in[~in_triv], ek.grid_out[~out_triv]]
    return _unique_pairs(t, k)


def _build_refs(work: pa.Table, rows: np.ndarray, inv: canon.Invariants, pair_off: np.ndarray,
                ek: canon.ExactKeys | None = None) -> _Refs:
    pb = canon.read_pairs(work.take(pa.array(rows)))
    if ek is None:
        ek = canon.exact_keys_of(pb, np.arange(len(rows), dtype=np.int64))
    pr = _ranges(pair_off, rows)
    by_key: list[dict[int, list[int]]] = []
    for keys in (ek.key1, ek.key2, ek.key3):
        d: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(keys.tolist()):
            d[k].append(i)
        by_key.append(d)
    by_pair: dict[int, list[int]] = defaultdict(list)
    pair_keys, test_keys = [], []
    pk, test = ek.pair_key.tolist(), ek.pair_test.tolist()
    for t in range(len(rows)):
        lo, hi = ek.pair_offsets[t], ek.pair_offsets[t + 1]
        c = Counter(pk[lo:hi])
        pair_keys.append(c)
        test_keys.append({k for k, te in zip(pk[lo:hi], test[lo:hi], strict=True) if te})
        for k in c:
            by_pair[k].append(t)
    bits = dict(zip(pk, inv.pair_info[pr].tolist(), strict=True))
    gt, gk = _grid_set(ek, ek.pair_task, inv.in_trivial[pr], inv.out_trivial[pr])
    return _Refs(rows, ek, pb, bits, by_key, by_pair, pair_keys, test_keys, gt, gk)


def _sub_task_matches(ek: canon.ExactKeys, lo: int, hi: int, want: Counter, key3: int) -> bool:
    """Do some of the pairs ``lo:hi`` of ``ek``, covering the canonical pair keys ``want``, form a task
    with recolored key ``key3``? Pairs with equal canonical keys (recolorings of each other) are ambiguous,
    so every choice is tried (up to ``MAX_CHOICES``), in one vectorized call."""
    pk = ek.pair_key[lo:hi].tolist()
    size = sum(want.values())
    choices = [c for c in itertools.combinations(range(hi - lo), size)
               if Counter(pk[i] for i in c) == want][:MAX_CHOICES]
    if not choices:
        return False
    rows = np.asarray(choices, dtype=np.int64).ravel() + lo
    k3 = canon.group_keys(ek, rows, np.arange(len(choices) + 1, dtype=np.int64) * size)[2]
    return bool((k3 == np.uint64(key3)).any())


@dataclass
class _PairHit:
    """A candidate task sharing pairs with one reference task (levels 4-5, decided once all are seen)."""

    ref: int  # reference index
    shared: Counter  # canonical pair keys shared
    subset: bool  # a sub-task verified as a consistent symmetry + recoloring (level 4)
    sim: float  # shared / union of the pair multisets


def _pair_hits(ek: canon.ExactKeys, t: int, refs: _Refs) -> list[_PairHit]:
    """Reference tasks sharing a canonical pair key with candidate ``t`` (an index into ``ek``)."""
    lo, hi = ek.pair_offsets[t], ek.pair_offsets[t + 1]
    mine = Counter(ek.pair_key[lo:hi].tolist())
    hits = dict.fromkeys(r for k in mine for r in refs.by_pair.get(k, ()))
    out = []
    for r in hits:
        theirs = refs.pair_keys[r]
        shared = mine & theirs
        n_shared, n_mine, n_theirs = sum(shared.values()), hi - lo, sum(theirs.values())
        ok = False
        if n_shared == n_mine and n_mine < n_theirs:  # dropped pairs: verify on a reference sub-task
            rl, rh = refs.ek.pair_offsets[r], refs.ek.pair_offsets[r + 1]
            ok = _sub_task_matches(refs.ek, rl, rh, mine, int(ek.key3[t]))
        elif n_shared == n_theirs and n_mine > n_theirs:  # added pairs: verify on our sub-task
            ok = _sub_task_matches(ek, lo, hi, theirs, int(refs.ek.key3[r]))
        out.append(_PairHit(r, shared, ok, n_shared / (n_mine + n_theirs - n_shared)))
    return out


def _decisive(refs: _Refs, r: int, key: int, common: set[int]) -> bool:
    """Is a shared pair (canonical key ``key`` of reference task ``r``) evidence of a copy?"""
    return key in refs.test_keys[r] or (refs.bits[key] >= INFO_BITS and key not in common)


def _decide(hits: list[_PairHit], refs: _Refs, common: set[int]) -> tuple[str, list[int], float, str]:
    """(level, reference indices, similarity, why-not) for a candidate's pair hits: level "subset",
    "leaked_pair", or "" (reported, not dropped, with the reason)."""
    subset, leaked, best = [], [], 0.0
    for h in hits:
        decisive = [k for k in h.shared if _decisive(refs, h.ref, k, common)]
        bits = sum(refs.bits[k] * n for k, n in h.shared.items() if k not in common)
        if h.subset and (decisive or bits >= INFO_BITS):
            subset.append(h.ref)
        elif decisive:
            leaked.append(h.ref)
        best = max(best, h.sim)
    if subset:
        return "subset", subset, best, ""
    if leaked:
        return "leaked_pair", leaked, best, ""
    keys = {k for h in hits for k in h.shared}
    why = ("common pair" if keys & common else "trivial pair") + \
        f" ({max(refs.bits[k] for k in keys):.1f} bits, {len(keys & common)} common)"
    return "", [h.ref for h in hits], best, why


# --- verification on the grids ---------------------------------------------------------------------------
class _Forms:
    """Canonical forms of the pairs and grids of tasks of one ``PairBatch``, computed once each."""

    def __init__(self, pb: canon.PairBatch, offsets: np.ndarray) -> None:
        self.pb, self.off, self._pairs, self._grids = pb, offsets, {}, {}

    def raw(self, t: int, k: int = 0) -> Counter:
        """The multiset of the task's pairs under symmetry ``k``, as bytes (shapes + cells)."""
        g, m = self.pb.grids, self.pb.npairs
        out: Counter = Counter()
        for i in range(self.off[t], self.off[t + 1]):
            gs = [canon.grid_at(g, j) for j in (i, i + m)]
            out[b"|".join(b"-" if x is None else _raw(apply_symmetry(x, k)) for x in gs)] += 1
        return out

    def pairs(self, t: int) -> list[bytes]:
        if t not in self._pairs:
            g, m = self.pb.grids, self.pb.npairs
            self._pairs[t] = [canon.canonical_form(canon.grid_at(g, i), canon.grid_at(g, i + m))
                              for i in range(self.off[t], self.off[t + 1])]
        return self._pairs[t]

    def grids(self, t: int) -> set[bytes]:
        if t not in self._grids:
            g, m = self.pb.grids, self.pb.npairs
            lo, hi = self.off[t], self.off[t + 1]
            gs = [canon.grid_at(g, i) for i in (*range(lo, hi), *range(lo + m, hi + m))]
            self._grids[t] = {canon.canonical_form(x) for x in gs if not canon.is_trivial_grid(x)}
        return self._grids[t]


def _raw(g: np.ndarray) -> bytes:
    return np.array(g.shape, np.int64).tobytes() + g.tobytes()


def _verify(level: str, mine: _Forms, t: int, theirs: _Forms, r: int, decisive: set[bytes] | None,
            near_threshold: float) -> float | None:
    """The verified similarity of candidate ``t`` and reference ``r`` at ``level``, None if it fails."""
    if level == "near_duplicate":
        a, b = mine.grids(t), theirs.grids(r)
        j = len(a & b) / max(1, len(a | b))
        return j if j >= near_threshold and a & b else None
    if level == "exact":
        return 1.0 if mine.raw(t) == theirs.raw(r) else None
    if level == "symmetric":
        return 1.0 if any(mine.raw(t, k) == theirs.raw(r) for k in range(canon.NSYM)) else None
    a, b = Counter(mine.pairs(t)), Counter(theirs.pairs(r))
    shared = sum((a & b).values())
    sim = shared / (sum(a.values()) + sum(b.values()) - shared)
    if level == "recolored":  # the consistency of the recoloring across pairs rests on key3
        return 1.0 if a == b else None
    if level == "subset":
        return sim if a <= b or b <= a else None
    return sim if decisive is not None and set(a) & decisive else None


def _ranges(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(offsets[r], offsets[r+1])`` for each r in ``rows`` (vectorized)."""
    lo, n = offsets[rows], offsets[rows + 1] - offsets[rows]
    return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))


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


def _ref_overlaps(refs: _Refs) -> list[tuple[int, str, list[int], float, str]]:
    """Reference tasks equal to each other (levels 1-3) or sharing decisive pairs: reported, all kept."""
    out: list[tuple[int, str, list[int], float, str]] = []
    equal: set[tuple[int, int]] = set()
    for lvl, d in enumerate(refs.by_key):
        for members in d.values():
            for i in members[1:]:
                if (members[0], i) not in equal:
                    equal.add((members[0], i))
                    out.append((int(refs.rows[i]), LEVELS[lvl], [members[0]], 1.0, "reference duplicate (both kept)"))
    shared: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for k, members in refs.by_pair.items():
        for a, b in itertools.combinations(members, 2):
            shared[(a, b)][k] = min(refs.pair_keys[a][k], refs.pair_keys[b][k])
    for (a, b), c in sorted(shared.items()):
        if (a, b) in equal or not any(k in refs.test_keys[a] or k in refs.test_keys[b] or refs.bits[k] >= INFO_BITS
                                      for k in c):
            continue
        n, na, nb = sum(c.values()), sum(refs.pair_keys[a].values()), sum(refs.pair_keys[b].values())
        level = "subset" if n in (na, nb) else "leaked_pair"
        out.append((int(refs.rows[b]), level, [a], n / (na + nb - n), "reference partial overlap (both kept)"))
    return out


def _near_duplicates(cand_t: np.ndarray, cand_k: np.ndarray, refs: _Refs, threshold: float
                     ) -> dict[int, list[tuple[float, int]]]:
    """Rows whose set of non-trivial grid keys has Jaccard >= ``threshold`` with a reference task's:
    row -> [(similarity, reference index)], best first. An exact, vectorized join on the grid keys."""
    if not len(cand_t) or not len(refs.grid_k):
        return {}
    order = np.argsort(refs.grid_k, kind="stable")
    rk, rt = refs.grid_k[order], refs.grid_t[order]
    lo, hi = np.searchsorted(rk, cand_k, "left"), np.searchsorted(rk, cand_k, "right")
    n = hi - lo
    q = np.repeat(cand_t, n)
    r = rt[np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))]
    if not len(q):
        return {}
    pairs, shared = np.unique(np.stack([q, r], axis=1), axis=0, return_counts=True)
    qs, qn = np.unique(cand_t, return_counts=True)
    rn = np.bincount(refs.grid_t, minlength=len(refs.rows))
    size_q = qn[np.searchsorted(qs, pairs[:, 0])]
    jac = shared / (size_q + rn[pairs[:, 1]] - shared)
    near: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for (row, ref), j in zip(pairs.tolist(), jac.tolist(), strict=True):
        if j >= threshold:
            near[row].append((j, ref))
    for lst in near.values():
        lst.sort(key=lambda x: (-x[0], x[1]))
    return near


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
    # ids, sources and splits of the rows that can appear in a report (not of every row: a million strings)
    named = np.union1d(cand_rows, ref_rows)
    src, spl, ids = (dict(zip(named.tolist(), work.column(c).take(pa.array(named)).to_pylist(), strict=True))
                     for c in ("source", "split", "id"))

    excluded: dict[int, tuple[str, list[int], float]] = {}  # row -> (level, ref indices, similarity)
    reported: list[tuple[int, str, list[int], float, str]] = []
    refs = _build_refs(work, ref_rows, inv, pair_off, ref_keys) if len(ref_rows) else None
    if refs is not None:
        reported += _ref_overlaps(refs)

    # --- exact keys of the candidates, in chunks; levels 1-3 at once, pair hits for later ---------------
    keys = np.zeros((len(cand_rows), 3), np.uint64)
    pending: dict[int, list[_PairHit]] = {}
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
                        if ph := _pair_hits(ek, t, refs):
                            pending[row] = ph
                pr = _ranges(pair_off, rows)
                gparts.append(_grid_set(ek, rows[ek.pair_task], inv.in_trivial[pr], inv.out_trivial[pr]))
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
            level, hit_refs, sim, why = _decide(hits, refs, common)
            if level:
                excluded[row] = (level, hit_refs, sim)
                for h in hits:
                    decisive_keys[h.ref] = {k for k in refs.pair_keys[h.ref] if _decisive(refs, h.ref, k, common)}
            else:
                reported.append((row, "leaked_pair", hit_refs, sim, why))
        # --- level 6 ------------------------------------------------------------------------------------
        if gparts:
            ct, ck = (np.concatenate(x) for x in zip(*gparts, strict=True))
            open_ = ~np.isin(ct, np.fromiter(excluded, np.int64, len(excluded)))
            for row, lst in _near_duplicates(ct[open_], ck[open_], refs, near_threshold).items():
                excluded[row] = ("near_duplicate", [r for _, r in lst], lst[0][0])
        # --- verify every exclusion on the grids --------------------------------------------------------
        excluded, unverified = _verify_all(work, excluded, refs, decisive_keys, near_threshold)
        reported += unverified

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


def _verify_all(work: pa.Table, excluded: dict[int, tuple[str, list[int], float]], refs: _Refs,
                decisive_keys: dict[int, set[int]], near_threshold: float):
    """Keep the exclusions whose match holds on the canonical forms of the grids, with the verified
    similarity; the rest become ``unverified`` reports. Returns (excluded, reported rows)."""
    rows = np.array(sorted(excluded), np.int64)
    if not len(rows):
        return {}, []
    pb = canon.read_pairs(work.take(pa.array(rows)))
    mine = _Forms(pb, np.searchsorted(pb.task, np.arange(len(rows) + 1)))
    theirs = _Forms(refs.pb, refs.ek.pair_offsets)
    decisive_forms: dict[int, set[bytes]] = {}
    for r, ks in decisive_keys.items():
        lo = refs.ek.pair_offsets[r]
        decisive_forms[r] = {f for f, k in zip(theirs.pairs(r), refs.ek.pair_key[lo:].tolist(), strict=False)
                             if k in ks}
    out, unverified = {}, []
    for t, row in enumerate(rows.tolist()):
        level, hits, _ = excluded[row]
        ok = [(s, r) for r in hits
              if (s := _verify(level, mine, t, theirs, r, decisive_forms.get(r), near_threshold)) is not None]
        if ok:
            out[row] = (level, [r for _, r in ok], max(s for s, _ in ok))
        else:
            unverified.append((row, level, hits, 0.0, "unverified (signature collision, kept)"))
    return out, unverified
