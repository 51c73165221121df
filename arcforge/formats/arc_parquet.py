"""Parquet copies of ARC on the Hub: one task per row, read in record batches (memory bounded by a batch).

Each row has ``train`` and ``test`` columns, each a list of ``{input, output}`` (grids as lists of lists of
ints), or the same as a JSON string; ``id`` (or ``task_id``, ``name``) gives the key, else ``r<N>``
(8 digits, the row number). Other columns are kept when they are plain strings or numbers. A bad row is
quarantined on its own; a file that is not Parquet (or lacks the columns) as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from arcforge.formats import Item, Member, RawTask, Rejected, register
from arcforge.task import BAD_STRUCTURE, INVALID_JSON, TaskFormatError, parse_task_object

BATCH_ROWS = 1024
ID_COLUMNS = ("id", "task_id", "name")
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


def _open(member: Member):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(member.stream())
    except (OSError, pa.ArrowException) as e:
        raise TaskFormatError(BAD_STRUCTURE, f"not a readable Parquet file: {e}") from None
    cols = set(pf.schema_arrow.names)
    if not {"train", "test"} <= cols:
        raise TaskFormatError(BAD_STRUCTURE, f"Parquet columns {sorted(cols)} lack 'train' and 'test'")
    return pf


def _value(v: Any) -> Any:
    return msgspec.json.decode(v) if isinstance(v, str | bytes) else v


def _key(row: dict[str, Any], index: int) -> str:
    for col in ID_COLUMNS:
        v = row.get(col)
        if isinstance(v, str) and v.strip():
            return _SAFE_KEY.sub("_", v.strip().removesuffix(".json"))[:120]
    return f"r{index:08d}"


@register("arc_parquet")
class ArcParquetFormat:
    name = "arc_parquet"
    streaming = True

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        pf = _open(member)
        index, seen = 0, set()
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                key = _key(row, index)
                key = f"{key}_r{index:08d}" if key in seen else key
                seen.add(key)
                index += 1
                yield self._row(row, key, index - 1)

    @staticmethod
    def _row(row: dict[str, Any], key: str, index: int) -> Item:
        try:
            obj = {"train": _value(row["train"]), "test": _value(row["test"])}
        except msgspec.DecodeError as e:
            return Rejected(key, INVALID_JSON, f"row {index}: {e}")
        try:
            train, test, _ = parse_task_object(obj)
        except TaskFormatError as e:
            return Rejected(key, e.reason, f"row {index}: {e.detail}")
        extra = {
            k: v
            for k, v in row.items()
            if k not in ("train", "test") and isinstance(v, str | int | float) and not isinstance(v, bool)
        }
        extra["row"] = index
        return RawTask(key, train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return False  # not JSON: never detected in --local folders
