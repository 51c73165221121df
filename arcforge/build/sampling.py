"""More tasks per generator than its examples make one after the other: examples sampled into several tasks.

``--tasks-per-generator T`` asks for T tasks of ``size = k + 1`` examples from each generator's n kept
examples. Task ``c`` below ``n // size`` is the c-th run of ``size`` consecutive examples, exactly the
tasks the build makes without the option (``arcforge.sources.generate.group_tasks``). The tasks after
those draw ``size`` distinct examples each, deterministically: one ``numpy.random.default_rng`` per
generator, seeded by (source, key) alone, draws blocks of ``BLOCK`` random orders of the n examples and
takes the first ``size`` of each (the last of them is the test pair); a draw whose *set* of examples an
earlier task already holds is skipped. The tasks of a generator thus depend only on (source, key, n, T,
k), never on the worker or the chunk that runs it, and the first T tasks are the same for any larger T
(while the sets are drawn, below).

Two tasks of one generator never hold the same set of examples, and a generator's inputs are all
distinct (upstream's ``repeat`` filter), so no two of its tasks are the same multiset of pairs: the
build's dedup (which ignores roles and order) counts them as distinct tasks unless a symmetry or a
recoloring maps one onto another (then it drops one as usual). When T asks for more than half of all
C(n, size) sets, every set is listed and shuffled instead of drawn (no long run of rejected draws); a
generator makes at most C(n, size) tasks.
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np

BLOCK = 1024  # random orders drawn at a time (fixed: the draws do not depend on T)


def sampling_seed(source: str, key: str) -> int:
    """The seed of generator ``key``'s sampled tasks (63 bits of sha256, stable across versions)."""
    digest = hashlib.sha256(f"{source}\0{key}\0tasks".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def task_indices(n: int, size: int, wanted: int, seed: int) -> list[tuple[int, ...]]:
    """The example indices of a generator's tasks: ``min(wanted, C(n, size))`` tuples of ``size`` distinct
    indices in ``range(n)`` (the last one the test pair), no two with the same set (module docstring)."""
    if size <= 0 or n < size or wanted <= 0:
        return []
    runs = min(wanted, n // size)
    out = [tuple(range(c * size, (c + 1) * size)) for c in range(runs)]
    wanted = min(wanted, math.comb(n, size))
    if wanted <= runs:
        return out
    seen = {frozenset(t) for t in out}
    rng = np.random.default_rng(seed)
    if 2 * wanted > math.comb(n, size):
        return out + _enumerated(n, size, wanted - runs, seen, rng)
    while len(out) < wanted:
        orders = np.argsort(rng.random((BLOCK, n)), axis=1, kind="stable")[:, :size]
        for row in orders.tolist():
            s = frozenset(row)
            if s not in seen:
                seen.add(s)
                out.append(tuple(row))
                if len(out) == wanted:
                    break
    return out


def _enumerated(
    n: int, size: int, more: int, seen: set[frozenset[int]], rng: np.random.Generator
) -> list[tuple[int, ...]]:
    """``more`` sets not in ``seen``: all ``size``-sets of ``range(n)`` shuffled, each in a random order."""
    rest = [c for c in itertools.combinations(range(n), size) if frozenset(c) not in seen]
    picked = rng.permutation(len(rest))[:more]
    return [tuple(int(i) for i in rng.permutation(rest[j])) for j in picked.tolist()]
