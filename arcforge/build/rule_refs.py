"""The reference tasks of a build as the execution check sees them, cheap until something has to run.

``RefTable(table)`` holds the ids and sources of the reference rows and one content key over all of them
(``table_key``: a few array passes over the Arrow buffers, no Python object per cell). A rebuild whose
whole outcome is in the summary cache (``arcforge.build.rule_cache``) needs nothing more; the per-task
pairs and digests (``references``) are made only when the summary misses.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = ["id", "source", "split", "train", "test"]


@dataclass(frozen=True)
class Reference:
    """A reference task as the check sees it: its inputs (sent) and outputs (kept here)."""

    eval_id: str  # the task's id (``arc_agi_1/evaluation/00576224``: ids name their source)
    source: str
    inputs: tuple  # grids as lists of rows: train inputs, then test inputs
    outputs: tuple
    digest: str


def task_digest(pairs: Sequence[tuple[list, list]]) -> str:
    """sha256 of the pairs as compact JSON (``json.dumps(pairs, separators=(",", ":"))``, encoded faster)."""
    return hashlib.sha256(msgspec.json.encode(pairs)).hexdigest()


def references(table: pa.Table) -> list[Reference]:
    """The reference tasks of ``table`` (TASK_SCHEMA rows), in row order.

    A program must agree on every pair, so the order it is asked in is free: smallest input first, since
    the first pair settles almost every check and a program's time grows with its input."""
    out = []
    for r in table.select(["id", "source", "split", "train", "test"]).to_pylist():
        pairs = [(p["input"], p["output"]) for p in (r["train"] or []) + (r["test"] or [])]
        digest = task_digest(pairs)
        pairs.sort(key=lambda p: grid_cells(p[0]))
        out.append(
            Reference(r["id"], r["source"], tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), digest)
        )
    return out


def grid_cells(grid: list) -> int:
    return len(grid) * len(grid[0]) if grid else 0


def _lengths(arr: pa.Array) -> bytes:
    return np.asarray(
        pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False), dtype=np.int64
    ).tobytes()


def table_key(table: pa.Table) -> str:
    """sha256 over the rows' ids, sources and every pair: at each level of nesting the list lengths (nulls
    as -1), then the cells. The same tasks in the same order give the same key, however the table is laid
    out in memory (chunks, slices); different tasks give different bytes."""
    h = hashlib.sha256(msgspec.json.encode([table["id"].to_pylist(), table["source"].to_pylist()]))
    for col in ("train", "test"):
        pairs = table[col].combine_chunks()
        h.update(b"|" + _lengths(pairs))
        for grids in pairs.flatten().flatten():  # the struct's fields, input then output
            rows = grids.flatten()
            h.update(b"|" + _lengths(grids) + b"|" + _lengths(rows))
            cells = pc.fill_null(rows.flatten(), -1).to_numpy(zero_copy_only=False)
            h.update(b"|" + np.asarray(cells, dtype=np.int64).tobytes())
    return h.hexdigest()


class RefTable:
    """The reference tasks of ``table`` (TASK_SCHEMA rows), in row order; see the module docstring."""

    def __init__(self, table: pa.Table):
        self.table = table.select(COLUMNS)
        self.ids: list[str] = self.table["id"].to_pylist()
        self.sources: list[str] = self.table["source"].to_pylist()

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def key(self) -> str:
        return table_key(self.table)

    @functools.cached_property
    def tasks(self) -> list[Reference]:
        """A ``Reference`` per row (pairs and content digest)."""
        return references(self.table)
