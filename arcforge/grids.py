"""Grid math on numpy arrays: the 8 symmetries, recoloring, and content keys.

A grid is a 2-D ``np.int8`` array with values 0-9. Keys are computed from the raw grid bytes plus the
shape (never per cell in Python), so hashing a task costs a few ``tobytes()`` calls per grid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Grid = np.ndarray  # (rows, cols) int8

# The dihedral group D4 acting on a grid. Index 0 is the identity; the order is fixed and documented
# because reports name symmetries by these names.
SYMMETRY_NAMES: tuple[str, ...] = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip_h",  # mirror left-right
    "flip_v",  # mirror top-bottom
    "transpose",  # main diagonal
    "anti_transpose",  # anti-diagonal
)

_SYMMETRIES: tuple[Callable[[Grid], Grid], ...] = (  # views (np.rot90(g, k) spelled as slices: cheaper)
    lambda g: g,
    lambda g: g.T[::-1],  # rot90
    lambda g: g[::-1, ::-1],  # rot180
    lambda g: g[::-1].T,  # rot270
    lambda g: g[:, ::-1],
    lambda g: g[::-1, :],
    lambda g: g.T,
    lambda g: g[::-1, ::-1].T,
)

# INVERSE_SYMMETRY[k] undoes symmetry k (rotations invert each other; reflections are involutions).
INVERSE_SYMMETRY: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)


def apply_symmetry(grid: Grid, k: int) -> Grid:
    """Apply symmetry ``k`` (0-7, see ``SYMMETRY_NAMES``); returns a contiguous copy."""
    return np.ascontiguousarray(_SYMMETRIES[k](grid))


def invert_symmetry(grid: Grid, k: int) -> Grid:
    """Undo ``apply_symmetry(grid, k)``."""
    return apply_symmetry(grid, INVERSE_SYMMETRY[k])


def recolor(grid: Grid, perm: Sequence[int] | np.ndarray) -> Grid:
    """Map every color c to ``perm[c]`` (a permutation of 0-9)."""
    table = np.asarray(perm, dtype=np.int8)
    return table[grid]


def inverse_permutation(perm: Sequence[int] | np.ndarray) -> np.ndarray:
    p = np.asarray(perm, dtype=np.int64)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size)
    return inv.astype(np.int8)


_INT8 = np.dtype(np.int8)


def grid_bytes(grid: Grid | None) -> bytes:
    """Shape-prefixed bytes of a grid: equal bytes iff equal grids (None encodes as a marker)."""
    if grid is None:
        return b"\xff\xff"
    h, w = grid.shape
    cells = (
        grid.tobytes() if grid.dtype == _INT8 else np.ascontiguousarray(grid, np.int8).tobytes()
    )  # C order
    return h.to_bytes(2, "little") + w.to_bytes(2, "little") + cells


def pair_key(inp: Grid, out: Grid | None) -> bytes:
    """16-byte key of one input->output pair."""
    return hashlib.blake2b(grid_bytes(inp) + grid_bytes(out), digest_size=16).digest()


def multiset_key(keys: Iterable[bytes]) -> bytes:
    """Order-invariant key of a multiset of pair keys."""
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(keys):
        h.update(k)
    return h.digest()


def grid_to_text(grid: Grid) -> str:
    """Compact text of a grid, one line per row (for messages and tests)."""
    return "\n".join("".join(str(int(v)) for v in row) for row in grid)


# --- shapes of grid columns (Arrow), for the build's --max-grid and over-30 counts -------------------------
@dataclass
class GridShapes:
    """One entry per grid of a column (hidden test outputs omitted)."""

    task: np.ndarray  # (n_grids,) int64: row index of the task in the table
    height: np.ndarray  # (n_grids,) int64
    width: np.ndarray  # (n_grids,) int64
    pairs_per_task: np.ndarray  # (n_tasks,) int64


def _as_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    # Make offsets start at 0 so parent indices and flattened values line up.
    return pa.concat_arrays([col]) if col.offset else col


def grid_shapes(col: pa.ChunkedArray | pa.Array) -> GridShapes:
    """Shapes of every grid in a ``list<struct<input, output>>`` column."""
    pairs = _as_array(col)
    n_tasks = len(pairs)
    pair_task = np.asarray(pc.list_parent_indices(pairs), dtype=np.int64)
    structs = pairs.flatten()
    tasks, heights, widths = [], [], []
    for name in ("input", "output"):
        grids = structs.field(name)
        if grids.offset:
            grids = pa.concat_arrays([grids])
        valid = np.asarray(grids.is_valid(), dtype=bool)
        h = np.asarray(pc.fill_null(pc.list_value_length(grids), 0), dtype=np.int64)
        rows = grids.flatten()
        row_grid = np.asarray(pc.list_parent_indices(grids), dtype=np.int64)
        row_w = np.asarray(pc.list_value_length(rows), dtype=np.int64)
        w = np.zeros(len(grids), dtype=np.int64)
        np.maximum.at(w, row_grid, row_w)
        tasks.append(pair_task[valid])
        heights.append(h[valid])
        widths.append(w[valid])
    per_task = np.bincount(pair_task, minlength=n_tasks).astype(np.int64)
    return GridShapes(np.concatenate(tasks), np.concatenate(heights), np.concatenate(widths), per_task)


def task_max_side(table: pa.Table) -> np.ndarray:
    """(n_tasks,) the largest grid side of each task over train and test (batch by batch: bounded memory)."""
    parts = [np.zeros(0, dtype=np.int64)]
    for batch in table.to_batches(max_chunksize=16384):
        out = np.zeros(batch.num_rows, dtype=np.int64)
        for col in ("train", "test"):
            s = grid_shapes(batch.column(col))
            np.maximum.at(out, s.task, np.maximum(s.height, s.width))
        parts.append(out)
    return np.concatenate(parts)
