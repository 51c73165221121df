"""Canonical keys of ARC tasks, computed vectorized straight from the Arrow columns.

Nothing here loops over cells (or, in the hot paths, over tasks) in Python. Grids are read from the
nested ``list<struct<input, output>>`` columns as one flat int8 buffer plus per-grid (start, h, w),
grouped by shape, and reduced with ``np.bincount`` over ``grid * 10 + color`` with per-position weights.

Two passes, both hashing into uint64 with wrap-around arithmetic (splitmix64 finalizer ``fmix``):

* **Invariants** (every task; one weighted bincount per cell): for each grid and color c,
  ``count_c * 2**37 + sum of orbit weights of the cells of color c``, where the orbit weight of a cell is
  a random 22-bit number of its orbit under the 8 symmetries (distance class from the centre). These are
  unchanged by any symmetry, and a color permutation only permutes them, so sorted over colors they give
  a grid / pair / task *signature* invariant under symmetry, recoloring and pair order. Equal signatures
  are only *candidates*; the exact pass decides.
* **Exact** (candidate tasks only; 8 weighted bincounts per cell): ``S[grid, c, s]`` = sum of random odd
  31-bit weights of the cells of color c at their position in the grid transformed by symmetry s (the
  weight table belongs to the transformed shape). Every key below is a function of ``S``:

  - exact grid hash under s: ``sum_c code_c * S[c, s]`` (the linear hash of the transformed grid);
  - pair up to recoloring: sum over present colors of ``mix(S_in[c, s], S_out[c, s])`` (the partition of
    the pair's cells into color classes);
  - task up to a consistent recoloring: each color gets a label = hash of its signature
    ``sum over pairs of mix(S_in[c, s], S_out[c, s])`` (unchanged by renaming colors), and each pair is
    hashed as the set of (label, in-mask, out-mask) triples of its colors. Colors with identical
    signatures across the whole task are interchangeable and share a label.

  Task keys are order-invariant sums over pairs; a symmetric key is the minimum over the 8 symmetries.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from arcforge.errors import DedupError
from arcforge.grids import apply_symmetry

NCOLORS = 10
NSYM = 8
SWAPS_SHAPE = np.array([False, True, False, True, False, False, True, True])  # symmetries transposing h, w
_ORBIT_BASE = 2.0**37  # count_c * 2**37 + orbit sum, packed in one float64 sum for grids of < 2**15 cells
PACKED_CELLS = 2**15  # grids this size or larger get counts and orbit sums separately (any size works)
_EXACT_F64 = 2.0**53  # float64 sums of integers stay exact below this

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
SALT_ORBIT, SALT_POS, SALT_SHAPE, SALT_COUNT, SALT_LABEL, SALT_NULL = (np.uint64(x) for x in range(11, 17))


def fmix(x: np.ndarray | int) -> np.ndarray:
    """A 64-bit mixer (xorshift-multiply, as in splitmix64), elementwise on uint64 with wrap-around."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(32))
        x = x * _C1
        x ^= x >> np.uint64(29)
        x *= _C2
        x ^= x >> np.uint64(32)
        return x


def mix2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An order-dependent hash of two uint64 arrays (broadcasting)."""
    with np.errstate(over="ignore"):
        return fmix(np.asarray(a, np.uint64) ^ fmix(np.asarray(b, np.uint64) + _GOLD))


# One random 64-bit code per color, for the exact (non-recolored) grid hash.
COLOR_CODES = fmix(np.arange(1, NCOLORS + 1, dtype=np.uint64) * _GOLD)


def shape_code(h: np.ndarray, w: np.ndarray, salt: np.uint64 = SALT_SHAPE) -> np.ndarray:
    """A hash of two non-negative integers (a shape, or two packed shapes: see ``_packed``)."""
    return mix2(np.asarray(h, np.uint64) ^ salt, np.asarray(w, np.uint64))


def _packed(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One uint64 per shape, distinct for every side below 2**32."""
    return np.asarray(h, np.uint64) << np.uint64(32) | np.asarray(w, np.uint64)


