"""``trm``: the puzzle arrays that TRM's (and HRM's) ``dataset/build_arc_dataset.py`` writes, streamed.

Layout (what TRM's ``PuzzleDataset`` loads)::

    train/all__inputs.npy              (examples, 900) uint8: 0 pad, 1 end of row/column, 2-11 colors 0-9
    train/all__labels.npy              (examples, 900) uint8, the same encoding
    train/all__puzzle_identifiers.npy  (puzzles,) int32: the puzzle's id (0 is the blank id)
    train/all__puzzle_indices.npy      (puzzles + 1,) int32: first example of each puzzle, then the count
    train/all__group_indices.npy       (groups + 1,) int32: first puzzle of each group (a task and its
                                       augmented versions), then the count
    train/dataset.json                 TRM's PuzzleDatasetMetadata
    test/...                           the same for the evaluation subsets' test pairs
    identifiers.json                   id -> puzzle name ("<blank>", then "<id>" or "<id>|||t<t>|||<colors>")
    test_puzzles.json                  the evaluation subsets' tasks in Kaggle form, outputs included

A puzzle is one version of a task (see ``arcforge.export.augment``). A task of a training subset puts all
its pairs into ``train/``. A task of an evaluation subset puts its test pairs into ``test/``, and its
demonstration pairs into ``train/`` only with ``eval_demos_in_train`` (TRM's own choice, which lets the
model learn the puzzle's embedding from the demonstrations). Training examples are translated at random,
one example per puzzle excepted (TRM's translation augment). Tasks with a grid larger than 30x30 do not fit
the canvas and are left out, as are tasks with a hidden test output; both are counted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from arcforge.export import each_task, register
from arcforge.export.augment import MAX_SIDE, aug_name, augmentations, encode, task_rng
from arcforge.export.config import ExportConfig
from arcforge.export.jsonfile import JsonArrayFile, JsonObjectFile
from arcforge.export.kaggle import HIDDEN_OUTPUT, has_hidden_output
from arcforge.export.npy import NpyWriter
from arcforge.export.select import Selection, Subset
from arcforge.task import Task

TOO_LARGE = f"grid larger than {MAX_SIDE}x{MAX_SIDE}"
SET_NAME = "all"  # TRM's only subset name inside a split


class _Split:
    """The five arrays of one split, appended a group at a time."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        seq = (MAX_SIDE * MAX_SIDE,)
        self.inputs = NpyWriter(folder / f"{SET_NAME}__inputs.npy", np.uint8, seq)
        self.labels = NpyWriter(folder / f"{SET_NAME}__labels.npy", np.uint8, seq)
        self.identifiers = NpyWriter(folder / f"{SET_NAME}__puzzle_identifiers.npy", np.int32)
        self.puzzle_indices = NpyWriter(folder / f"{SET_NAME}__puzzle_indices.npy", np.int32)
        self.group_indices = NpyWriter(folder / f"{SET_NAME}__group_indices.npy", np.int32)
        self.puzzle_indices.append(np.zeros(1, np.int32))
        self.group_indices.append(np.zeros(1, np.int32))
        self.examples = self.puzzles = self.groups = 0

    def add_group(self, inputs: np.ndarray, labels: np.ndarray, ids: np.ndarray, per_puzzle: int) -> None:
        self.inputs.append(inputs)
        self.labels.append(labels)
        self.identifiers.append(ids.astype(np.int32))
        ends = self.examples + per_puzzle * np.arange(1, len(ids) + 1)
        self.puzzle_indices.append(ends.astype(np.int32))
        self.examples += per_puzzle * len(ids)
        self.puzzles += len(ids)
        self.groups += 1
        self.group_indices.append(np.array([self.puzzles], np.int32))

    def close(self, num_identifiers: int) -> dict[str, Any]:
        self.abort()
        meta = {
            "pad_id": 0,
            "ignore_label_id": 0,
            "blank_identifier_id": 0,
            "vocab_size": 12,
            "seq_len": MAX_SIDE * MAX_SIDE,
            "num_puzzle_identifiers": num_identifiers,
            "total_groups": self.groups,
            "mean_puzzle_examples": self.examples / max(self.puzzles, 1),
            "total_puzzles": self.puzzles,
            "sets": [SET_NAME],
        }
        (self.folder / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
        return {"examples": self.examples, "puzzles": self.puzzles, "groups": self.groups}

    def abort(self) -> None:
        for w in (self.inputs, self.labels, self.identifiers, self.puzzle_indices, self.group_indices):
            w.close()


@register("trm")
class TrmWriter:
    def __init__(self, folder: Path, cfg: ExportConfig, sel: Selection) -> None:
        self.folder, self.cfg = Path(folder), cfg
        self.splits: dict[str, _Split] = {}
        self.names_path = self.folder / ".identifiers.tmp"
        self.names = open(self.names_path, "wb")  # noqa: SIM115 (closed in close())
        self.next_id = 1  # 0 is the blank identifier
        self.test_puzzles = JsonObjectFile(self.folder / "test_puzzles.json")
        self.ids = JsonObjectFile(self.folder / f"{cfg.prefix}_ids.json")
        self.skipped: dict[str, int] = {}
        self.tasks = 0

    def _split(self, name: str) -> _Split:
        if name not in self.splits:
            self.splits[name] = _Split(self.folder / name)
        return self.splits[name]

    def add_batch(self, batch: pa.RecordBatch, export_ids: list[str], subsets: list[Subset]) -> None:
        for task, export_id, subset in zip(each_task(batch), export_ids, subsets, strict=True):
            self.add(task, export_id, subset)

    def add(self, task: Task, export_id: str, subset: Subset) -> None:
        problem = (
            HIDDEN_OUTPUT if has_hidden_output(task) else TOO_LARGE if task.max_side() > MAX_SIDE else None
        )
        if problem:
            self.skipped[problem] = self.skipped.get(problem, 0) + 1
            return
        train = [(p.input.astype(np.uint8), p.output.astype(np.uint8)) for p in task.train]
        test = [(p.input.astype(np.uint8), p.output.astype(np.uint8)) for p in task.test]
        rng = task_rng(self.cfg.seed, task.id)
        ts, perms = augmentations(train + test, self.cfg.augmentations, rng)
        ids = np.arange(self.next_id, self.next_id + len(ts))
        self.next_id += len(ts)
        self.names.write(
            b"".join(
                json.dumps(aug_name(export_id, int(t), p)).encode() + b"\n"
                for t, p in zip(ts.tolist(), perms, strict=True)
            )
        )
        dests = {"train": train + test}
        if subset.is_eval:
            dests = {"train": train if self.cfg.eval_demos_in_train else [], "test": test}
            self.test_puzzles.put(export_id, _kaggle_puzzle(task))
        for split, pairs in dests.items():
            if pairs:
                inputs, labels = encode(
                    pairs, ts, perms, rng, translate=self.cfg.translate and split == "train"
                )
                self._split(split).add_group(inputs, labels, ids, len(pairs))
        self.ids.put(export_id, task.id)
        self.tasks += 1

    def close(self) -> dict[str, Any]:
        self.names.close()
        out = {
            "tasks": self.tasks,
            "identifiers": self.next_id,
            "skipped": self.skipped,
            "splits": {name: s.close(self.next_id) for name, s in sorted(self.splits.items())},
        }
        self.test_puzzles.close()
        self.ids.close()
        ident = JsonArrayFile(self.folder / "identifiers.json")
        ident.append("<blank>")
        with open(self.names_path, "rb") as f:
            for line in f:
                ident.append_raw(line.rstrip(b"\n"))
        ident.close()
        os.unlink(self.names_path)
        return out

    def abort(self) -> None:
        self.names.close()
        for s in self.splits.values():
            s.abort()
        self.test_puzzles.close()
        self.ids.close()


def _kaggle_puzzle(task: Task) -> dict[str, Any]:
    """The task as TRM's test_puzzles.json holds it: Kaggle form with the test outputs."""
    return {
        "train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train],
        "test": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.test],
    }
