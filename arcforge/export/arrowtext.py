"""Whole batches of tasks as JSON or text, computed by polars on the Arrow columns (no per-task Python
objects): the fast path of the ``kaggle`` and ``jsonl`` writers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def _frame(batch: pa.RecordBatch) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_batches([batch.select(["train", "test"])]))  # type: ignore[return-value]


def hidden_outputs(batch: pa.RecordBatch) -> np.ndarray:
    """Which tasks have a pair whose output is missing (a hidden test answer)."""
    out = np.zeros(batch.num_rows, dtype=bool)
    for name in ("train", "test"):
        pairs = batch.column(name)
        nulls = np.asarray(pc.list_flatten(pairs).field("output").is_null(), dtype=bool)
        out[np.asarray(pc.list_parent_indices(pairs))[nulls]] = True
    return out


def kaggle_json(batch: pa.RecordBatch) -> tuple[list[str], list[str]]:
    """Every challenge (``{"train": [...], "test": [{"input"}...]}``) and solutions (``[output, ...]``)."""
    df = _frame(batch).select(
        pl.struct(pl.col("train"), pl.col("test").list.eval(pl.struct(pl.element().struct.field("input"))))
        .struct.json_encode()
        .alias("challenge"),
        pl.struct(pl.col("test").list.eval(pl.element().struct.field("output")).alias("s"))
        .struct.json_encode()
        .alias("solutions"),
    )
    return df["challenge"].to_list(), [s[5:-1] for s in df["solutions"].to_list()]  # '{"s":[...]}' -> '[...]'


def _text(grid: pl.Expr) -> pl.Expr:
    """A grid as rows of digits, one row per line."""
    return grid.list.eval(pl.element().list.eval(pl.element().cast(pl.String)).list.join("")).list.join("\n")


def prompt_parts(batch: pa.RecordBatch) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Per task: its demonstrations as prompt text, its test inputs' text, its test outputs' text."""
    demo = pl.concat_str(
        [
            pl.lit("input:\n"),
            _text(pl.element().struct.field("input")),
            pl.lit("\noutput:\n"),
            _text(pl.element().struct.field("output")),
            pl.lit("\n\n"),
        ]
    )
    df = _frame(batch).select(
        pl.col("train").list.eval(demo).list.join("").alias("demos"),
        pl.col("test").list.eval(_text(pl.element().struct.field("input"))).alias("inputs"),
        pl.col("test").list.eval(_text(pl.element().struct.field("output"))).alias("outputs"),
    )
    return df["demos"].to_list(), df["inputs"].to_list(), df["outputs"].to_list()