# --- reading grids from Arrow ------------------------------------------------------------------------------
@dataclass
class Grids:
    """Grids as one flat int8 buffer: grid k is ``values[start[k] : start[k] + h[k] * w[k]]`` (row-major).

    ``h == 0`` marks an absent grid (a hidden test output).
    """

    values: np.ndarray  # (cells,) int8
    start: np.ndarray  # (n,) int64
    h: np.ndarray  # (n,) int64
    w: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.h)


def _grids_from_arrow(arr: pa.Array) -> Grids:
    """Read a ``list<list<int8>>`` array (one grid per element) without copying cells."""
    n = len(arr)
    go = arr.offsets.to_numpy().astype(np.int64)
    # Slice the children to this array's range: ``.values`` ignores the parent's slice (a batch of a big
    # table would otherwise see, and copy, the whole column).
    rows = arr.values.slice(go[0], go[-1] - go[0])
    go = go - go[0]
    ro = rows.offsets.to_numpy().astype(np.int64)
    vals = rows.values.slice(ro[0], ro[-1] - ro[0]).to_numpy(zero_copy_only=False)
    ro = ro - ro[0]
    h = np.diff(go)
    if arr.null_count:
        h[arr.is_null().to_numpy(zero_copy_only=False)] = 0
    has = h > 0
    first = go[:-1][has]
    start = np.zeros(n, np.int64)
    w = np.zeros(n, np.int64)
    start[has] = ro[first]
    w[has] = ro[first + 1] - ro[first]
    # Rectangular grids occupy exactly h * w contiguous cells: check it in bulk.
    if has.any() and not np.array_equal(ro[go[1:][has]] - start[has], h[has] * w[has]):
        raise DedupError(
            "a grid is not rectangular (rows of different lengths)",
            hint="dedup expects validated tasks (arcforge.task.parse_task_object)",
        )
    return Grids(vals, start, h, w)


def _concat_grids(parts: list[Grids]) -> Grids:
    base = np.cumsum([0] + [len(p.values) for p in parts[:-1]])
    return Grids(
        np.concatenate([p.values for p in parts]) if parts else np.zeros(0, np.int8),
        np.concatenate([p.start + b for p, b in zip(parts, base, strict=True)]),
        np.concatenate([p.h for p in parts]),
        np.concatenate([p.w for p in parts]),
    )


@dataclass
class PairBatch:
    """All pairs of a batch of tasks, train and test together, task-major (train pairs first)."""

    task: np.ndarray  # (pairs,) int64 task index within the batch
    grids: Grids  # 2 * pairs grids: inputs [0, pairs), outputs [pairs, 2 * pairs)
    test: np.ndarray  # (pairs,) bool: the pair is a test pair of its task (keys ignore roles; reports use it)

    @property
    def npairs(self) -> int:
        return len(self.task)


def read_pairs(batch: pa.RecordBatch | pa.Table) -> PairBatch:
    """Flatten the train and test columns of a batch of TASK_SCHEMA rows into a ``PairBatch``."""
    n = batch.num_rows
    tasks, ins, outs, roles = [], [], [], []
    for col in ("train", "test"):
        arr = batch.column(col)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        po = arr.offsets.to_numpy().astype(np.int64)
        counts = np.diff(po)
        if arr.null_count:
            counts[arr.is_null().to_numpy(zero_copy_only=False)] = 0
        st = arr.values.slice(po[0], po[-1] - po[0])
        tasks.append(np.repeat(np.arange(n, dtype=np.int64), counts))
        # A null train list has equal offsets in practice; drop any pairs a null slot might span.
        keep = np.repeat(counts == np.diff(po), np.diff(po)) if arr.null_count else None
        gi, go = _grids_from_arrow(st.field("input")), _grids_from_arrow(st.field("output"))
        if keep is not None:
            gi, go = (Grids(g.values, g.start[keep], g.h[keep], g.w[keep]) for g in (gi, go))
        ins.append(gi)
        outs.append(go)
        roles.append(np.full(len(gi), col == "test"))
    task = np.concatenate(tasks)
    order = np.argsort(task, kind="stable")
    grids = _concat_grids([*ins, *outs])
    m = len(task)
    idx = np.concatenate([order, order + m])
    return PairBatch(
        task[order],
        Grids(grids.values, grids.start[idx], grids.h[idx], grids.w[idx]),
        np.concatenate(roles)[order],
    )


