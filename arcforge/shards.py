"""The only Parquet writer and reader of arcforge.

Layout of a built dataset folder::

    out/<source>/<split>-00000-of-00002.parquet   # TASK_SCHEMA rows, sorted by id
    out/README.md                                 # dataset card (arcforge.card)
    out/reports/*.jsonl                           # reports (arcforge.reports), not data

Writing uses pyarrow's ``ParquetWriter`` (plain ``list``/``string`` types that ``datasets`` maps to its
features exactly; polars' writer would store ``large_*`` types), zstd, statistics, the page index and
content-defined chunking so that re-uploads of a changed build deduplicate well on the Hub's storage.
Output is deterministic: the same rows give byte-identical files.

Reading streams record batches (never the whole dataset), filtered by source/split and sharded by
``rank``/``world_size`` on the global row index, so ranks (and DataLoader workers) see disjoint rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arcforge.errors import ShardError
from arcforge.task import TASK_SCHEMA, Task, tasks_from_batch

SHARD_RE = re.compile(r"^(?P<split>\w+(?:\.\w+)*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
DEFAULT_ROW_GROUP_ROWS = 1024  # ~1-10 MB of task rows: small enough for the Hub viewer's random access
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024  # uncompressed Arrow bytes per shard file (Hub-friendly files)


@dataclass(frozen=True)
class ShardInfo:
    path: Path  # relative to the dataset root
    source: str
    split: str
    rows: int
    bytes: int


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
) -> list[ShardInfo]:
    """Write TASK_SCHEMA rows as ``root/<source>/<split>-XXXXX-of-YYYYY.parquet``, sorted by id."""
    if not table.schema.equals(TASK_SCHEMA):
        table = table.cast(TASK_SCHEMA)
    table = table.sort_by([("source", "ascending"), ("split", "ascending"), ("id", "ascending")])
    infos: list[ShardInfo] = []
    keys = pa.Table.from_arrays([table["source"], table["split"]], names=["source", "split"])
    groups = keys.group_by(["source", "split"], use_threads=False).aggregate([]).to_pylist()
    for g in sorted(groups, key=lambda d: (d["source"], d["split"])):
        mask = pc.and_(pc.equal(table["source"], g["source"]), pc.equal(table["split"], g["split"]))
        part = table.filter(mask)
        n_shards = max(1, -(-part.nbytes // max(1, shard_bytes)))
        bounds = np.linspace(0, part.num_rows, n_shards + 1).astype(int)
        for i in range(n_shards):
            rel = Path(g["source"]) / f"{g['split']}-{i:05d}-of-{n_shards:05d}.parquet"
            chunk = part.slice(bounds[i], bounds[i + 1] - bounds[i])
            size = write_table(chunk, root / rel, row_group_rows=row_group_rows)
            infos.append(ShardInfo(rel, g["source"], g["split"], chunk.num_rows, size))
    return infos


def list_shards(
    root: Path, sources: Iterable[str] | None = None, splits: Iterable[str] | None = None
) -> list[ShardInfo]:
    """Shard files under ``root`` in a fixed order (source, split, index), optionally filtered."""
    root = Path(root)
    if not root.is_dir():
        raise ShardError(f"{root}: dataset folder not found", hint="build one with `arcforge build --out DIR`")
    want_src = set(sources) if sources else None
    want_split = set(splits) if splits else None
    out = []
    for src_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if want_src is not None and src_dir.name not in want_src:
            continue
        for f in sorted(src_dir.glob("*.parquet")):
            m = SHARD_RE.match(f.name)
            if not m or (want_split is not None and m["split"] not in want_split):
                continue
            rows = pq.ParquetFile(f).metadata.num_rows
            out.append(ShardInfo(f.relative_to(root), src_dir.name, m["split"], rows, f.stat().st_size))
    return out


def available(root: Path) -> str:
    """What a dataset folder holds, for error messages: ``sources: a, b; splits: evaluation, training``."""
    infos = list_shards(root)
    if not infos:
        return f"{root} holds no shards (<source>/<split>-00000-of-0000N.parquet); build one with `arcforge build`"
    return (f"it has sources: {', '.join(sorted({i.source for i in infos}))}; "
            f"splits: {', '.join(sorted({i.split for i in infos}))}")


def iter_batches(
    root: Path,
    *,
    sources: Iterable[str] | None = None,
    splits: Iterable[str] | None = None,
    rank: int = 0,
    world_size: int = 1,
    batch_size: int = 256,
    columns: list[str] | None = None,
    shuffle_seed: int | Sequence[int] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream TASK_SCHEMA record batches; row ``i`` (global order) goes to rank ``i % world_size``.

    The global order is the shards' (source, split, file) order, in which a source's tasks are contiguous
    and sorted by id. With ``shuffle_seed`` the reading units, every (shard, row group), come in an order
    permuted by that seed instead (a training stream's epoch passes ``(seed, epoch)``), so that what is
    read next is not all one source or one task family; the rows inside a unit keep their order.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ShardError(f"rank {rank} is not in [0, world_size={world_size})")
    shards = list_shards(root, sources, splits)
    if not shards:
        raise ShardError(
            f"{root}: no shards match sources={sorted(sources) if sources else 'all'} "
            f"splits={sorted(splits) if splits else 'all'}", hint=available(root))
    files: list[pq.ParquetFile] = []
    for info in shards:
        path = Path(root) / info.path
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise ShardError(f"{path}: not a readable Parquet file: {e}") from None
        missing = set(TASK_SCHEMA.names) - set(pf.schema_arrow.names)
        if missing:
            raise ShardError(f"{path}: not an arcforge shard (missing columns {sorted(missing)})")
        files.append(pf)
    units = [(f, rg) for f, pf in enumerate(files) for rg in range(pf.num_row_groups)]
    if shuffle_seed is not None:
        units = [units[int(i)] for i in np.random.default_rng(shuffle_seed).permutation(len(units))]
    offset = 0
    for f, rg in units:
        for batch in files[f].iter_batches(batch_size=batch_size, row_groups=[rg], columns=columns):
            n = batch.num_rows
            if world_size > 1:
                idx = np.arange(offset, offset + n)
                batch = batch.filter(pa.array(idx % world_size == rank))
            offset += n
            if batch.num_rows:
                yield batch


def read_tasks(root: Path, **kwargs) -> Iterator[Task]:
    """Stream ``Task`` records (same arguments as ``iter_batches``)."""
    for batch in iter_batches(root, **kwargs):
        yield from tasks_from_batch(batch)


def read_table(root: Path, **kwargs) -> pa.Table:
    """All matching rows as one table (for small datasets, reports and tests)."""
    batches = list(iter_batches(root, **kwargs))
    return pa.Table.from_batches(batches, schema=batches[0].schema) if batches else TASK_SCHEMA.empty_table()


def find_task(root: Path, task_id: str) -> Task | None:
    """The task with this id (its source is the id's first segment), or None."""
    source = task_id.split("/", 1)[0]
    if not list_shards(root, [source]):
        return None
    for batch in iter_batches(root, sources=[source], batch_size=1024):
        hit = batch.filter(pc.equal(batch["id"], task_id))
        if hit.num_rows:
            return tasks_from_batch(hit)[0]
    return None


def read_file(path: Path) -> pa.Table:
    """One Parquet file (a report such as ``excluded.parquet``) as a table; a clear error if unreadable."""
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise ShardError(f"{path}: file not found") from None
    except (OSError, pa.ArrowInvalid) as e:
        raise ShardError(f"{path}: not a readable Parquet file: {e}") from None
