"""Exports for other trainers, one writer per format, registered by name.

A writer receives the exported tasks one at a time (read through ``arcforge.shards``) with the id they get
in its files and their subset, and writes into a folder that ``arcforge.export.run`` swaps into place when
it is complete. Adding a format = one module here that calls ``@register("name")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from arcforge.errors import ExportError
from arcforge.export.config import FORMATS, ExportConfig
from arcforge.formats.registry import Registry

if TYPE_CHECKING:  # the CLI imports this package for --help: keep pyarrow out of that import
    import pyarrow as pa

    from arcforge.export.select import Selection, Subset
    from arcforge.task import Task

_BUILTIN_MODULES = FORMATS


class Writer(Protocol):
    def __init__(self, folder: Path, cfg: ExportConfig, sel: Selection) -> None: ...

    def add_batch(self, batch: pa.RecordBatch, export_ids: list[str], subsets: list[Subset]) -> None:
        """Write a batch of tasks (TASK_SCHEMA rows), with their exported ids and subsets."""

    def close(self) -> dict[str, Any]:
        """Finish the files; returns what was written (counts), for export.json."""

    def abort(self) -> None:
        """Close open files after an error (the folder is then removed)."""


def each_task(batch: pa.RecordBatch) -> list[Task]:
    """The batch's rows as ``Task`` records (for writers that work a task at a time)."""
    from arcforge.task import tasks_from_batch

    return tasks_from_batch(batch)


_WRITERS: Registry[type[Writer]] = Registry(
    "export format", "export formats", ExportError, tuple(f"arcforge.export.{m}" for m in _BUILTIN_MODULES)
)
register = _WRITERS.register


def writers() -> dict[str, type[Writer]]:
    """Every registered export format by name (the built-ins first)."""
    return _WRITERS.classes()


def get_writer(name: str) -> type[Writer]:
    known = writers()
    if name not in known:
        raise ExportError(f"unknown export format {name!r}", hint=f"one of {', '.join(known)}")
    return known[name]
