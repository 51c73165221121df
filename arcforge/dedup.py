"""Decontamination (``--exclude-eval``) and within-collection de-duplication.

The build calls ``run_dedup`` once on the table of all validated tasks. Rows whose (source, split) is in
``eval_splits`` are the evaluation *reference*: they are never removed. ``extra_reference`` (tasks from
``--eval-local``) is reference-only and never written. A task is the multiset of its pairs: train and test
roles and pair order never matter. With ``exclude_eval`` a non-reference task is removed when it matches a
reference task at one of these levels (the first that applies is reported):

1. ``exact``: the same multiset of (input, output) pairs.
2. ``symmetric``: equal after one of the 8 rotations/reflections applied to every grid of the task.
3. ``recolored``: equal after one color permutation applied consistently to every grid of the task
   (0 may move or stay: a 0-fixed recoloring is a special case), combined with any symmetry of level 2.
4. ``subset``: its pairs are a strict subset or superset of the reference task's pairs (a dropped or
   added pair), with one consistent symmetry + recoloring over the shared pairs (verified on the sub-task).
5. ``leaked_pair``: it contains a non-trivial pair equal to some pair (train or test) of a reference task
   up to a symmetry and a recoloring of that pair. A pair is *trivial* when its input has at most
   ``TRIVIAL_CELLS`` (4) cells, or its input and output together have at most 4 cells that are not the
   most frequent color of their grid (single-color grids, 1x1 grids, a handful of dots, a tiled 2x2
   checkerboard); trivial matches are *reported*, not dropped.
6. ``near_duplicate``: the Jaccard similarity of the sets of its non-trivial grids (inputs and outputs,
   each taken up to symmetry and recoloring; a grid is trivial with at most 4 cells or at most 4
   non-background cells) with a reference task's is at least ``NEAR_THRESHOLD`` (0.33: a third of the
   distinct grids shared, e.g. every input with edited outputs); candidates come from MinHash/LSH
   (``arcforge.minhash``) and are verified with the exact Jaccard value. The threshold was chosen on the
   labeled probe set (``benchmarks/bench_dedup.py probe``).

Within the collection (always on), non-reference tasks equal at levels 1-3 are kept once: the first by
``priority`` (source order; unlisted sources after, alphabetically), ties by id; the rest go to
``duplicates`` with the level that links them to the kept task. Excluded tasks are removed first.
Reference tasks equal to each other (ARC-AGI-2 evaluation holds 6 ARC-AGI-1 evaluation tasks) all stay
and are listed in ``reported``.

How: every task gets symmetry/recolor/order-invariant signatures in one vectorized pass
(``arcforge.canon.invariants``); only tasks whose signature collides with another task, or that share a
pair signature or grids with a reference task, get exact keys (``arcforge.canon.exact_keys``). Joins are
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

from arcforge import canon, minhash
from arcforge.canon import TRIVIAL_CELLS
from arcforge.progress import NULL_PROGRESS, Progress

LEVELS: tuple[str, ...] = ("exact", "symmetric", "recolored", "subset", "leaked_pair", "near_duplicate")
MAX_CHOICES = 256  # sub-tasks tried per (task, reference) pair at the subset level
NEAR_THRESHOLD = 0.33  # measured on the probe set, see the README (section dedup)
__all__ = ["DUPLICATES_SCHEMA", "EXCLUDED_SCHEMA", "LEVELS", "NEAR_THRESHOLD", "REPORTED_SCHEMA",
           "TRIVIAL_CELLS", "DedupResult", "run_dedup"]

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
    """Exact keys of the reference tasks and lookups from each key to reference rows."""

    rows: np.ndarray  # reference row numbers in the working table
    ek: canon.ExactKeys
    by_key: list[dict[int, list[int]]]  # level 1..3: key -> reference indices
    by_pair: dict[int, list[int]]  # canonical pair key -> reference indices (one per pair)
    pair_keys: list[Counter]  # per reference index: multiset of canonical pair keys


def _build_refs(work: pa.Table, rows: np.ndarray) -> _Refs:
    ek = canon.exact_keys(work.take(pa.array(rows)))
    by_key: list[dict[int, list[int]]] = []
    for keys in (ek.key1, ek.key2, ek.key3):
        d: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(keys.tolist()):
            d[k].append(i)
        by_key.append(d)
    by_pair: dict[int, list[int]] = defaultdict(list)
    pair_keys = []
    pk = ek.pair_key.tolist()
    for t in range(len(rows)):
        c = Counter(pk[ek.pair_offsets[t] : ek.pair_offsets[t + 1]])
        pair_keys.append(c)
        for k in c:
            by_pair[k].append(t)
    return _Refs(rows, ek, by_key, by_pair, pair_keys)


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


def _pair_level(ek: canon.ExactKeys, t: int, refs: _Refs, ptriv: np.ndarray) -> tuple[str, list[int], float]:
    """Level 4/5 matches of candidate task ``t`` (an index into ``ek``): (level, reference indices, sim).

    ``ptriv`` flags trivial pairs of ``ek``. Level "" when no pair matches; "trivial" when only trivial.
    """
    lo, hi = ek.pair_offsets[t], ek.pair_offsets[t + 1]
    pk = ek.pair_key[lo:hi].tolist()
    mine = Counter(pk)
    nontriv = {k for k, tr in zip(pk, ptriv[lo:hi].tolist(), strict=True) if not tr}
    hits: dict[int, int] = {}
    for k in mine:
        for r in refs.by_pair.get(k, ()):
            hits[r] = 1
    subset, leaked, trivial, best = [], [], [], 0.0
    for r in hits:
        theirs = refs.pair_keys[r]
        shared = sum((mine & theirs).values())
        sim = shared / (sum(mine.values()) + sum(theirs.values()) - shared)
        n_mine, n_theirs = hi - lo, sum(theirs.values())
        ok = False
        if shared == n_mine and n_mine < n_theirs:  # a dropped pair: verify on a reference sub-task
            rl, rh = refs.ek.pair_offsets[r], refs.ek.pair_offsets[r + 1]
            ok = _sub_task_matches(refs.ek, rl, rh, mine, int(ek.key3[t]))
        elif shared == n_theirs and n_mine > n_theirs:  # an added pair: verify on our sub-task
            ok = _sub_task_matches(ek, lo, hi, theirs, int(refs.ek.key3[r]))
        if ok:
            subset.append(r)
        elif any(k in theirs for k in nontriv):
            leaked.append(r)
        else:
            trivial.append(r)
        best = max(best, sim)
    if subset:
        return "subset", subset, best
    if leaked:
        return "leaked_pair", leaked, best
    if trivial:
        return "trivial", trivial, best
    return "", [], 0.0


def _match_eval(ek: canon.ExactKeys, rows: np.ndarray, keys: np.ndarray, refs: _Refs, ptriv: np.ndarray,
                excluded: dict, reported: list) -> None:
    """Levels 1-5 for candidate tasks ``rows`` (their exact keys ``ek``, ``keys``); fills the reports."""
    k = [keys[:, lvl] for lvl in range(3)]
    for t, row in enumerate(rows.tolist()):
        for lvl in range(3):
            hits = refs.by_key[lvl].get(int(k[lvl][t]))
            if hits:
                excluded[row] = (LEVELS[lvl], hits, 1.0)
                break
        else:
            level, hits, sim = _pair_level(ek, t, refs, ptriv)
            if level == "trivial":
                reported.append((row, "leaked_pair", hits, sim, "trivial pair"))
            elif level:
                excluded[row] = (level, hits, sim)


def _grid_sets(inv: canon.Invariants) -> tuple[np.ndarray, np.ndarray]:
    """Non-trivial grid signatures and their task rows, sorted by task, unique per task."""
    keep = ~inv.grid_trivial
    t, g = inv.grid_task[keep], inv.grid_inv[keep]
    order = np.lexsort((g, t))
    t, g = t[order], g[order]
    first = np.r_[True, (t[1:] != t[:-1]) | (g[1:] != g[:-1])]
    return t[first], g[first]


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
) -> DedupResult:
    """Remove evaluation copies (with ``exclude_eval``) and within-collection duplicates; see the module doc."""
    progress = progress or NULL_PROGRESS
    n = table.num_rows
    work = table
    if extra_reference is not None and extra_reference.num_rows:
        work = pa.concat_tables([table, extra_reference.select(table.column_names).cast(table.schema)])
    ntot = work.num_rows
    src = work.column("source").to_numpy(zero_copy_only=False).astype(str)
    spl = work.column("split").to_numpy(zero_copy_only=False).astype(str)
    ids = work.column("id").to_numpy(zero_copy_only=False).astype(str)
    keys = pc.binary_join_element_wise(work.column("source"), work.column("split"), "/")
    wanted = pa.array(sorted(f"{a}/{b}" for a, b in eval_splits), pa.string())
    is_ref = pc.is_in(keys, value_set=wanted).to_numpy(zero_copy_only=False).astype(bool)
    is_ref[n:] = True
    nonref = ~is_ref

    progress.start("dedup.invariants", "dedup: signatures", total=ntot)
    inv = canon.invariants(work, batch_size=chunk, progress=progress)
    progress.finish("dedup.invariants")
    pair_off = np.searchsorted(inv.pair_task, np.arange(ntot + 1))

    # --- candidates -----------------------------------------------------------------------------------
    _, tgrp, tcnt = np.unique(inv.task_inv, return_inverse=True, return_counts=True)
    refc = np.bincount(tgrp[is_ref], minlength=len(tcnt))
    cand = nonref & (tcnt - refc >= 2)[tgrp]
    if exclude_eval:
        cand |= nonref & (refc > 0)[tgrp]
        ref_pinv = inv.pair_inv[is_ref[inv.pair_task]]
        hit = np.isin(inv.pair_inv, ref_pinv) & nonref[inv.pair_task]
        cand[inv.pair_task[hit]] = True
    cand_rows = np.flatnonzero(cand)
    ref_rows = np.flatnonzero(is_ref)

    excluded: dict[int, tuple[str, list[int], float]] = {}  # row -> (level, ref indices, similarity)
    reported: list[tuple[int, str, list[int], float, str]] = []
    refs = _build_refs(work, ref_rows) if exclude_eval or len(ref_rows) else None
    if refs is not None:  # reference tasks equal to each other: reported, all kept
        for lvl, d in enumerate(refs.by_key):
            for members in d.values():
                for i in members[1:]:
                    if lvl == 0 or refs.ek.key1[i] != refs.ek.key1[members[0]]:
                        reported.append((int(ref_rows[i]), LEVELS[lvl], [members[0]], 1.0,
                                         "reference duplicate (both kept)"))

    # --- exact keys of the candidates, in chunks --------------------------------------------------------
    keys = np.zeros((len(cand_rows), 3), np.uint64)
    progress.start("dedup.exact", "dedup: exact keys", total=len(cand_rows))
    base = 0
    for batch in work.to_batches(max_chunksize=chunk):
        lo, hi = np.searchsorted(cand_rows, [base, base + batch.num_rows])
        rows = cand_rows[lo:hi]
        if len(rows):
            ek = canon.exact_keys_of(canon.read_pairs(batch), rows - base)
            keys[lo:hi] = np.stack([ek.key1, ek.key2, ek.key3], axis=1)
            if exclude_eval and refs is not None:
                _match_eval(ek, rows, keys[lo:hi], refs, inv.pair_trivial[_ranges(pair_off, rows)],
                            excluded, reported)
        base += batch.num_rows
        progress.advance("dedup.exact", len(rows))
    progress.finish("dedup.exact")

    # --- near duplicates (MinHash/LSH over sets of non-trivial grid signatures) -------------------------
    if exclude_eval and len(ref_rows):
        gt, gv = _grid_sets(inv)
        ref_sel = is_ref[gt]
        # Only tasks sharing at least one grid signature with a reference task can be similar to it.
        shares = np.isin(gv, gv[ref_sel]) & ~ref_sel
        q_rows = np.unique(gt[shares])
        q_rows = q_rows[~np.isin(q_rows, np.fromiter(excluded, np.int64, len(excluded)))]
        q_sel = np.isin(gt, q_rows)
        sig_q = minhash.signatures(gv[q_sel], np.searchsorted(q_rows, gt[q_sel]), len(q_rows))
        sig_r = minhash.signatures(gv[ref_sel], np.searchsorted(ref_rows, gt[ref_sel]), len(ref_rows))
        qi, ri = minhash.candidates(minhash.band_keys(sig_q), minhash.band_keys(sig_r))
        open_rows = q_rows
        if len(qi):
            gsets = defaultdict(set)
            need = set(open_rows[qi].tolist()) | set(ref_rows[ri].tolist())
            sel = np.isin(gt, np.fromiter(need, np.int64, len(need)))
            for t, g in zip(gt[sel].tolist(), gv[sel].tolist(), strict=True):
                gsets[t].add(g)
            near: dict[int, list[tuple[float, int]]] = defaultdict(list)
            for q, r in zip(open_rows[qi].tolist(), ri.tolist(), strict=True):
                a, b = gsets[q], gsets[int(ref_rows[r])]
                j = len(a & b) / len(a | b)
                if j >= near_threshold:
                    near[q].append((j, r))
            for q, lst in near.items():
                lst.sort(key=lambda x: (-x[0], x[1]))
                excluded[q] = ("near_duplicate", [r for _, r in lst], lst[0][0])

    # --- within-collection duplicates among what is left ------------------------------------------------
    dups: list[tuple[int, int, str]] = []  # (kept row, dropped row, level)
    left = np.array([r not in excluded for r in cand_rows.tolist()], bool).reshape(-1)
    lrows, lkeys = cand_rows[left], keys[left]
    rank = _priority_rank(src[lrows].tolist(), priority)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(lkeys[:, 2].tolist()):
        groups[k].append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (rank[i], ids[lrows[i]]))
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
    ref_ids = ids[ref_rows] if len(ref_rows) else np.zeros(0, str)
    ref_src = src[ref_rows] if len(ref_rows) else np.zeros(0, str)

    def match_row(row: int, level: str, hits: list[int], sim: float) -> dict:
        return {"id": ids[row], "source": src[row], "split": spl[row], "eval_ids": [str(ref_ids[h]) for h in hits],
                "level": level, "similarity": float(sim), "eval_sources": [str(ref_src[h]) for h in hits]}

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


