"""The reader of a built dataset: the one way the trainer, the exports, ``show``/``stats`` and the Hub
code read shards (``arcforge.build.shard_writer`` writes them).

Layout of a built dataset folder::

    out/<source>/<split>-00000-of-00002.parquet   # TASK_SCHEMA rows, sorted by id
    out/README.md                                 # dataset card (arcforge.build.card)
    out/reports/*.jsonl                           # reports (arcforge.build.reports), not data

Reading streams record batches (never the whole dataset), filtered by source/split and sharded by
``rank``/``world_size`` into contiguous ranges of the global row order, so ranks (and DataLoader workers)
see disjoint rows and each reads only its own row groups.

A damaged shard never surfaces as a pyarrow or numpy exception: a file that is not Parquet, truncated,
has corrupt pages, columns of the wrong type, or grids that are not rectangular grids of colors 0-9
raises ``ShardError`` naming the file (and the row group), so ``show``, ``stats`` and ``train`` all say
which file is damaged.
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
from arcforge.task import OPTIONAL_COLUMNS, TASK_SCHEMA, Task, tasks_from_batch

SHARD_RE = re.compile(r"^(?P<split>\w+(?:\.\w+)*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
REBUILD_HINT = "the file is damaged or was not written by arcforge: rebuild the dataset (arcforge build)"


@dataclass(frozen=True)
class ShardInfo:
    path: Path  # relative to the dataset root
    source: str
    split: str
    rows: int
    bytes: int


def list_shards(
    root: Path, sources: Iterable[str] | None = None, splits: Iterable[str] | None = None
) -> list[ShardInfo]:
    """Shard files under ``root`` in a fixed order (source, split, index), optionally filtered."""
    root = Path(root)
    if not root.is_dir():
        raise ShardError(f"{root}: dataset folder not found", hint=missing_dataset_hint(root))
    want_src = set(sources) if sources else None
    want_split = set(splits) if splits else None
    out = []
    for src_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if want_src is not None and src_dir.name not in want_src:
            continue
        out += [_shard_info(root, f, split) for f, split in _shard_files(src_dir, want_split)]
    return out


def _shard_files(src_dir: Path, want_split: set[str] | None) -> Iterator[tuple[Path, str]]:
    """(file, split) of the shard files of one source folder, sorted, of the wanted splits."""
    for f in sorted(src_dir.glob("*.parquet")):
        m = SHARD_RE.match(f.name)
        if m and (want_split is None or m["split"] in want_split):
            yield f, m["split"]


def _shard_info(root: Path, f: Path, split: str) -> ShardInfo:
    """One shard file's path (relative to ``root``), source, split, rows (from its footer) and size."""
    try:
        rows = pq.ParquetFile(f).metadata.num_rows
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{f}: not a readable Parquet file: {e}", hint=REBUILD_HINT) from None
    return ShardInfo(f.relative_to(root), f.parent.name, split, rows, f.stat().st_size)


def interrupted_build(root: Path) -> Path | None:
    """The previous output that a build killed between its two renames left beside ``root``, if any.

    Readers never repair a dataset folder (only the next ``arcforge build`` does: ``build.output.recover``);
    they name what happened instead.
    """
    root = Path(root).absolute()
    if not root.parent.is_dir():
        return None
    prefix = f".{root.name}.old-"
    return next((p for p in sorted(root.parent.iterdir()) if p.name.startswith(prefix) and p.is_dir()), None)


def missing_dataset_hint(root: Path) -> str:
    """What to do about a dataset folder that is not there."""
    old = interrupted_build(root)
    if old is not None:
        return (
            f"a build into it was interrupted and its previous output waits in {old.name}: run the same "
            "`arcforge build --out` again, which puts it back first"
        )
    return "build one with `arcforge build --out DIR`"


def available(root: Path) -> str:
    """What a dataset folder holds, for error messages: ``sources: a, b; splits: evaluation, training``."""
    infos = list_shards(root)
    if not infos:
        return (
            f"{root} holds no shards (<source>/<split>-00000-of-0000N.parquet); "
            "build one with `arcforge build`"
        )
    return (
        f"it has sources: {', '.join(sorted({i.source for i in infos}))}; "
        f"splits: {', '.join(sorted({i.split for i in infos}))}"
    )


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
    """Stream TASK_SCHEMA record batches; rank ``r`` gets the ``r``-th of ``world_size`` contiguous, balanced
    ranges of the global row order (sizes differ by at most one row), and reads only the row groups that
    overlap its range: a rank never decodes another rank's rows (at most the two row groups at its
    range's ends are shared, and sliced).

    The global order is the shards' (source, split, file) order, in which a source's tasks are contiguous
    and sorted by id. With ``shuffle_seed`` the reading units, every (shard, row group), come in an order
    permuted by that seed instead (a training stream's epoch passes ``(seed, epoch)``), so that what is
    read next is not all one source or one task family; the rows inside a unit keep their order.
    """
    for _, batch in _iter_file_batches(
        root,
        sources=sources,
        splits=splits,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        columns=columns,
        shuffle_seed=shuffle_seed,
    ):
        yield batch


