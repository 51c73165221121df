"""Shards for the trainer tests, built from real ARC-AGI-1 tasks in ../shared (small grids only, so the
tiny models stay fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcforge import shards
from arcforge.task import Task, parse_task_object, tasks_to_table

ARC1 = Path("fchollet/ARC-AGI/data")


def load_arc1(shared: Path, split: str, n: int, max_side: int = 10) -> list[Task]:
    """The first ``n`` tasks of an ARC-AGI-1 split (file order) whose grids are at most ``max_side``."""
    out = []
    for f in sorted((shared / ARC1 / split).glob("*.json")):
        train, test, _ = parse_task_object(json.loads(f.read_text()))
        t = Task(id=f"arc_agi_1/data/{split}/{f.stem}", source="arc_agi_1", split=split, train=train, test=test)
        if t.max_side() <= max_side:
            out.append(t)
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="session")
def arc_shards(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built-dataset folder: 48 small training tasks and 8 evaluation tasks of ARC-AGI-1."""
    root = tmp_path_factory.mktemp("arc_shards")
    tasks = load_arc1(shared_sources, "training", 48) + load_arc1(shared_sources, "evaluation", 8)
    shards.write_shards(tasks_to_table(tasks), root)
    return root
