"""``kaggle``: ``<prefix>_<subset>_challenges.json`` and ``<prefix>_<subset>_solutions.json`` per subset.

The layout of the ARC Prize's Kaggle files, which TRM's and HRM's ``build_arc_dataset.py``, ARChitects and
NVARC read: challenges map a task id to ``{"train": [{"input", "output"}...], "test": [{"input"}...]}``,
solutions map it to the list of its test outputs. ``<prefix>_ids.json`` maps every id back to the
arcforge id. A task with a hidden test output has no solution to write: it is left out and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from arcforge.export import register
from arcforge.export.arrowtext import hidden_outputs, kaggle_json
from arcforge.export.config import ExportConfig
from arcforge.export.jsonfile import JsonObjectFile
from arcforge.export.select import Selection, Subset
from arcforge.task import Task

HIDDEN_OUTPUT = "hidden test output"


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

    def add_batch(self, batch: pa.RecordBatch, export_ids: list[str], subsets: list[Subset]) -> None:
        hidden = hidden_outputs(batch)
        challenges, solutions = kaggle_json(batch)
        task_ids = batch.column("id").to_pylist()
        for j, (export_id, subset) in enumerate(zip(export_ids, subsets, strict=True)):
            if hidden[j]:
                self.skipped[HIDDEN_OUTPUT] = self.skipped.get(HIDDEN_OUTPUT, 0) + 1
                continue
            chal, sols = self._files(subset.name)
            chal.put(export_id, raw=challenges[j].encode())
            sols.put(export_id, raw=solutions[j].encode())
            self.ids.put(export_id, task_ids[j])
            self.written[subset.name] = self.written.get(subset.name, 0) + 1

    def _files(self, subset: str) -> tuple[JsonObjectFile, JsonObjectFile]:
        if subset not in self.files:
            base = f"{self.prefix}_{subset}"
            self.files[subset] = (
                JsonObjectFile(self.folder / f"{base}_challenges.json"),
                JsonObjectFile(self.folder / f"{base}_solutions.json"),
            )
        return self.files[subset]

    def close(self) -> dict[str, Any]:
        self.abort()
        return {"tasks": self.written, "skipped": self.skipped}

    def abort(self) -> None:
        for chal, sols in self.files.values():
            chal.close()
            sols.close()
        self.ids.close()