def _open_shard(path: Path) -> pq.ParquetFile:
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: not a readable Parquet file: {e}", hint=REBUILD_HINT) from None
    missing = set(TASK_SCHEMA.names) - set(schema.names) - set(OPTIONAL_COLUMNS)
    if missing:
        raise ShardError(
            f"{path}: not an arcforge shard (missing columns {sorted(missing)})", hint=REBUILD_HINT
        )
    for name in TASK_SCHEMA.names:
        if name not in schema.names:
            continue  # an optional column that an older build did not write
        got, want = schema.field(name).type, TASK_SCHEMA.field(name).type
        if not got.equals(want) and not _castable(got, want):
            raise ShardError(f"{path}: column {name!r} has type {got}, expected {want}", hint=REBUILD_HINT)
    return pf


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    """The same values in another layout: large_* offsets or dictionary-encoded strings."""
    if pa.types.is_dictionary(got):
        got = got.value_type
    return str(got).replace("large_", "") == str(want)


def _iter_file_batches(
    root: Path,
    *,
    sources=None,
    splits=None,
    rank=0,
    world_size=1,
    batch_size=256,
    columns=None,
    shuffle_seed=None,
) -> Iterator[tuple[Path, pa.RecordBatch]]:
    """(shard path, batch) of rank ``rank``'s rows, unit by unit (see ``iter_batches``)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ShardError(f"rank {rank} is not in [0, world_size={world_size})")
    paths, files = _open_shards(root, sources, splits)
    units = [(f, rg) for f, pf in enumerate(files) for rg in range(pf.num_row_groups)]
    if shuffle_seed is not None:
        units = [units[int(i)] for i in np.random.default_rng(shuffle_seed).permutation(len(units))]
    want = pa.schema([TASK_SCHEMA.field(c) for c in (columns or TASK_SCHEMA.names)])
    for (f, rg), span in _rank_parts(files, units, rank, world_size):
        yield from _unit_batches(paths[f], files[f], rg, span, batch_size, columns, want)


def _open_shards(root: Path, sources, splits) -> tuple[list[Path], list[pq.ParquetFile]]:
    """The paths of the matching shards and each one opened and checked; refuses a selection with none."""
    shards = list_shards(root, sources, splits)
    if not shards:
        raise ShardError(
            f"{root}: no shards match sources={sorted(sources) if sources else 'all'} "
            f"splits={sorted(splits) if splits else 'all'}",
            hint=available(root),
        )
    paths = [Path(root) / info.path for info in shards]
    return paths, [_open_shard(p) for p in paths]


def _rank_parts(
    files: list[pq.ParquetFile], units: list[tuple[int, int]], rank: int, world_size: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((file, row group), (first, end) rows of it) of each unit that holds rows of this rank's contiguous
    range of the units' rows (ranges balanced to one row)."""
    sizes = [files[f].metadata.row_group(rg).num_rows for f, rg in units]
    total = sum(sizes)
    lo, hi = rank * total // world_size, (rank + 1) * total // world_size  # this rank's global rows
    parts = []
    start = 0
    for unit, n in zip(units, sizes, strict=True):
        a, b = max(lo, start) - start, min(hi, start + n) - start  # the part of this unit that is ours
        start += n
        if a < b:
            parts.append((unit, (a, b)))
    return parts


def _unit_batches(
    path: Path,
    pf: pq.ParquetFile,
    rg: int,
    span: tuple[int, int],
    batch_size: int,
    columns: list[str] | None,
    want: pa.Schema,
) -> Iterator[tuple[Path, pa.RecordBatch]]:
    """Rows ``span`` of row group ``rg`` of one shard, in batches of ``want``'s columns, each checked."""
    a, b = span
    at = 0
    present = pf.schema_arrow.names
    read_cols = [c for c in (columns or TASK_SCHEMA.names) if c in present]
    try:
        for batch in pf.iter_batches(batch_size=batch_size, row_groups=[rg], columns=read_cols):
            batch = _with_optional(batch, want)
            m = batch.num_rows
            part = batch.slice(max(a - at, 0), max(0, min(b, at + m) - max(a, at)))
            at += m
            if part.num_rows:
                if not part.schema.equals(want):
                    part = part.select(want.names).cast(want)
                check_batch(part, path)
                yield path, part
            if at >= b:
                break
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: row group {rg} cannot be read: {e}", hint=REBUILD_HINT) from None


