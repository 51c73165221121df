"""Decontamination and de-duplication (PLACEHOLDER CONTRACT: the dedup work replaces the body).

The build calls ``run_dedup`` once on the full table of validated tasks. Rows whose (source, split) is in
``eval_splits`` are the evaluation reference and are never removed; ``extra_reference`` (tasks from
``--eval-local``) is reference-only and never written. Within-collection dedup among non-reference rows
is always on; eval exclusion only with ``exclude_eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

EXCLUDED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("split", pa.string()),
        pa.field("eval_ids", pa.list_(pa.string())),
        pa.field("level", pa.string()),
        pa.field("similarity", pa.float64()),
    ]
)
DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("kept_id", pa.string()),
        pa.field("kept_source", pa.string()),
        pa.field("dropped_id", pa.string()),
        pa.field("dropped_source", pa.string()),
        pa.field("level", pa.string()),
    ]
)


@dataclass
class DedupResult:
    table: pa.Table  # kept rows (TASK_SCHEMA)
    excluded: pa.Table  # EXCLUDED_SCHEMA: non-eval rows removed because they copy an eval task
    duplicates: pa.Table  # DUPLICATES_SCHEMA: within-collection copies dropped
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"excluded.exact": 3, "duplicates.symmetric": 9}
    reported: pa.Table | None = None  # matches reported but not dropped (e.g. trivial leaked pairs)


def run_dedup(
    table: pa.Table,
    *,
    eval_splits: set[tuple[str, str]],
    extra_reference: pa.Table | None = None,
    exclude_eval: bool = False,
    priority: Sequence[str] = (),
) -> DedupResult:
    return DedupResult(table, EXCLUDED_SCHEMA.empty_table(), DUPLICATES_SCHEMA.empty_table())