# --- per-shape reduction ----------------------------------------------------------------------------------
def _shape_groups(g: Grids) -> Iterator[tuple[np.ndarray, int, int]]:
    """(grid indices, h, w) for every shape present (absent grids skipped)."""
    key = g.h * 65536 + g.w
    order = np.argsort(key, kind="stable")
    skey = key[order]
    bounds = np.flatnonzero(np.diff(skey)) + 1
    for sel in np.split(order, bounds):
        if len(sel) and g.h[sel[0]] > 0:
            yield sel, int(g.h[sel[0]]), int(g.w[sel[0]])


def _gather(g: Grids, sel: np.ndarray, hw: int) -> np.ndarray:
    """(len(sel), hw) int8 cells of the grids ``sel`` (all of one shape)."""
    return g.values[g.start[sel][:, None] + np.arange(hw, dtype=np.int64)[None, :]]


def _color_sums(cells: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, k, 10) uint64: for each grid, weight column and color, the exact sum of the weights of its cells.

    ``weights`` (k, hw) float64 holds non-negative integers below 2**53. While every sum stays below 2**53
    the sums are float64 matrix products (one per color present: its 0/1 mask of the cells times the
    weights: faster than bincounts for several weight columns), exact in any order of summation; else
    bincounts over ``grid * 10 + color``, and for larger grids each weight is split into 16-bit halves
    summed apart, so every grid size is exact (up to 2**37 cells).
    """
    n, hw = cells.shape
    if weights.shape[0] > 1 and hw * float(weights.max(initial=0.0)) < _EXACT_F64:
        out = np.zeros((n, weights.shape[0], NCOLORS), np.float64)
        wt = np.ascontiguousarray(weights.T)  # (hw, k)
        present = np.bincount(cells.ravel(), minlength=NCOLORS)[1:NCOLORS] > 0
        step = max(1, _MATMUL_CELLS // max(1, hw))  # grids per product: bounded temporaries
        for c in (np.flatnonzero(present) + 1).tolist():
            for lo in range(0, n, step):
                out[lo : lo + step, :, c] = (cells[lo : lo + step] == c).astype(np.float64) @ wt
        # Only colors 1-9 are summed (0 is the usual background); color 0 gets the rest of the total.
        out[:, :, 0] = weights.sum(axis=1)[None, :] - out[:, :, 1:].sum(axis=2)
        return out.astype(np.uint64)
    nz = np.flatnonzero(cells)
    grid = nz // hw
    col = nz - grid * hw
    idx = grid * NCOLORS + cells.ravel()[nz]
    out = np.empty((n, weights.shape[0], NCOLORS), np.uint64)
    for k, wcol in enumerate(weights):
        if hw * float(wcol.max(initial=0.0)) < _EXACT_F64:
            parts = [(wcol, np.uint64(0))]
        else:
            wi = wcol.astype(np.uint64)
            parts = [
                ((wi & np.uint64(0xFFFF)).astype(np.float64), np.uint64(0)),
                ((wi >> np.uint64(16)).astype(np.float64), np.uint64(16)),
            ]
        acc = np.zeros((n, NCOLORS), np.uint64)
        with np.errstate(over="ignore"):
            for part, shift in parts:
                sums = np.bincount(idx, weights=part[col], minlength=n * NCOLORS).reshape(n, NCOLORS)
                sums[:, 0] = part.sum() - sums[:, 1:].sum(axis=1)
                acc += sums.astype(np.uint64) << shift
        out[:, k, :] = acc
    return out


# Cells per matrix product in ``_color_sums``: few enough that BLAS runs each product on one thread
# (OpenBLAS splits one over threads from m * n * k = 2**18 on; every worker process's threads would then
# compete for the same CPUs).
_MATMUL_CELLS = 30_000


def _color_counts(cells: np.ndarray) -> np.ndarray:
    """(n, 10) int64 cells of each color per grid."""
    n, hw = cells.shape
    rows = np.repeat(np.arange(n, dtype=np.int64) * NCOLORS, hw)
    return np.bincount(rows + cells.ravel(), minlength=n * NCOLORS).reshape(n, NCOLORS)


@functools.lru_cache(maxsize=4096)
def _orbit_weights(h: int, w: int) -> np.ndarray:
    """(1, h*w) float64: a random 22-bit weight of each cell's orbit under the 8 symmetries."""
    i = np.abs(2 * np.arange(h) - (h - 1))[:, None] * np.ones((1, w), np.int64)
    j = np.abs(2 * np.arange(w) - (w - 1))[None, :] * np.ones((h, 1), np.int64)
    if h > w:
        i, j = j, i
    elif h == w:
        i, j = np.minimum(i, j), np.maximum(i, j)
    key = (
        (np.uint64(min(h, w)) << np.uint64(48))
        | (np.uint64(max(h, w)) << np.uint64(32))
        | (i.astype(np.uint64) << np.uint64(16))
        | j.astype(np.uint64)
    )
    wt = (fmix(key ^ SALT_ORBIT) >> np.uint64(42)).astype(np.float64)
    return wt.reshape(1, h * w)


