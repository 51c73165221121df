"""``jsonl``: text for fine-tuning language models, ``<subset>.jsonl``, one line per task version and test
input.

Each line is a JSON object::

    {"id": "007bbfb7", "task": "arc_agi_1/training/007bbfb7", "subset": "training", "test_index": 0,
     "prompt": "input:\\n077\\n777\\n077\\noutput:\\n...\\n\\ninput:\\n...\\noutput:\\n",
     "completion": "000077077\\n...\\n"}

A grid is rendered as its rows, each row the digits of its colors (``077``), one row per line. The prompt
holds every demonstration pair as ``input:``, the grid, ``output:``, the grid, then a blank line; then
the test input and ``output:``. The completion is the test output's rows, each ending with a newline. With
``--num-aug N`` each task also appears in up to N augmented versions (``arcforge.export.augment``: the
same transforms as ``trm``, without the translation), whose ``id`` is TRM's name of the version. A task
with a hidden test output is left out and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from arcforge.export import each_task, register
from arcforge.export.arrowtext import hidden_outputs, prompt_parts
from arcforge.export.augment import aug_name, augmentations, dihedral, task_rng
from arcforge.export.config import ExportConfig
from arcforge.export.jsonfile import encode
from arcforge.export.kaggle import HIDDEN_OUTPUT
from arcforge.export.select import Selection, Subset
from arcforge.task import Task

_ZERO, _NEWLINE = ord("0"), ord("\n")


def render(grid: np.ndarray) -> str:
    """Rows of digits, one per line (no final newline)."""
    h = grid.shape[0]
    text = np.concatenate([grid.astype(np.uint8) + _ZERO, np.full((h, 1), _NEWLINE, np.uint8)], axis=1)
    return text.tobytes()[:-1].decode("ascii")


def prompt(demos: list[tuple[np.ndarray, np.ndarray]], test_input: np.ndarray) -> str:
    shown = "".join(f"input:\n{render(i)}\noutput:\n{render(o)}\n\n" for i, o in demos)
    return f"{shown}input:\n{render(test_input)}\noutput:\n"


def lines(
    task: Task, export_id: str, subset: str, name: str | None = None, grids: tuple[list, list] | None = None
) -> list[bytes]:
    """The JSON lines of one version of a task (``grids``: its (train, test) pairs, default the task's)."""
    train, test = grids or (
        [(p.input, p.output) for p in task.train],
        [(p.input, p.output) for p in task.test],
    )
    return [
        encode(
            {
                "id": name or export_id,
                "task": task.id,
                "subset": subset,
                "test_index": k,
                "prompt": prompt(train, i),
                "completion": render(o) + "\n",
            }
        )
        + b"\n"
        for k, (i, o) in enumerate(test)
    ]


@register("jsonl")
class JsonlWriter:
    def __init__(self, folder: Path, cfg: ExportConfig, sel: Selection) -> None:
        self.folder, self.cfg = Path(folder), cfg
        self.files: dict[str, Any] = {}
        self.written: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.line_count = 0

    def add_batch(self, batch: pa.RecordBatch, export_ids: list[str], subsets: list[Subset]) -> None:
        hidden = hidden_outputs(batch)
        demos, inputs, outputs = prompt_parts(batch)
        task_ids = batch.column("id").to_pylist()
        tasks = each_task(batch) if self.cfg.augmentations else None
        for j, (export_id, subset) in enumerate(zip(export_ids, subsets, strict=True)):
            if hidden[j]:
                self.skipped[HIDDEN_OUTPUT] = self.skipped.get(HIDDEN_OUTPUT, 0) + 1
                continue
            out = [
                encode(
                    {
                        "id": export_id,
                        "task": task_ids[j],
                        "subset": subset.name,
                        "test_index": k,
                        "prompt": f"{demos[j]}input:\n{i}\noutput:\n",
                        "completion": o + "\n",
                    }
                )
                + b"\n"
                for k, (i, o) in enumerate(zip(inputs[j], outputs[j], strict=True))
            ]
            if tasks is not None:
                out += self._augmented(tasks[j], export_id, subset.name)
            self._file(subset.name).write(b"".join(out))
            self.line_count += len(out)
            self.written[subset.name] = self.written.get(subset.name, 0) + 1

    def _file(self, subset: str) -> Any:
        if subset not in self.files:
            self.files[subset] = open(self.folder / f"{subset}.jsonl", "wb")  # noqa: SIM115 (closed in abort)
        return self.files[subset]

    def _augmented(self, task: Task, export_id: str, subset: str) -> list[bytes]:
        pairs = [(p.input.astype(np.uint8), p.output.astype(np.uint8)) for p in task.pairs]
        ts, perms = augmentations(pairs, self.cfg.augmentations, task_rng(self.cfg.seed, task.id))
        n_train, out = len(task.train), []
        for t, perm in zip(ts[1:].tolist(), perms[1:], strict=True):
            mapped = [(dihedral(perm[i], t), dihedral(perm[o], t)) for i, o in pairs]
            out += lines(
                task, export_id, subset, aug_name(export_id, t, perm), (mapped[:n_train], mapped[n_train:])
            )
        return out

    def close(self) -> dict[str, Any]:
        self.abort()
        return {"tasks": self.written, "lines": self.line_count, "skipped": self.skipped}

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
