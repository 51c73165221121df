"""Helpers for the dedup tests: TASK_SCHEMA tables read straight from the real upstream JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from arcforge.task import Task, parse_task_object, tasks_to_table


def load_tasks(
    shared: Path, repo: str, pattern: str, source: str, split: str, id_root: str = ""
) -> list[Task]:
    """Tasks of ``shared/<repo>/<pattern>``; ids are ``source/<path relative to id_root, no extension>``."""
    base = shared / repo
    tasks = []
    for p in sorted(base.glob(pattern)):
        rel = p.relative_to(base / id_root) if id_root else p.relative_to(base)
        train, test, extra = parse_task_object(json.loads(p.read_bytes()))
        tasks.append(
            Task(
                id=f"{source}/{rel.with_suffix('').as_posix()}",
                source=source,
                split=split,
                train=train,
                test=test,
                path=p.relative_to(base).as_posix(),
                extra=extra,
            )
        )
    return tasks


def arc_table(shared: Path) -> pa.Table:
    """ARC-AGI-1 (training + evaluation), ARC-AGI-2 (training + evaluation) and ConceptARC."""
    tasks = []
    for split in ("training", "evaluation"):
        tasks += load_tasks(shared, "fchollet/ARC-AGI", f"data/{split}/*.json", "arc_agi_1", split, "data")
        tasks += load_tasks(shared, "arcprize/ARC-AGI-2", f"data/{split}/*.json", "arc_agi_2", split, "data")
    tasks += load_tasks(shared, "victorvikram/ConceptARC", "corpus/*/*.json", "concept_arc", "training")
    tasks += load_tasks(shared, "victorvikram/ConceptARC", "MinimalTasks/*.json", "concept_arc", "training")
    return tasks_to_table(tasks)