@functools.lru_cache(maxsize=4096)
def _sym_weights(h: int, w: int) -> np.ndarray:
    """(8, h*w) float64: for symmetry s, the odd 31-bit weight that each cell gets at its transformed place.

    The weight of a place depends only on the transformed shape, so ``S`` of a transformed grid equals ``S``
    of the original under the composed symmetry.
    """
    src = np.arange(h * w, dtype=np.int64).reshape(h, w)
    out = np.empty((NSYM, h * w))
    for s in range(NSYM):
        t = apply_symmetry(src, s)
        out[s, t.ravel()] = _place_weights(*t.shape)
    return out


@functools.lru_cache(maxsize=4096)
def _place_weights(h: int, w: int) -> np.ndarray:
    """(h*w,) float64: the odd 31-bit weight of each place of an h x w grid (row-major)."""
    key = (
        (np.uint64(h) << np.uint64(48)) | (np.uint64(w) << np.uint64(32)) | np.arange(h * w, dtype=np.uint64)
    )
    return ((fmix(key ^ SALT_POS) >> np.uint64(33)) | np.uint64(1)).astype(np.float64)


def color_stats(g: Grids) -> tuple[np.ndarray, np.ndarray]:
    """Invariant stats per grid, color: (n, 10) uint64 (0 where a color is absent), (n, 10) int64 counts."""
    out = np.zeros((len(g), NCOLORS), np.uint64)
    counts = np.zeros((len(g), NCOLORS), np.int64)
    for sel, h, w in _shape_groups(g):
        cells = _gather(g, sel, h * w)
        orbit = _orbit_weights(h, w)
        if h * w < PACKED_CELLS:  # count * 2**37 + orbit sum in one pass
            st = _color_sums(cells, orbit + _ORBIT_BASE)[:, 0, :]
            out[sel], counts[sel] = st, (st >> np.uint64(37)).astype(np.int64)
        else:  # a big grid: counts and orbit sums apart, mixed into one stat
            cnt = _color_counts(cells)
            st = mix2(cnt.astype(np.uint64), _color_sums(cells, orbit)[:, 0, :])
            out[sel], counts[sel] = st * (cnt > 0), cnt
    return out, counts


