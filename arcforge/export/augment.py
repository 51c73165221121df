"""TRM's task augmentation, vectorized: a dihedral transform x a color permutation that keeps 0 fixed.

The meaning is that of TRM's ``dataset/build_arc_dataset.py`` (``aug``, ``convert_single_arc_puzzle``):

- an augmentation is ``(t, perm)``: ``t`` one of TRM's 8 dihedral transforms (numbered as in its
  ``dataset/common.py``: 0 identity, 1-3 ``rot90`` k=1-3, 4 ``fliplr``, 5 ``flipud``, 6 transpose,
  7 anti-transpose) and ``perm`` a permutation of the colors 1-9 (0 stays 0); a grid ``g`` becomes
  ``dihedral(perm[g], t)``;
- a task keeps its original version first, then up to ``num_aug`` augmented versions drawn at random,
  at most ``5 * num_aug`` draws; a draw whose augmented task holds the same multiset of (input, output)
  pairs as one already kept is dropped (TRM compares sha256 hashes of the sorted pairs; here the sorted
  pairs' bytes themselves are compared);
- an augmented version is named ``<id>|||t<t>|||<perm as 10 digits>`` (the original keeps ``<id>``).

Draws come from a generator seeded by ``(seed, task id)``, so a task's augmentations do not depend on
which other tasks are exported, nor on their order. The random stream is numpy's, not the one TRM's
builder draws from its global seed, so the augmentations chosen differ from the builder's; their kind,
number and naming do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

MAX_SIDE = 30  # TRM's ARCMaxGridSize
RETRIES_FACTOR = 5  # TRM's ARCAugmentRetriesFactor
ID_SEPARATOR = "|||"  # TRM's PuzzleIdSeparator
TRANSPOSING = (1, 3, 6, 7)  # the transforms that swap rows and columns
_CHUNK = 1024  # candidates compared at a time (bounds the memory of one task)

Pairs = Sequence[tuple[np.ndarray, np.ndarray]]  # (input, output) grids, uint8


def dihedral(grid: np.ndarray, t: int) -> np.ndarray:
    """TRM's ``dihedral_transform(grid, t)`` (a view)."""
    if t == 1:
        return grid.T[::-1]
    if t == 2:
        return grid[::-1, ::-1]
    if t == 3:
        return grid[::-1].T
    if t == 4:
        return grid[:, ::-1]
    if t == 5:
        return grid[::-1]
    if t == 6:
        return grid.T
    if t == 7:
        return grid.T[::-1, ::-1]
    return grid


def task_rng(seed: int, task_id: str) -> np.random.Generator:
    """The generator of one task's random choices: depends on the seed and the task's id only."""
    digest = hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def aug_name(base: str, t: int, perm: np.ndarray) -> str:
    """TRM's puzzle name of an augmented version (``base`` for the identity)."""
    if t == 0 and bool((perm == np.arange(10)).all()):
        return base
    return f"{base}{ID_SEPARATOR}t{t}{ID_SEPARATOR}{(perm.astype(np.uint8) + 48).tobytes().decode('ascii')}"


def identity() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(1, np.int64), np.arange(10, dtype=np.uint8)[None]


