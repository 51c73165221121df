"""The reference tasks of a build as the execution check sees them, cheap until something has to run.

``RefTable(table)`` holds the ids and sources of the reference rows and one content key over all of them
(``table_key``: a few array passes over the Arrow buffers, no Python object per cell). A rebuild whose
whole outcome is in the summary cache (``arcforge.build.rule_cache``) needs nothing more; the per-task
pairs and digests (``arcforge.build.rules.references``) are made only when the summary misses.
"""

from __future__ import annotations

import functools
import hashlib

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = ["id", "source", "split", "train", "test"]


def _lengths(arr: pa.Array) -> bytes:
    return np.asarray(pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False),
                      dtype=np.int64).tobytes()


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
    def tasks(self) -> list:
        """``arcforge.build.rules.Reference`` per row (pairs and content digest)."""
        from arcforge.build.rules import references

        return references(self.table)