def sym_sums(g: Grids) -> np.ndarray:
    """(n, 10, 8) uint64 ``S[grid, color, symmetry]`` (0 where the color is absent)."""
    out = np.zeros((len(g), NCOLORS, NSYM), np.uint64)
    for sel, h, w in _shape_groups(g):
        out[sel] = (
            _color_sums(_gather(g, sel, h * w), _sym_weights(h, w)).transpose(0, 2, 1).astype(np.uint64)
        )
    return out


# --- invariants (every task) ------------------------------------------------------------------------------
# A grid is trivial (for the near-duplicate level) when it has at most TRIVIAL_CELLS cells, or at most
# TRIVIAL_CELLS cells that are not its most frequent color (single-color grids, a few dots).
TRIVIAL_CELLS = 4


@functools.lru_cache(maxsize=8)
def _log2_factorials(n: int) -> np.ndarray:
    """(n + 1,) float64: log2(k!) for k = 0..n."""
    return np.r_[0.0, np.cumsum(np.log2(np.arange(1, n + 1, dtype=np.float64)))]


def information_bits(counts: np.ndarray) -> np.ndarray:
    """Bits to tell a grid among all grids of its shape and color counts: log2 of the multinomial
    ``area! / prod(count_c!)``. ``counts`` (..., 10) -> (...). A one-color grid has 0 bits, one dot in a
    3x3 grid log2(9) = 3.2, a 15x15 grid with 2 marked cells 14.6."""
    area = counts.sum(axis=-1)
    n = int(area.max(initial=0))
    lf = _log2_factorials(max(64, 1 << max(0, n - 1).bit_length()))  # cached by power-of-two size
    return lf[area] - lf[counts].sum(axis=-1)


def minority_cells(counts: np.ndarray) -> np.ndarray:
    """Cells not of the most frequent color, per grid: ``counts`` (..., 10) -> (...)."""
    return counts.sum(axis=-1) - counts.max(axis=-1)


@dataclass
class Invariants:
    """Symmetry/recolor/pair-order invariant signatures of every task, pair and grid of a table."""

    task_inv: np.ndarray  # (tasks,) uint64
    pair_task: np.ndarray  # (pairs,) int64 row of the task in the table
    pair_inv: np.ndarray  # (pairs,) uint64
    pair_info: np.ndarray  # (pairs,) float64 bits: the input's, plus the output's up to as much again
    pair_test: np.ndarray  # (pairs,) bool test pair
    in_trivial: np.ndarray  # (pairs,) bool the input grid is trivial
    out_trivial: np.ndarray  # (pairs,) bool the output grid is trivial (or absent)
    grid_task: np.ndarray  # (grids,) int64 (present grids only)
    grid_inv: np.ndarray  # (grids,) uint64
    grid_trivial: np.ndarray  # (grids,) bool


