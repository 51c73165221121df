"""Dataset statistics: polars lazy queries over the shards and the reports (no Python loop over rows).

``dataset_stats`` (``arcforge stats``) scans the shard files of a built dataset once per query: tasks and
pairs per source and split, every grid's height and width (from the list lengths), the grid-size
histogram, colors, over-30 grids and tasks, per-family figures for sources whose tasks carry a family
label (``extra.family``), and the quarantine counts from ``reports/quarantine.jsonl``.

``arcforge.grids.grid_shapes`` / ``task_max_side`` do the same on an Arrow table in memory, for the build.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa

from arcforge import shards
from arcforge.build import reports
from arcforge.errors import ShardError
from arcforge.task import MAX_GRID_SIDE, QUARANTINE_SCHEMA

# Grid-size histogram buckets by the larger side: (label, lowest side, highest side).
SIZE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1-5", 1, 5),
    ("6-10", 6, 10),
    ("11-20", 11, 20),
    ("21-30", 21, 30),
    (">30", 31, 1 << 30),
)


def _scan_shards(root: Path, infos: list[shards.ShardInfo]) -> pl.LazyFrame:
    return (
        pl.scan_parquet([root / i.path for i in infos])
        .select("id", "source", "split", "train", "test", "extra")
        .with_row_index("row")
    )


def _grids(tasks: pl.LazyFrame) -> pl.LazyFrame:
    """One row per grid (hidden test outputs left out): source, split, row, g, h, w, side."""
    keys = ("source", "split", "row")
    pairs = pl.concat(
        [
            tasks.select(*keys, pl.col(role).alias("p")).explode("p").filter(pl.col("p").is_not_null())
            for role in ("train", "test")
        ]
    )
    grids = pl.concat(
        [pairs.select(*keys, pl.col("p").struct.field(k).alias("g")) for k in ("input", "output")]
    )
    return (
        grids.filter(pl.col("g").is_not_null())
        .with_columns(
            h=pl.col("g").list.len(),
            w=pl.col("g").list.eval(pl.element().list.len()).list.max().fill_null(0),
            w_min=pl.col("g").list.eval(pl.element().list.len()).list.min().fill_null(0),
        )
        .with_columns(side=pl.max_horizontal("h", "w"))
    )


def _records(df: pl.DataFrame) -> dict[tuple, dict]:
    """``{(source, split): {column: value}}`` of a frame keyed by source and split."""
    return {(r.pop("source"), r.pop("split")): r for r in df.to_dicts()}


def _damaged(root: Path, infos: list[shards.ShardInfo], why: str) -> ShardError:
    """The queries found something a shard must not hold (or polars could not read one): let the checking
    shard reader name the file and the problem."""
    for source, split in sorted({(i.source, i.split) for i in infos}):
        for _ in shards.iter_batches(root, sources=[source], splits=[split], batch_size=4096):
            pass  # raises ShardError naming the file
    return ShardError(f"{root}: the shards cannot be summarised: {why}", hint=shards.REBUILD_HINT)


def _shard_stats(root: Path, infos: list[shards.ShardInfo]) -> tuple[dict, dict]:
    try:
        return _shard_queries(root, infos)
    except pl.exceptions.PolarsError as e:
        raise _damaged(root, infos, f"{type(e).__name__}: {e}") from None


def _shard_queries(root: Path, infos: list[shards.ShardInfo]) -> tuple[dict, dict]:
    tasks = _scan_shards(root, infos)
    grids = _grids(tasks)
    keys = ("source", "split")
    per_task = tasks.select(
        *keys,
        "row",
        train=pl.col("train").list.len(),
        test=pl.col("test").list.len(),
        family=pl.col("extra").str.json_path_match("$.family"),
        no_id=pl.any_horizontal(pl.col("id", "source", "split").is_null()),
    )
    task_side = grids.group_by(*keys, "row").agg(pl.col("side").max())
    counts, sizes, over_tasks, colors, fams = pl.collect_all(
        [
            per_task.group_by(keys).agg(
                tasks=pl.len(),
                train_pairs=pl.col("train").sum(),
                test_pairs=pl.col("test").sum(),
                no_id=pl.col("no_id").sum(),
            ),
            grids.group_by(keys).agg(
                grids=pl.len(),
                max_side=pl.col("side").max(),
                over_30_grids=(pl.col("side") > MAX_GRID_SIDE).sum(),
                bad_grids=((pl.col("h") == 0) | (pl.col("w") == 0) | (pl.col("w_min") != pl.col("w"))).sum(),
                **{
                    label: ((pl.col("side") >= lo) & (pl.col("side") <= hi)).sum()
                    for label, lo, hi in SIZE_BUCKETS
                },
            ),
            task_side.group_by(keys).agg(over_30_tasks=(pl.col("side") > MAX_GRID_SIDE).sum()),
            grids.select(*keys, "g").explode("g").explode("g").group_by(*keys, "g").len(),
            per_task.filter(pl.col("family").is_not_null())
            .join(task_side, on=[*keys, "row"], how="left")
            .group_by(*keys, "family")
            .agg(
                tasks=pl.len(),
                train_pairs_per_task=pl.col("train").mean().round(2),
                mean_max_side=pl.col("side").mean().round(2),
                max_side=pl.col("side").max(),
            ),
        ]
    )
    if counts["no_id"].sum() or sizes["bad_grids"].sum() or not colors["g"].is_between(0, 9).all():
        raise _damaged(root, infos, "a grid is empty, ragged or has a color outside 0-9")
    out = _per_split(counts, sizes, over_tasks, colors)
    families: dict[str, dict[str, dict]] = {}
    for r in fams.sort("source", "split", "family").to_dicts():
        families.setdefault(r.pop("source"), {}).setdefault(r.pop("split"), {})[r.pop("family")] = r
    return out, families


def _per_split(
    counts: pl.DataFrame, sizes: pl.DataFrame, over_tasks: pl.DataFrame, colors: pl.DataFrame
) -> dict[str, dict[str, dict]]:
    """``{source: {split: counts}}`` from the per-(source, split) query results of ``_shard_queries``."""
    color_cells: dict[tuple, list[int]] = {}
    for source, split, color, n in colors.iter_rows():  # at most 10 rows per source and split
        color_cells.setdefault((source, split), [0] * 10)[int(color)] += n
    sizes_by, over_by = _records(sizes), _records(over_tasks)
    out: dict[str, dict[str, dict]] = {}
    for key, c in sorted(_records(counts).items()):
        g = sizes_by.get(key, {})
        cells = color_cells.get(key, [0] * 10)
        out.setdefault(key[0], {})[key[1]] = {
            "tasks": c["tasks"],
            "train_pairs": c["train_pairs"],
            "test_pairs": c["test_pairs"],
            "grids": g.get("grids", 0),
            "grid_sizes": {b[0]: g.get(b[0], 0) for b in SIZE_BUCKETS},
            "max_side": g.get("max_side") or 0,
            "over_30_grids": g.get("over_30_grids", 0),
            "over_30_tasks": over_by.get(key, {}).get("over_30_tasks", 0),
            "colors_used": [i for i in range(10) if cells[i]],
            "color_cells": cells,
            "quarantined": 0,
        }
    return out


def dataset_stats(root: Path, sources: Iterable[str] | None = None) -> dict:
    """``{source: {split: counts + quarantined}}`` of a built dataset, plus report row counts, plus
    ``families`` (``{source: {split: {family: ...}}}``) for sources whose tasks carry a family label."""
    root = Path(root)
    infos = shards.list_shards(root, sources)
    out, families = _shard_stats(root, infos) if infos else ({}, {})
    quarantine: dict[str, int] = {}
    if reports.has_report(root, "quarantine"):
        q = reports.scan_report(root, "quarantine")
        if sources is not None:
            q = q.filter(pl.col("source").is_in(list(sources)))
        q = q.with_columns(
            split=pl.when(pl.col("split").fill_null("") == "")
            .then(pl.lit("unknown"))
            .otherwise(pl.col("split"))
        )
        with reports.readable(root, ["quarantine"]):
            by_reason, by_split = pl.collect_all(
                [q.group_by("reason").len().sort("reason"), q.group_by("source", "split").len()]
            )
        quarantine = dict(by_reason.iter_rows())
        for source, split, n in by_split.iter_rows():
            entry = out.setdefault(source, {}).setdefault(split, {"tasks": 0, "quarantined": 0})
            entry["quarantined"] += n
    return {
        "sources": out,
        "quarantined_by_reason": quarantine,
        "reports": reports.count_rows(root),
        "families": families,
    }


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()
