"""The demo's real-task figure, printed and saved next to its synthetic score.

The demo's model trains on synthetic families only; this says what that is worth on real ARC: the
``REAL_TASKS`` smallest ARC-AGI-1 evaluation tasks of the demo's own build (smallest = by the tokens of a
task's longest example, then by id: a fixed set), scored with the demo's recipe (voting, without and with
test-time training) and teacher-forced on their test-output tokens. They are in the build only when ARC-AGI-1
was fetched (GitHub or a mirror): a fresh clone offline has no real task, and the figure says so instead.
The smallest tasks are the ones a model with the demo's short context can hold whole, and the cheapest to
score (docs/training.md has the cost).

Torch-free: the scoring itself is ``arcforge.train.demo.score_real``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arcforge.shards import read_tasks
from arcforge.task import Task
from arcforge.train.tokenize import example_length

REAL_SOURCE = "arc_agi_1"
REAL_SPLIT = "evaluation"
REAL_TASKS = 20  # the smallest ARC-AGI-1 evaluation tasks scored after training


def task_tokens(t: Task) -> int:
    """Tokens of the task's longest example (every train pair, one test input and its output)."""
    pairs = [(p.input, p.output) for p in t.train if p.output is not None]
    return max((example_length(pairs, p.input, p.output) for p in t.test if p.output is not None), default=0)


def real_tasks(data_dir: Path, fetched: list[str], n: int = REAL_TASKS) -> tuple[list[Task], str | None]:
    """The ``n`` smallest ARC-AGI-1 evaluation tasks of the build, or ``([], why not)``."""
    if REAL_SOURCE not in fetched:
        return [], (
            f"no real task to score: {REAL_SOURCE} was not fetched (offline, and no mirror holds it); "
            "the scores are on synthetic tasks only"
        )
    tasks = [
        t
        for t in read_tasks(data_dir, sources=[REAL_SOURCE], splits=[REAL_SPLIT])
        if any(p.output is not None for p in t.test)
    ]
    if not tasks:
        return [], f"no real task to score: the build holds no {REAL_SOURCE} {REAL_SPLIT} task with an answer"
    return sorted(tasks, key=lambda t: (task_tokens(t), t.id))[:n], None


def real_figure(tasks: list[Task], why: str | None, metrics: dict[str, Any] | None, seconds: float) -> dict:
    """What ``DemoResult.real`` holds: the set, pass@2 and exact match with and without test-time training,
    teacher-forced token accuracy, and the seconds scoring took; or ``tasks`` 0 and ``why``."""
    if not tasks or metrics is None:
        return {"source": REAL_SOURCE, "split": REAL_SPLIT, "tasks": 0, "why": why}
    m = metrics
    return {
        "source": REAL_SOURCE,
        "split": REAL_SPLIT,
        "tasks": len(tasks),
        "selection": f"the {len(tasks)} smallest by the tokens of their longest example",
        "test_inputs": m["test_inputs"],
        "scored": m["scored"],
        "pass2": round(m["pass@2"], 4),
        "pass2_no_ttt": round(m.get("pass@2_before", m["pass@2"]), 4),
        "exact": round(m["exact_match"], 4),
        "exact_no_ttt": round(m.get("exact_match_before", m["exact_match"]), 4),
        "token_accuracy": round(m["token_accuracy"], 4),
        "seconds": round(seconds, 1),
        "ids": [t.id for t in tasks],
    }