def _batch_invariants(pb: PairBatch, ntasks: int) -> tuple[np.ndarray, ...]:
    m = pb.npairs
    st, counts = color_stats(pb.grids)  # (2m, 10) each
    g = pb.grids
    present = g.h > 0
    # grid signature: unordered shape + multiset over colors of the (count, orbit) stat
    with np.errstate(over="ignore"):
        ginv = shape_code(np.minimum(g.h, g.w), np.maximum(g.h, g.w)) + (fmix(st) * (st > 0)).sum(axis=1)
    minority = minority_cells(counts)
    area = g.h * g.w
    gtriv = (minority <= TRIVIAL_CELLS) | (area <= TRIVIAL_CELLS)
    info = information_bits(counts)
    # pair signature: the orientation-free shape of (in, out) + multiset over colors of (in stat, out stat)
    hi, wi, ho, wo = g.h[:m], g.w[:m], g.h[m:], g.w[m:]
    a = shape_code(_packed(hi, wi), _packed(ho, wo))
    b = shape_code(_packed(wi, hi), _packed(wo, ho))
    sin, sout = st[:m], st[m:]
    with np.errstate(over="ignore"):
        pinv = np.minimum(a, b) + (mix2(sin, sout) * ((sin > 0) | (sout > 0))).sum(axis=1)
    with np.errstate(over="ignore"):
        tinv = np.zeros(ntasks, np.uint64)
        np.add.at(tinv, pb.task, fmix(pinv))
        tinv += fmix(np.bincount(pb.task, minlength=ntasks).astype(np.uint64) ^ SALT_COUNT)
    gtask = np.concatenate([pb.task, pb.task])
    ptriv = (gtriv[:m], gtriv[m:] | ~present[m:])
    # A pair's information: its input's, plus its output's up to as much again (an output is mostly a
    # function of the input: a 2x2 input tiled into a 6x6 output holds the 2x2's few bits).
    pinfo = info[:m] + np.minimum(info[m:], info[:m])
    return (tinv, pinv, pinfo, pb.test, *ptriv, gtask[present], ginv[present], gtriv[present])


def batch_invariants(batch: pa.RecordBatch) -> tuple[np.ndarray, ...]:
    """The invariants of one batch's tasks (rows numbered from 0), as ``invariants`` joins them: the
    nine arrays of ``_batch_invariants`` then the pairs' task rows."""
    pb = read_pairs(batch)
    return (*_batch_invariants(pb, batch.num_rows), pb.task)


def invariants(
    table: pa.Table,
    *,
    batch_size: int = 20_000,
    progress=None,
    computed: Iterable[tuple[np.ndarray, ...]] | None = None,
) -> Invariants:
    """Signatures of every task of a TASK_SCHEMA table (processed in batches to bound memory).

    ``computed``: ``batch_invariants`` of ``table.to_batches(max_chunksize=batch_size)``, in order, made
    elsewhere (in worker processes); joined here as if computed in this loop."""
    parts: list[tuple[np.ndarray, ...]] = []
    ptask: list[np.ndarray] = []
    row = 0
    batches = table.to_batches(max_chunksize=batch_size)
    results = computed if computed is not None else map(batch_invariants, batches)
    for batch, res in zip(batches, results, strict=True):
        out, task = res[:9], res[9]
        parts.append(out)
        ptask.append(task + row)
        out[6][:] += row  # grid_task -> table row
        row += batch.num_rows
        if progress is not None:
            progress.advance("dedup.invariants", batch.num_rows)
    e64, eu, eb, ef = np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, bool), np.zeros(0)
    empty = (eu, eu, ef, eb, eb, eb, e64, eu, eb)
    cat = [np.concatenate([p[i] for p in parts]) if parts else empty[i] for i in range(9)]
    return Invariants(
        task_inv=cat[0],
        pair_task=np.concatenate(ptask) if ptask else e64,
        pair_inv=cat[1],
        pair_info=cat[2],
        pair_test=cat[3],
        in_trivial=cat[4],
        out_trivial=cat[5],
        grid_task=cat[6],
        grid_inv=cat[7],
        grid_trivial=cat[8],
    )


# --- exact keys (candidate tasks) -------------------------------------------------------------------------
@dataclass
class ExactKeys:
    """Exact keys of a set of tasks and of their pairs (see the module docstring)."""

    pair_task: np.ndarray  # (P,) task index (0-based, in the order given)
    p1: np.ndarray  # (P, 8) exact pair hash under each symmetry
    m: np.ndarray  # (P, 10, 8) mix(S_in, S_out) per color and symmetry, 0 where the color is absent
    sc: np.ndarray  # (P, 8) shape code of the pair under each symmetry
    pair_key: np.ndarray  # (P,) pair up to symmetry and (pair-local) recoloring
    key1: np.ndarray  # (T,) exact task key (pair order and roles ignored)
    key2: np.ndarray  # (T,) up to a symmetry
    key3: np.ndarray  # (T,) up to a symmetry and a consistent recoloring
    pair_offsets: np.ndarray  # (T+1,) pairs of task t are [pair_offsets[t], pair_offsets[t+1])
    pair_test: np.ndarray  # (P,) bool test pair
    grid_in: np.ndarray  # (P,) uint64 input grid up to symmetry and recoloring (``grid_keys``)
    grid_out: np.ndarray  # (P,) uint64 output grid likewise, 0 when absent


