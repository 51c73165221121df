"""Tasks and shards for the trainer tests.

``small_tasks`` needs no real data: ARC-style tasks of the built-in generator (24 families, medium
difficulty), so the model, packing and data-stream tests run on a clone without ../shared.
``load_arc1`` reads real ARC-AGI-1 tasks from the offline mirror, for tests that are about real data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from arcforge import synthetic
from arcforge.build import shard_writer
from arcforge.task import Task, parse_task_object, tasks_to_table

ARC1 = Path("fchollet/ARC-AGI/data")
# The smallest model the CLI trainer tests use (``train`` options), then the run options most of them add.
TINY_MODEL_CLI = ["--d-model", "32", "--layers", "1", "--heads", "2", "--seq-len", "512", "--batch-size", "2"]
TINY_CLI = [*TINY_MODEL_CLI, "--eval-tasks", "0", "--amp", "off", "--threads", "1", "--no-tensorboard"]


def load_arc1(shared: Path, split: str, n: int, max_side: int = 10) -> list[Task]:
    """The first ``n`` tasks of an ARC-AGI-1 split (file order) whose grids are at most ``max_side``."""
    out = []
    for f in sorted((shared / ARC1 / split).glob("*.json")):
        train, test, _ = parse_task_object(json.loads(f.read_text()))
        t = Task(
            id=f"arc_agi_1/data/{split}/{f.stem}", source="arc_agi_1", split=split, train=train, test=test
        )
        if t.max_side() <= max_side:
            out.append(t)
        if len(out) == n:
            break
    return out


def small_tasks(split: str, n: int, max_side: int = 10, difficulty: str = "medium") -> list[Task]:
    """``n`` generated ARC-style tasks whose grids are at most ``max_side`` (deterministic; the split
    decides the seed, so training and evaluation tasks differ), with ids ``tiny/<split>/<family>/<i>``."""
    seed = {"training": 1, "evaluation": 2}.get(split, 3)
    out = []
    for t in synthetic.generate(4 * n + 24, seed, difficulty=difficulty):
        if t.max_side() <= max_side:
            out.append(replace(t, id=f"tiny/{split}/{t.id.split('/', 1)[1]}", source="tiny", split=split))
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="session")
def arc_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built-dataset folder: 48 small training tasks and 8 evaluation tasks (generated)."""
    root = tmp_path_factory.mktemp("arc_shards")
    tasks = small_tasks("training", 48) + small_tasks("evaluation", 8)
    shard_writer.write_shards(tasks_to_table(tasks), root)
    return root
