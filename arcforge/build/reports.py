"""The build's reports: what was quarantined, excluded, dropped as a duplicate, or reported and kept.

They live in their own folder, as JSON Lines, so that the dataset's Parquet files are exactly its shards
(``pl.scan_parquet("out/**/*.parquet")`` reads the tasks and nothing else)::

    out/reports/quarantine.jsonl   source, path, reason, detail, split (task.QUARANTINE_SCHEMA)
    out/reports/excluded.jsonl     evaluation task copies removed by --exclude-eval (dedup.EXCLUDED_SCHEMA)
    out/reports/duplicates.jsonl   copies within the collection, dropped (dedup.DUPLICATES_SCHEMA)
    out/reports/reported.jsonl     matches that were kept: trivial pairs, eval/eval copies (REPORTED_SCHEMA)
    out/reports/rules.jsonl        programs that implement a reference task's rule (rule_stage.RULES_SCHEMA)
    out/reports/rule_errors.jsonl  programs that failed in the sandbox (rule_stage.RULE_ERRORS_SCHEMA)
    out/reports/rule_lineage.jsonl declared lineage that execution contradicts (rule_stage.LINEAGE_SCHEMA)

One JSON object per line, readable by polars, duckdb, ``datasets`` and ``jq``. Readers go through
``scan_report`` (a polars lazy frame with the report's schema) so that queries never loop over rows in
Python. Writing is deterministic: the same rows give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa

from arcforge.build.decon import EXCLUDED_SCHEMA, REPORTED_SCHEMA
from arcforge.build.dedup import DUPLICATES_SCHEMA
from arcforge.build.rule_stage import LINEAGE_SCHEMA, RULE_ERRORS_SCHEMA, RULES_SCHEMA
from arcforge.errors import ShardError
from arcforge.task import QUARANTINE_SCHEMA

REPORTS_DIR = "reports"
SCHEMAS: dict[str, pa.Schema] = {
    "quarantine": QUARANTINE_SCHEMA,
    "excluded": EXCLUDED_SCHEMA,
    "duplicates": DUPLICATES_SCHEMA,
    "reported": REPORTED_SCHEMA,
    "rules": RULES_SCHEMA,
    "rule_errors": RULE_ERRORS_SCHEMA,
    "rule_lineage": LINEAGE_SCHEMA,
}
# Paths relative to a dataset folder, in a fixed order (what the build writes and publish uploads).
REPORT_FILES: tuple[str, ...] = tuple(f"{REPORTS_DIR}/{name}.jsonl" for name in SCHEMAS)
# Where builds before the reports folder put them (recognised so that a clear error can say so).
OLD_REPORT_FILES = tuple(f"{name}.parquet" for name in SCHEMAS)


def report_path(root: Path, name: str) -> Path:
    if name not in SCHEMAS:
        raise ValueError(f"unknown report {name!r} (known: {', '.join(SCHEMAS)})")
    return Path(root) / REPORTS_DIR / f"{name}.jsonl"


def write_report(table: pa.Table, path: Path) -> None:
    """Write ``table`` as JSON Lines (an empty table gives an empty file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.from_arrow(table).write_ndjson(path)  # type: ignore[union-attr]


def write_reports(root: Path, tables: dict[str, pa.Table]) -> list[str]:
    """Write every report under ``root/reports/``; returns their paths relative to ``root``."""
    out = []
    for name in SCHEMAS:
        write_report(tables.get(name, SCHEMAS[name].empty_table()), report_path(root, name))
        out.append(f"{REPORTS_DIR}/{name}.jsonl")
    return out


def polars_schema(name: str) -> pl.Schema:
    return pl.from_arrow(SCHEMAS[name].empty_table()).schema  # type: ignore[union-attr]


def has_report(root: Path, name: str) -> bool:
    return report_path(root, name).is_file()


def scan_report(root: Path, name: str) -> pl.LazyFrame:
    """A lazy frame over one report of the dataset at ``root`` (a clear error if it is not there)."""
    path = report_path(root, name)
    if not path.is_file():
        if (Path(root) / f"{name}.parquet").is_file():
            raise ShardError(
                f"{root}: reports are in the old layout ({name}.parquet beside the shards)",
                hint="build the dataset again with this arcforge version",
            )
        raise ShardError(
            f"{path}: report not found (not a dataset built by arcforge?)",
            hint="run `arcforge build --out DIR` first",
        )
    return pl.scan_ndjson(path, schema=polars_schema(name))


@contextmanager
def readable(root: Path, names: Iterable[str]) -> Iterator[None]:
    """Run queries over reports; a report polars cannot read becomes a ShardError naming its file."""
    try:
        yield
    except pl.exceptions.PolarsError as e:
        for name in names:
            if has_report(root, name):
                try:
                    scan_report(root, name).collect()
                except pl.exceptions.PolarsError as bad:
                    raise ShardError(
                        f"{report_path(root, name)}: not a readable report: {bad}",
                        hint="rebuild the dataset (arcforge build)",
                    ) from None
        raise ShardError(
            f"{Path(root) / REPORTS_DIR}: the reports cannot be read: {e}",
            hint="rebuild the dataset (arcforge build)",
        ) from None


def read_report(root: Path, name: str) -> pa.Table:
    """One report as an Arrow table with exactly its schema."""
    with readable(root, [name]):
        df = scan_report(root, name).collect()
    return df.to_arrow().cast(SCHEMAS[name])


def count_rows(root: Path) -> dict[str, int]:
    """Rows per report that exists: ``{"quarantine": n, ...}``."""
    names = [n for n in SCHEMAS if has_report(root, n)]
    with readable(root, names):
        return {name: scan_report(root, name).select(pl.len()).collect().item() for name in names}