def grid_keys(s: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n,) uint64 key of each grid up to a symmetry and a color permutation, from ``S`` (n, 10, 8).

    A grid up to recoloring is the partition of its cells into color classes: the multiset of its
    per-color position hashes ``S[c, s]``; the key is the minimum over the 8 symmetries (with the
    transformed shape). 0 for an absent grid.
    """
    sw = SWAPS_SHAPE[None, :]
    h, w = h[:, None], w[:, None]
    with np.errstate(over="ignore"):
        parts = (fmix(s) * (s > 0)).sum(axis=1)  # (n, 8)
        k = mix2(shape_code(_packed(np.where(sw, w, h), np.where(sw, h, w)), SALT_NULL), parts).min(axis=1)
    return np.where(h[:, 0] > 0, k, np.uint64(0))


def exact_keys(table: pa.Table | pa.RecordBatch) -> ExactKeys:
    """Exact keys of every task of a (small: candidates only) TASK_SCHEMA table."""
    return exact_keys_of(read_pairs(table), np.arange(table.num_rows, dtype=np.int64))


def exact_keys_of(batch: PairBatch, tasks: np.ndarray) -> ExactKeys:
    """Exact keys of the tasks ``tasks`` (sorted indices) of a ``PairBatch``; cells are not copied."""
    sel = np.flatnonzero(np.isin(batch.task, tasks))
    g0 = batch.grids
    idx = np.r_[sel, sel + batch.npairs]
    pb = PairBatch(
        np.searchsorted(tasks, batch.task[sel]),
        Grids(g0.values, g0.start[idx], g0.h[idx], g0.w[idx]),
        batch.test[sel],
    )
    m = pb.npairs
    s = sym_sums(pb.grids)  # (2m, 10, 8)
    sin, sout = s[:m], s[m:]
    g = pb.grids
    present = (sin[:, :, 0] > 0) | (sout[:, :, 0] > 0)  # (m, 10)
    with np.errstate(over="ignore"):
        ein = (sin * COLOR_CODES[None, :, None]).sum(axis=1)  # (m, 8)
        eout = (sout * COLOR_CODES[None, :, None]).sum(axis=1)
        eout[g.h[m:] == 0] = SALT_NULL
        hi, wi, ho, wo = g.h[:m, None], g.w[:m, None], g.h[m:, None], g.w[m:, None]
        sw = SWAPS_SHAPE[None, :]
        sc = shape_code(
            _packed(np.where(sw, wi, hi), np.where(sw, hi, wi)),
            _packed(np.where(sw, wo, ho), np.where(sw, ho, wo)),
        )  # (m, 8)
        p1 = mix2(mix2(ein, eout), sc)
        mm = mix2(sin, sout) * present[:, :, None]
        p3 = mix2(mm.sum(axis=1), sc)
    counts = np.bincount(pb.task, minlength=len(tasks))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    gk = grid_keys(s, g.h, g.w)
    ek = ExactKeys(
        pb.task, p1, mm, sc, p3.min(axis=1), *(np.zeros(0, np.uint64),) * 3, offsets, pb.test, gk[:m], gk[m:]
    )
    ek.key1, ek.key2, ek.key3 = group_keys(ek, np.arange(m, dtype=np.int64), offsets)
    return ek


def group_keys(ek: ExactKeys, rows: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Task keys (key1, key2, key3) of groups of pairs: group k is ``rows[offsets[k]:offsets[k+1]]``.

    Groups may reuse pairs; used for whole tasks and for sub-tasks (the subset level).
    """
    counts = np.diff(offsets)
    ng = len(counts)
    if ng == 0:
        e = np.zeros(0, np.uint64)
        return e, e, e
    if (counts == 0).any():
        raise DedupError("a task has no pairs")
    starts = offsets[:-1]
    ncode = fmix(counts.astype(np.uint64) ^ SALT_COUNT)
    with np.errstate(over="ignore"):
        f1 = fmix(ek.p1[rows])  # (r, 8)
        sums = np.add.reduceat(f1, starts, axis=0)  # (ng, 8)
        key1 = fmix(sums[:, 0] + ncode)
        key2 = fmix(sums + ncode[:, None]).min(axis=1)
        mr = ek.m[rows]  # (r, 10, 8)
        sig = np.add.reduceat(mr, starts, axis=0)  # (ng, 10, 8) color signatures
        label = np.repeat(fmix(sig ^ SALT_LABEL), counts, axis=0)  # (r, 10, 8)
        pt = mix2((mix2(label, mr) * (mr != 0)).sum(axis=1), ek.sc[rows])  # (r, 8)
        key3 = fmix(np.add.reduceat(fmix(pt), starts, axis=0) + ncode[:, None]).min(axis=1)
    return key1, key2, key3