def _with_optional(batch: pa.RecordBatch, want: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the optional columns an older shard lacks, filled with their defaults."""
    absent = [f for f in want if f.name not in batch.schema.names]
    if not absent:
        return batch
    cols = {name: batch.column(name) for name in batch.schema.names}
    for f in absent:
        cols[f.name] = pa.array([OPTIONAL_COLUMNS[f.name]] * batch.num_rows, f.type)
    return pa.RecordBatch.from_arrays([cols[f.name] for f in want], schema=want)


def check_batch(batch: pa.RecordBatch, path: Path) -> None:
    """Refuse rows a reader cannot use: a missing id/source/split, and grids that are not non-empty
    rectangles of colors 0-9 (a damaged shard or one written by another tool)."""
    for name in ("id", "source", "split"):
        if name in batch.schema.names and batch.column(name).null_count:
            raise ShardError(f"{path}: column {name!r} has empty (null) values", hint=REBUILD_HINT)
    for name in ("train", "test"):
        if name not in batch.schema.names:
            continue
        pairs = batch.column(name)
        for side, grids in zip(("input", "output"), pairs.flatten().flatten(), strict=True):
            problem = _grid_problem(grids, allow_null=side == "output")
            if problem:
                raise ShardError(f"{path}: a {name} {side} grid {problem}", hint=REBUILD_HINT)


def _grid_problem(grids: pa.ListArray, *, allow_null: bool) -> str | None:
    if grids.null_count and not allow_null:
        return "is missing (null)"
    rows = grids.flatten()
    cells = rows.flatten()
    if rows.null_count or cells.null_count:
        return "has missing (null) rows or cells"
    if len(cells):
        mm = pc.min_max(cells).as_py()
        if mm["min"] < 0 or mm["max"] > 9:
            bad = mm["max"] if mm["max"] > 9 else mm["min"]
            return f"has the cell value {bad} (colors are 0-9)"
    n_grids = len(grids)
    if not n_grids:
        return None
    row_len = np.asarray(pc.list_value_length(rows), dtype=np.int64)
    parent = np.asarray(pc.list_parent_indices(grids), dtype=np.int64)
    n_rows = np.bincount(parent, minlength=n_grids)
    present = ~np.asarray(grids.is_null(), dtype=bool)
    if (n_rows[present] == 0).any():
        return "is empty (no rows)"
    lo = np.full(n_grids, np.iinfo(np.int64).max)
    hi = np.zeros(n_grids, dtype=np.int64)
    np.minimum.at(lo, parent, row_len)
    np.maximum.at(hi, parent, row_len)
    if (lo[present] != hi[present]).any():
        return "is not rectangular (rows of different lengths)"
    if (hi[present] == 0).any():
        return "is empty (rows without cells)"
    return None


def read_tasks(root: Path, **kwargs) -> Iterator[Task]:
    """Stream ``Task`` records (same arguments as ``iter_batches``)."""
    for path, batch in _iter_file_batches(root, **kwargs):
        yield from _tasks(batch, path)


def _tasks(batch: pa.RecordBatch | pa.Table, path: Path) -> list[Task]:
    try:
        return tasks_from_batch(batch)
    except (ValueError, TypeError, KeyError) as e:  # e.g. `extra` that is not JSON
        raise ShardError(f"{path}: a row cannot be read as a task: {e}", hint=REBUILD_HINT) from None


def read_table(root: Path, **kwargs) -> pa.Table:
    """All matching rows as one table (for small datasets, reports and tests)."""
    batches = list(iter_batches(root, **kwargs))
    return pa.Table.from_batches(batches, schema=batches[0].schema) if batches else TASK_SCHEMA.empty_table()


def find_task(root: Path, task_id: str) -> Task | None:
    """The task with this id (its source is the id's first segment), or None."""
    source = task_id.split("/", 1)[0]
    if not list_shards(root, [source]):
        return None
    for path, batch in _iter_file_batches(root, sources=[source], batch_size=1024):
        hit = batch.filter(pc.equal(batch["id"], task_id))
        if hit.num_rows:
            return _tasks(hit, path)[0]
    return None


def read_file(path: Path, *, required: Sequence[str] = ()) -> pa.Table:
    """One Parquet file (a report such as ``excluded.parquet``) as a table; a clear error if unreadable
    or if a ``required`` column is missing."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ShardError(f"{path}: file not found") from None
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: not a readable Parquet file: {e}", hint=REBUILD_HINT) from None
    missing = [c for c in required if c not in table.schema.names]
    if missing:
        raise ShardError(f"{path}: missing columns {missing}", hint=REBUILD_HINT)
    return table


def count_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer; a clear error if unreadable."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: not a readable Parquet file: {e}", hint=REBUILD_HINT) from None
