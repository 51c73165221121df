"""``kaggle``: ``<prefix>_<subset>_challenges.json`` and ``<prefix>_<subset>_solutions.json`` per subset.

The layout of the ARC Prize's Kaggle files, which TRM's and HRM's ``build_arc_dataset.py``, ARChitects and
NVARC read: challenges map a task id to ``{"train": [{"input", "output"}...], "test": [{"input"}...]}``,
solutions map it to the list of its test outputs. ``<prefix>_ids.json`` maps every id back to the
arcforge id. A task with a hidden test output has no solution to write: it is left out and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arcforge.export import register
from arcforge.export.config import ExportConfig
from arcforge.export.jsonfile import JsonObjectFile, encode
from arcforge.export.select import Selection, Subset
from arcforge.task import Task

HIDDEN_OUTPUT = "hidden test output"


def challenge(task: Task) -> dict[str, Any]:
    return {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train],
            "test": [{"input": p.input.tolist()} for p in task.test]}


def solutions(task: Task) -> list[Any]:
    return [p.output.tolist() for p in task.test]


def has_hidden_output(task: Task) -> bool:
    return any(p.output is None for p in task.pairs)


@register("kaggle")
class KaggleWriter:
    def __init__(self, folder: Path, cfg: ExportConfig, sel: Selection) -> None:
        self.folder, self.prefix = Path(folder), cfg.prefix
        self.files: dict[str, tuple[JsonObjectFile, JsonObjectFile]] = {}
        self.ids = JsonObjectFile(self.folder / f"{self.prefix}_ids.json")
        self.skipped: dict[str, int] = {}
        self.written: dict[str, int] = {}

    def add(self, task: Task, export_id: str, subset: Subset) -> None:
        if has_hidden_output(task):
            self.skipped[HIDDEN_OUTPUT] = self.skipped.get(HIDDEN_OUTPUT, 0) + 1
            return
        if subset.name not in self.files:
            base = self.folder / f"{self.prefix}_{subset.name}"
            self.files[subset.name] = (JsonObjectFile(base.with_name(base.name + "_challenges.json")),
                                       JsonObjectFile(base.with_name(base.name + "_solutions.json")))
        chal, sols = self.files[subset.name]
        chal.put(export_id, raw=encode(challenge(task)))
        sols.put(export_id, raw=encode(solutions(task)))
        self.ids.put(export_id, task.id)
        self.written[subset.name] = self.written.get(subset.name, 0) + 1

    def close(self) -> dict[str, Any]:
        self.abort()
        return {"tasks": self.written, "skipped": self.skipped}

    def abort(self) -> None:
        for chal, sols in self.files.values():
            chal.close()
            sols.close()
        self.ids.close()