def draw(num_aug: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``RETRIES_FACTOR * num_aug`` random augmentations: transforms (n,) and color maps (n, 10)."""
    n = RETRIES_FACTOR * num_aug
    ts = rng.integers(0, 8, n)
    colors = rng.permuted(np.broadcast_to(np.arange(1, 10, dtype=np.uint8), (n, 9)), axis=1)
    return ts, np.concatenate([np.zeros((n, 1), np.uint8), colors], axis=1)


def augmentations(pairs: Pairs, num_aug: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The task's versions: transforms (k,) and color maps (k, 10), the identity first, then up to
    ``num_aug`` distinct augmentations in the order they were drawn."""
    ts, perms = identity()
    if num_aug <= 0:
        return ts, perms
    cand_t, cand_p = draw(num_aug, rng)
    used = np.unique(np.concatenate([g.ravel() for p in pairs for g in p]))
    used = used[used != 0]
    # Draws that agree on the transform and on the colors the task uses give the same task: keep the first.
    digits = np.column_stack([cand_t, cand_p[:, used]]).astype(np.int64)
    _, first = np.unique(digits @ (10 ** np.arange(digits.shape[1], dtype=np.int64)), return_index=True)
    first.sort()
    cand_t, cand_p = cand_t[first], cand_p[first]
    keys = _Keys(pairs)
    seen = {keys.of(np.zeros(1, np.int64), np.arange(10, dtype=np.uint8)[None])[0]}
    kept: list[int] = []
    for lo in range(0, len(cand_t), _CHUNK):
        for i, key in enumerate(keys.of(cand_t[lo : lo + _CHUNK], cand_p[lo : lo + _CHUNK]), start=lo):
            if key not in seen:
                seen.add(key)
                kept.append(i)
                if len(kept) == num_aug:
                    break
        if len(kept) == num_aug:
            break
    idx = np.asarray(kept, dtype=np.int64)
    return np.concatenate([ts, cand_t[idx]]), np.concatenate([perms, cand_p[idx]])


class _Keys:
    """Content keys of augmented versions of one task: equal iff equal multisets of (input, output) pairs."""

    def __init__(self, pairs: Pairs) -> None:
        grids = [g for p in pairs for g in p]
        self.flat = [
            np.concatenate([dihedral(g, t).ravel() for g in grids]).astype(np.intp) for t in range(8)
        ]
        bounds = np.cumsum([0] + [p[0].size + p[1].size for p in pairs])
        self.spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        self.prefix = [
            [_shape_bytes(dihedral(i, t).shape, dihedral(o, t).shape) for i, o in pairs] for t in range(8)
        ]

    def of(self, ts: np.ndarray, perms: np.ndarray) -> list[bytes]:
        mapped = np.empty((len(ts), self.flat[0].size), np.uint8)
        for t in np.unique(ts).tolist():
            rows = np.flatnonzero(ts == t)
            mapped[rows] = perms[rows][:, self.flat[t]]
        out = []
        for t, row in zip(ts.tolist(), mapped, strict=True):
            raw = row.tobytes()
            out.append(
                b"".join(sorted(p + raw[a:b] for p, (a, b) in zip(self.prefix[t], self.spans, strict=True)))
            )
        return out


def _shape_bytes(a: tuple[int, ...], b: tuple[int, ...]) -> bytes:
    return b"".join(int(x).to_bytes(2, "little") for x in (*a, *b))


def encode(
    pairs: Pairs, ts: np.ndarray, perms: np.ndarray, rng: np.random.Generator, *, translate: bool
) -> tuple[np.ndarray, np.ndarray]:
    """TRM's ``np_grid_to_seq_translational_augment`` for every version x pair: inputs and labels, each
    ``(k * len(pairs), 900)`` uint8, version-major. Cells are color + 2 on a 30x30 canvas of 0 (pad), with
    1 (end) on the row below and the column right of the grid. With ``translate`` every pair but one per
    version (chosen at random) is placed at a random offset that keeps both its grids on the canvas."""
    k, e = len(ts), len(pairs)
    trans = np.isin(ts, TRANSPOSING)
    sides = np.array([[max(i.shape[0], o.shape[0]), max(i.shape[1], o.shape[1])] for i, o in pairs])  # (e, 2)
    rows = np.where(trans[:, None], sides[None, :, 1], sides[None, :, 0])  # (k, e) rows after the transform
    cols = np.where(trans[:, None], sides[None, :, 0], sides[None, :, 1])
    keep = rng.integers(0, e, k)  # the pair of each version that is not moved
    pad_r = rng.integers(0, MAX_SIDE - rows + 1)
    pad_c = rng.integers(0, MAX_SIDE - cols + 1)
    still = np.arange(e)[None, :] == keep[:, None]
    if not translate:
        still[:] = True
    pad_r[still] = 0
    pad_c[still] = 0
    table = perms + np.uint8(2)
    inputs = np.zeros((k * e, MAX_SIDE, MAX_SIDE), np.uint8)
    labels = np.zeros_like(inputs)
    for t in np.unique(ts).tolist():
        ver = np.flatnonzero(ts == t)
        for j, pair in enumerate(pairs):
            at = ver * e + j
            for canvas, grid in zip((inputs, labels), pair, strict=True):
                _place(canvas, at, table[ver][:, dihedral(grid, t)], pad_r[ver, j], pad_c[ver, j])
    return inputs.reshape(k * e, -1), labels.reshape(k * e, -1)


def _place(canvas: np.ndarray, at: np.ndarray, vals: np.ndarray, top: np.ndarray, left: np.ndarray) -> None:
    """Write grids ``vals`` (n, h, w) into ``canvas[at]`` at (top, left), with the end markers."""
    _, h, w = vals.shape
    flat = canvas.reshape(-1)
    corner = at * (MAX_SIDE * MAX_SIDE) + top * MAX_SIDE + left  # (n,) flat index of each grid's top left
    cells = (np.arange(h)[:, None] * MAX_SIDE + np.arange(w)[None, :]).ravel()
    flat[(corner[:, None] + cells[None, :]).ravel()] = vals.reshape(-1)
    m = top + h < MAX_SIDE
    flat[(corner[m, None] + (h * MAX_SIDE + np.arange(w))[None, :]).ravel()] = 1  # the row below
    m = left + w < MAX_SIDE
    flat[(corner[m, None] + (np.arange(h) * MAX_SIDE + w)[None, :]).ravel()] = 1  # the column to the right
