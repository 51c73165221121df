"""Dataset statistics computed column-wise with Arrow (no per-task Python): shapes, sizes, colors.

``grid_shapes`` is the shared primitive: for a ``train``/``test`` column it gives every grid's task
index, height and width. ``task_max_side`` (used by ``build --max-grid`` and the over-30 counts) and
``dataset_stats`` (``arcforge stats``) are built on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge import shards
from arcforge.task import MAX_GRID_SIDE, QUARANTINE_SCHEMA

# Grid-size histogram buckets by the larger side: (label, lowest side, highest side).
SIZE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1-5", 1, 5),
    ("6-10", 6, 10),
    ("11-20", 11, 20),
    ("21-30", 21, 30),
    (">30", 31, 1 << 30),
)


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
    """(n_tasks,) the largest grid side of each task over train and test."""
    out = np.zeros(table.num_rows, dtype=np.int64)
    for col in ("train", "test"):
        s = grid_shapes(table[col])
        np.maximum.at(out, s.task, np.maximum(s.height, s.width))
    return out


def color_counts(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(10,) how many cells of each color a column holds."""
    structs = _as_array(col).flatten()
    total = np.zeros(10, dtype=np.int64)
    for name in ("input", "output"):
        values = structs.field(name).flatten().flatten()
        total += np.bincount(np.asarray(values, dtype=np.int64), minlength=10)[:10]
    return total


def _bucket_counts(sides: np.ndarray) -> dict[str, int]:
    return {label: int(((sides >= lo) & (sides <= hi)).sum()) for label, lo, hi in SIZE_BUCKETS}


def table_stats(table: pa.Table) -> dict:
    """Counts for one table of tasks: tasks, pairs, grids by size bucket, colors, over-30 grids."""
    train, test = grid_shapes(table["train"]), grid_shapes(table["test"])
    sides = np.concatenate([np.maximum(s.height, s.width) for s in (train, test)])
    colors = color_counts(table["train"]) + color_counts(table["test"])
    return {
        "tasks": table.num_rows,
        "train_pairs": int(train.pairs_per_task.sum()),
        "test_pairs": int(test.pairs_per_task.sum()),
        "grids": len(sides),
        "grid_sizes": _bucket_counts(sides),
        "max_side": int(sides.max()) if len(sides) else 0,
        "over_30_grids": int((sides > MAX_GRID_SIDE).sum()),
        "over_30_tasks": int((task_max_side(table) > MAX_GRID_SIDE).sum()),
        "colors_used": [c for c in range(10) if colors[c]],
        "color_cells": [int(c) for c in colors],
    }


def task_families(table: pa.Table) -> list[str | None]:
    """The ``extra.family`` label of each task (the synthetic source sets it; None elsewhere)."""
    from arcforge.synthetic import family_of

    # cheap pre-check: most sources' extra holds no family (and is often empty)
    return [family_of({"extra": text}) if text and '"family"' in text else None
            for text in table["extra"].to_pylist()]


def family_stats(table: pa.Table) -> dict[str, dict]:
    """Per family label: tasks, train pairs per task, mean and max of the tasks' largest grid side."""
    fams = task_families(table)
    if not any(fams):
        return {}
    sides = task_max_side(table)
    pairs = grid_shapes(table["train"]).pairs_per_task
    out: dict[str, dict] = {}
    for fam in sorted({f for f in fams if f}):
        idx = np.array([i for i, f in enumerate(fams) if f == fam])
        out[fam] = {"tasks": len(idx), "train_pairs_per_task": round(float(pairs[idx].mean()), 2),
                    "mean_max_side": round(float(sides[idx].mean()), 2), "max_side": int(sides[idx].max())}
    return out


def dataset_stats(root: Path, sources: Iterable[str] | None = None) -> dict:
    """``{source: {split: table_stats + quarantined}}`` of a built dataset, plus report counts, plus
    ``families`` (``{source: {split: {family: ...}}}``) for sources whose tasks carry a family label."""
    root = Path(root)
    infos = shards.list_shards(root, sources)
    out: dict[str, dict[str, dict]] = {}
    families: dict[str, dict[str, dict]] = {}
    for source, split in sorted({(i.source, i.split) for i in infos}):
        table = shards.read_table(root, sources=[source], splits=[split])
        out.setdefault(source, {})[split] = {**table_stats(table), "quarantined": 0}
        if fam := family_stats(table):
            families.setdefault(source, {})[split] = fam
    quarantine: dict[str, int] = {}
    qpath = root / "quarantine.parquet"
    if qpath.is_file():
        q = shards.read_file(qpath, required=("source", "reason"))
        has_split = "split" in q.schema.names
        for row in q.to_pylist():
            if sources is not None and row["source"] not in set(sources):
                continue
            quarantine[row["reason"]] = quarantine.get(row["reason"], 0) + 1
            split = row["split"] if has_split and row["split"] else "unknown"
            entry = out.setdefault(row["source"], {}).setdefault(split, {"tasks": 0, "quarantined": 0})
            entry["quarantined"] += 1
    reports = {
        name: shards.count_rows(root / name)
        for name in shards.REPORT_FILES
        if (root / name).is_file()
    }
    return {"sources": out, "quarantined_by_reason": dict(sorted(quarantine.items())), "reports": reports,
            "families": families}


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()