# --- canonical forms (verification on the grids themselves) ----------------------------------------------
@functools.lru_cache(maxsize=4096)
def _sym_index(h: int, w: int) -> np.ndarray:
    """(8, h*w) int64: row s lists the source cell of each cell of the grid transformed by symmetry s."""
    src = np.arange(h * w, dtype=np.int64).reshape(h, w)
    return np.stack([apply_symmetry(src, k).ravel() for k in range(NSYM)])


def canonical_form(*grids: np.ndarray | None) -> bytes:
    """The grids (one grid, or a pair's input and output) up to one symmetry and one color permutation
    applied to all of them: the smallest over the 8 symmetries of (shapes, cells with colors renamed in
    order of first appearance). Equal forms mean equal grids up to those transforms, with no hash between."""
    gs = [g for g in grids if g is not None]
    x = np.concatenate([g.ravel()[_sym_index(*g.shape)] for g in gs], axis=1)  # (8, cells)
    eq = x[:, None, :] == np.arange(NCOLORS, dtype=x.dtype)[None, :, None]  # (8, 10, cells)
    first = np.where(eq.any(axis=2), eq.argmax(axis=2), x.shape[1])  # (8, 10) first position of each color
    label = np.argsort(np.argsort(first, axis=1, kind="stable"), axis=1)  # (8, 10) new name of each color
    y = np.take_along_axis(label, x.astype(np.int64), axis=1).astype(np.int8)
    forms = []
    for k in range(NSYM):
        shapes = [(g.shape[1], g.shape[0]) if SWAPS_SHAPE[k] else g.shape for g in gs]
        head = np.array([len(grids), len(gs), *(v for sh in shapes for v in sh)], np.int64).tobytes()
        forms.append(head + y[k].tobytes())
    return min(forms)


def grid_at(g: Grids, k: int) -> np.ndarray | None:
    """Grid ``k`` as a (h, w) int8 view, None when absent."""
    h, w = int(g.h[k]), int(g.w[k])
    return g.values[g.start[k] : g.start[k] + h * w].reshape(h, w) if h else None


def is_trivial_grid(grid: np.ndarray | None) -> bool:
    """The near-duplicate level's rule (see ``TRIVIAL_CELLS``), on one grid."""
    if grid is None or grid.size <= TRIVIAL_CELLS:
        return True
    return int(grid.size - np.bincount(grid.ravel(), minlength=NCOLORS).max()) <= TRIVIAL_CELLS
