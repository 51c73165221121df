"""The only Parquet writer of arcforge: a table of tasks in, ``<source>/<split>-XXXXX-of-YYYYY.parquet`` out.

Writing uses pyarrow's ``ParquetWriter`` (plain ``list``/``string`` types that ``datasets`` maps to its
features exactly; polars' writer would store ``large_*`` types), zstd, statistics, the page index and
content-defined chunking so that re-uploads of a changed build deduplicate well on the Hub's storage.
Output is deterministic: the same rows give byte-identical files. ``arcforge.shards`` reads them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arcforge.build.parallel import available_cpus
from arcforge.shards import ShardInfo
from arcforge.task import TASK_SCHEMA

DEFAULT_ROW_GROUP_ROWS = 1024  # ~1-10 MB of task rows: small enough for the Hub viewer's random access
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024  # uncompressed Arrow bytes per shard file (Hub-friendly files)


def parquet_write_options() -> dict:
    """The one set of writer options every arcforge Parquet file uses."""
    return {
        "compression": "zstd",
        "compression_level": 9,
        "write_statistics": True,
        "write_page_index": True,
        "use_content_defined_chunking": True,
        "store_schema": True,
    }


def write_table(table: pa.Table, path: Path, *, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> int:
    """Write one Parquet file deterministically; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, table.schema, **parquet_write_options()) as w:
        w.write_table(table, row_group_size=max(1, row_group_rows))
    return path.stat().st_size


def write_shards(
    table: pa.Table,
    root: Path,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    threads: int | None = None,
    group_nbytes: dict[tuple[str, str], int] | None = None,
) -> list[ShardInfo]:
    """Write TASK_SCHEMA rows as ``root/<source>/<split>-XXXXX-of-YYYYY.parquet``, sorted by id.

    Streams: only the sort keys are sorted; rows are gathered from ``table`` (which may be memory-mapped)
    a block of row groups at a time, so memory stays at a few blocks whatever the table's size. The bytes
    depend only on the rows, not on how ``table`` is chunked. Shard files are written by ``threads``
    threads at once (None: one per available CPU). ``group_nbytes``: the Arrow bytes of each (source, split)
    of ``table`` when the caller has them already (the build's ``_split_bytes``: the same sums).
    """
    if not table.schema.equals(TASK_SCHEMA):
        table = table.cast(TASK_SCHEMA)
    batches = [b for b in table.to_batches() if b.num_rows]
    starts = np.cumsum([0, *(b.num_rows for b in batches)], dtype=np.int64)
    order, groups = _sorted_groups(table.select(["source", "split", "id"]))
    block = max(1, row_group_rows) * max(1, _BLOCK_ROWS // max(1, row_group_rows))
    jobs: list[tuple[Path, str, str, np.ndarray]] = []
    sizes: list[float] = []  # Arrow bytes of each job (about)
    for source, split, lo, hi in groups:
        rows = order[lo:hi]
        nbytes = (
            group_nbytes[(source, split)] if group_nbytes is not None else _rows_nbytes(batches, starts, rows)
        )
        n_shards = max(1, -(-nbytes // max(1, shard_bytes)))
        bounds = np.linspace(0, len(rows), n_shards + 1).astype(int)
        for i in range(n_shards):
            rel = Path(source) / f"{split}-{i:05d}-of-{n_shards:05d}.parquet"
            jobs.append((rel, source, split, rows[bounds[i] : bounds[i + 1]]))
            sizes.append(nbytes * (bounds[i + 1] - bounds[i]) / max(1, len(rows)))

    def write_one(job: tuple[Path, str, str, np.ndarray]) -> ShardInfo:
        rel, source, split, part = job
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, TASK_SCHEMA, **parquet_write_options()) as w:
            for b in range(0, max(1, len(part)), block):  # whole row groups per block: same bytes
                w.write_table(
                    _gather(batches, starts, part[b : b + block]), row_group_size=max(1, row_group_rows)
                )
        return ShardInfo(rel, source, split, len(part), path.stat().st_size)

    # Files are independent and pyarrow compresses without the GIL: one thread per CPU writes them, the
    # biggest first (a big shard started last would keep one thread busy while the others are done).
    order = sorted(range(len(jobs)), key=lambda i: -sizes[i])
    with ThreadPoolExecutor(max(1, min(threads or available_cpus(), len(jobs)))) as ex:
        done = dict(zip(order, ex.map(write_one, [jobs[i] for i in order]), strict=True))
    return [done[i] for i in range(len(jobs))]


_BLOCK_ROWS = 8192  # rows gathered at once while writing a shard


def _sorted_groups(keys: pa.Table) -> tuple[np.ndarray, list[tuple[str, str, int, int]]]:
    """The row order by (source, split, id), and each (source, split)'s ``[lo, hi)`` range in it (none
    for no rows)."""
    order = (
        pc.sort_indices(
            keys, sort_keys=[("source", "ascending"), ("split", "ascending"), ("id", "ascending")]
        )
        .to_numpy()
        .astype(np.int64)
    )
    src = keys["source"].take(order).to_numpy(zero_copy_only=False)
    spl = keys["split"].take(order).to_numpy(zero_copy_only=False)
    cut = np.flatnonzero((src[1:] != src[:-1]) | (spl[1:] != spl[:-1])) + 1
    group_starts = [0, *cut.tolist()] if len(order) else []
    ends = [*group_starts[1:], len(order)] if group_starts else []
    return order, [(str(src[lo]), str(spl[lo]), lo, hi) for lo, hi in zip(group_starts, ends, strict=True)]


def _rows_nbytes(batches: list[pa.RecordBatch], starts: np.ndarray, rows: np.ndarray) -> int:
    """Arrow bytes of these rows (what ``--shard-mb`` counts), batch by batch (no copy of them all)."""
    which = np.searchsorted(starts, rows, side="right") - 1
    total = 0
    for b in np.unique(which).tolist():
        mask = np.zeros(batches[b].num_rows, bool)
        mask[rows[which == b] - starts[b]] = True
        total += batches[b].filter(pa.array(mask)).nbytes
    return total


def _gather(batches: list[pa.RecordBatch], starts: np.ndarray, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` (global indices, in that order) as one contiguous table."""
    if not len(rows):
        return TASK_SCHEMA.empty_table()
    which = np.searchsorted(starts, rows, side="right") - 1
    by_batch = np.argsort(which, kind="stable")
    pieces = []
    for b in np.unique(which).tolist():
        sel = by_batch[which[by_batch] == b]
        pieces.append(batches[b].take(pa.array(rows[sel] - starts[b])))
    gathered = pa.Table.from_batches(pieces, TASK_SCHEMA).combine_chunks()
    back = np.empty(len(rows), np.int64)
    back[by_batch] = np.arange(len(rows))
    return gathered.take(pa.array(back)).combine_chunks()
