"""Decontamination (``--exclude-eval``): the levels at which a task copies an evaluation task, how a match
is decided and how it is verified on the grids before anything is removed. ``arcforge.build.dedup.run_dedup``
runs it, in the same pass as the within-collection de-duplication.

Rows whose (source, split) is in ``eval_splits`` are the evaluation *reference*; a task is the multiset of its
pairs: train and test roles and pair order never matter. With ``exclude_eval`` a non-reference task is
removed when it matches a reference task at one of these levels (the first that applies is reported):

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

7. ``lineage``: it shares nothing at levels 1-6, but its ``derived_from`` names a reference task (a
   RE-ARC generator or a BARC seed written from an evaluation task makes new grids of that same task).

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
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge.build import canon
from arcforge.grids import apply_symmetry

LEVELS: tuple[str, ...] = (
    "exact",
    "symmetric",
    "recolored",
    "subset",
    "leaked_pair",
    "near_duplicate",
    "lineage",
)
MAX_CHOICES = 256  # sub-tasks tried per (task, reference) pair at the subset level
INFO_BITS = 20.0  # a reference train pair with less information is never decisive on its own
COMMON_TASKS = 3  # ... nor one found in this many unrelated non-reference tasks
NEAR_THRESHOLD = 0.30  # chosen on one half of the evaluation tasks, scored on the other (bench_decon.py)

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
# Matches that are reported but remove nothing: trivial leaked pairs, reference tasks equal to each other.
REPORTED_SCHEMA = pa.schema([*EXCLUDED_SCHEMA, pa.field("reason", pa.string())])


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


def grid_set(ek: canon.ExactKeys, owner: np.ndarray, in_triv: np.ndarray, out_triv: np.ndarray):
    """Non-trivial grid keys of the pairs of ``ek`` (their owners ``owner``), unique per owner."""
    t = np.r_[owner[~in_triv], owner[~out_triv]]
    k = np.r_[ek.grid_in[~in_triv], ek.grid_out[~out_triv]]
    return _unique_pairs(t, k)


def build_refs(
    work: pa.Table,
    rows: np.ndarray,
    inv: canon.Invariants,
    pair_off: np.ndarray,
    ek: canon.ExactKeys | None = None,
) -> _Refs:
    pb = canon.read_pairs(work.take(pa.array(rows)))
    if ek is None:
        ek = canon.exact_keys_of(pb, np.arange(len(rows), dtype=np.int64))
    pr = ranges(pair_off, rows)
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
    gt, gk = grid_set(ek, ek.pair_task, inv.in_trivial[pr], inv.out_trivial[pr])
    return _Refs(rows, ek, pb, bits, by_key, by_pair, pair_keys, test_keys, gt, gk)


def _sub_task_matches(ek: canon.ExactKeys, lo: int, hi: int, want: Counter, key3: int) -> bool:
    """Do some of the pairs ``lo:hi`` of ``ek``, covering the canonical pair keys ``want``, form a task
    with recolored key ``key3``? Pairs with equal canonical keys (recolorings of each other) are ambiguous,
    so every choice is tried (up to ``MAX_CHOICES``), in one vectorized call."""
    pk = ek.pair_key[lo:hi].tolist()
    size = sum(want.values())
    choices = [c for c in itertools.combinations(range(hi - lo), size) if Counter(pk[i] for i in c) == want][
        :MAX_CHOICES
    ]
    if not choices:
        return False
    rows = np.asarray(choices, dtype=np.int64).ravel() + lo
    k3 = canon.group_keys(ek, rows, np.arange(len(choices) + 1, dtype=np.int64) * size)[2]
    return bool((k3 == np.uint64(key3)).any())


@dataclass
class PairHit:
    """A candidate task sharing pairs with one reference task (levels 4-5, decided once all are seen)."""

    ref: int  # reference index
    shared: Counter  # canonical pair keys shared
    subset: bool  # a sub-task verified as a consistent symmetry + recoloring (level 4)
    sim: float  # shared / union of the pair multisets


def pair_hits(ek: canon.ExactKeys, t: int, refs: _Refs) -> list[PairHit]:
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
        out.append(PairHit(r, shared, ok, n_shared / (n_mine + n_theirs - n_shared)))
    return out


def is_decisive(refs: _Refs, r: int, key: int, common: set[int]) -> bool:
    """Is a shared pair (canonical key ``key`` of reference task ``r``) evidence of a copy?"""
    return key in refs.test_keys[r] or (refs.bits[key] >= INFO_BITS and key not in common)


def decide(hits: list[PairHit], refs: _Refs, common: set[int]) -> tuple[str, list[int], float, str]:
    """(level, reference indices, similarity, why-not) for a candidate's pair hits: level "subset",
    "leaked_pair", or "" (reported, not dropped, with the reason)."""
    subset, leaked, best = _classify_hits(hits, refs, common)
    if subset:
        return "subset", subset, best, ""
    if leaked:
        return "leaked_pair", leaked, best, ""
    return "", [h.ref for h in hits], best, _why_kept(hits, refs, common)


def _classify_hits(hits: list[PairHit], refs: _Refs, common: set[int]) -> tuple[list[int], list[int], float]:
    """The reference tasks the candidate is a verified subset of (sharing decisive pairs or enough bits),
    those it shares a decisive pair with otherwise, and the best similarity."""
    subset, leaked, best = [], [], 0.0
    for h in hits:
        decisive = [k for k in h.shared if is_decisive(refs, h.ref, k, common)]
        bits = sum(refs.bits[k] * n for k, n in h.shared.items() if k not in common)
        if h.subset and (decisive or bits >= INFO_BITS):
            subset.append(h.ref)
        elif decisive:
            leaked.append(h.ref)
        best = max(best, h.sim)
    return subset, leaked, best


def _why_kept(hits: list[PairHit], refs: _Refs, common: set[int]) -> str:
    """Why shared pairs do not exclude a task: common or trivial pairs (their best bits, how many common)."""
    keys = {k for h in hits for k in h.shared}
    return (
        "common pair" if keys & common else "trivial pair"
    ) + f" ({max(refs.bits[k] for k in keys):.1f} bits, {len(keys & common)} common)"


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
            self._pairs[t] = [
                canon.canonical_form(canon.grid_at(g, i), canon.grid_at(g, i + m))
                for i in range(self.off[t], self.off[t + 1])
            ]
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


def _verify(
    level: str,
    mine: _Forms,
    t: int,
    theirs: _Forms,
    r: int,
    decisive: set[bytes] | None,
    near_threshold: float,
) -> float | None:
    """The verified similarity of candidate ``t`` and reference ``r`` at ``level``, None if it fails."""
    if level in ("near_duplicate", "exact", "symmetric"):
        return _verify_grids(level, mine, t, theirs, r, near_threshold)
    return _verify_pairs(level, mine, t, theirs, r, decisive)


def _verify_grids(
    level: str, mine: _Forms, t: int, theirs: _Forms, r: int, near_threshold: float
) -> float | None:
    """Levels on the grids themselves: the Jaccard of the non-trivial grids, or the same pairs (under a
    symmetry)."""
    if level == "near_duplicate":
        a, b = mine.grids(t), theirs.grids(r)
        j = len(a & b) / max(1, len(a | b))
        return j if j >= near_threshold and a & b else None
    if level == "exact":
        return 1.0 if mine.raw(t) == theirs.raw(r) else None
    return 1.0 if any(mine.raw(t, k) == theirs.raw(r) for k in range(canon.NSYM)) else None


def _verify_pairs(
    level: str, mine: _Forms, t: int, theirs: _Forms, r: int, decisive: set[bytes] | None
) -> float | None:
    """Levels on the canonical pairs: the same multiset, one inside the other, or a decisive pair shared."""
    a, b = Counter(mine.pairs(t)), Counter(theirs.pairs(r))
    shared = sum((a & b).values())
    sim = shared / (sum(a.values()) + sum(b.values()) - shared)
    if level == "recolored":  # the consistency of the recoloring across pairs rests on key3
        return 1.0 if a == b else None
    if level == "subset":
        return sim if a <= b or b <= a else None
    return sim if decisive is not None and set(a) & decisive else None


def ref_overlaps(refs: _Refs) -> list[tuple[int, str, list[int], float, str]]:
    """Reference tasks equal to each other (levels 1-3) or sharing decisive pairs: reported, all kept."""
    out: list[tuple[int, str, list[int], float, str]] = []
    equal: set[tuple[int, int]] = set()
    for lvl, d in enumerate(refs.by_key):
        for members in d.values():
            for i in members[1:]:
                if (members[0], i) not in equal:
                    equal.add((members[0], i))
                    out.append(
                        (int(refs.rows[i]), LEVELS[lvl], [members[0]], 1.0, "reference duplicate (both kept)")
                    )
    shared: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for k, members in refs.by_pair.items():
        for a, b in itertools.combinations(members, 2):
            shared[(a, b)][k] = min(refs.pair_keys[a][k], refs.pair_keys[b][k])
    for (a, b), c in sorted(shared.items()):
        if (a, b) in equal or not any(
            k in refs.test_keys[a] or k in refs.test_keys[b] or refs.bits[k] >= INFO_BITS for k in c
        ):
            continue
        n, na, nb = sum(c.values()), sum(refs.pair_keys[a].values()), sum(refs.pair_keys[b].values())
        level = "subset" if n in (na, nb) else "leaked_pair"
        out.append(
            (int(refs.rows[b]), level, [a], n / (na + nb - n), "reference partial overlap (both kept)")
        )
    return out


def near_duplicates(
    cand_t: np.ndarray, cand_k: np.ndarray, refs: _Refs, threshold: float
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


def verify_all(
    work: pa.Table,
    excluded: dict[int, tuple[str, list[int], float]],
    refs: _Refs,
    decisive_keys: dict[int, set[int]],
    near_threshold: float,
):
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
        decisive_forms[r] = {
            f for f, k in zip(theirs.pairs(r), refs.ek.pair_key[lo:].tolist(), strict=False) if k in ks
        }
    out, unverified = {}, []
    for t, row in enumerate(rows.tolist()):
        level, hits, _ = excluded[row]
        ok = [
            (s, r)
            for r in hits
            if (s := _verify(level, mine, t, theirs, r, decisive_forms.get(r), near_threshold)) is not None
        ]
        if ok:
            out[row] = (level, [r for _, r in ok], max(s for s, _ in ok))
        else:
            unverified.append((row, level, hits, 0.0, "unverified (signature collision, kept)"))
    return out, unverified


def lineage_rows(work: pa.Table, is_ref: np.ndarray, ref_rows: np.ndarray) -> dict[int, list[int]]:
    """Non-reference rows whose ``derived_from`` names a reference task: row -> positions in ``ref_rows``."""
    col = work.column("derived_from")
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero((lengths > 0) & ~is_ref)
    if not len(rows) or not len(ref_rows):
        return {}
    ref_pos = {task_id: i for i, task_id in enumerate(work.column("id").take(pa.array(ref_rows)).to_pylist())}
    out = {}
    for row, derived in zip(rows.tolist(), col.take(pa.array(rows)).to_pylist(), strict=True):
        hits = sorted({ref_pos[d] for d in derived if d in ref_pos})
        if hits:
            out[row] = hits
    return out


def ranges(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(offsets[r], offsets[r+1])`` for each r in ``rows`` (vectorized)."""
    lo, n = offsets[rows], offsets[rows + 1] - offsets[rows]
    return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
