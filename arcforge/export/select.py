"""Which tasks an export holds and in which subset: ``--subset NAME=ITEM,...``, the evaluation guard, ids.

A first pass reads only the ``id``, ``source`` and ``split`` columns (through the shard reader) to count
each subset, to refuse a task of an evaluation split bound for a training subset, and to find the short
ids that more than one task would share. The second pass (the writers') classifies each batch again with
the same function.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge.build.provenance import PROVENANCE_FILE
from arcforge.errors import ExportError, ShardError
from arcforge.export.config import EVAL_SUBSET_NAMES, ExportConfig
from arcforge.shards import available, iter_batches, list_shards
from arcforge.sources.manifest import EVAL_SPLIT

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCAN_BATCH = 65536


@dataclass(frozen=True)
class Item:
    """One part of a subset: ``SOURCE``, ``SOURCE:SPLIT`` or an id glob (``concept_arc/corpus/*``)."""

    text: str
    source: str | None = None
    split: str | None = None
    glob: str | None = None

    def mask(self, ids: pa.Array, sources: pa.Array, splits: pa.Array) -> np.ndarray:
        m = np.ones(len(ids), dtype=bool)
        if self.source is not None:
            m &= np.asarray(pc.equal(sources, self.source), dtype=bool)
        if self.split is not None:
            m &= np.asarray(pc.equal(splits, self.split), dtype=bool)
        if self.glob is not None:
            rx = "^" + fnmatch.translate(self.glob).removesuffix(r"\Z") + "$"  # RE2 (Arrow) has no \Z
            m &= np.asarray(pc.match_substring_regex(ids, rx), dtype=bool)
        return m


def parse_item(text: str) -> Item:
    text = text.strip()
    if "/" in text:
        first = text.split("/", 1)[0]
        return Item(text, source=None if any(c in first for c in "*?[") else first, glob=text)
    source, _, split = text.partition(":")
    if not _NAME.match(source) or (split and not _NAME.match(split)):
        raise ExportError(
            f"--subset item {text!r}: expected SOURCE, SOURCE:SPLIT or an id glob such as "
            "concept_arc/corpus/*"
        )
    return Item(text, source=source, split=split or None)


@dataclass
class Subset:
    name: str
    items: tuple[Item, ...]
    is_eval: bool
    tasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": [i.text for i in self.items],
            "evaluation": self.is_eval,
            "tasks": self.tasks,
        }


@dataclass
class Selection:
    """The subsets (in order), the evaluation splits, and the short ids shared by several tasks."""

    root: Path
    subsets: list[Subset]
    eval_splits: set[tuple[str, str]]
    sources: list[str]
    splits: list[str] | None
    provenance: dict[str, Any] | None
    shared_ids: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(s.tasks for s in self.subsets)

    def classify(self, batch: pa.RecordBatch) -> np.ndarray:
        """The subset index of every row (-1: not exported); raises on a row in two subsets."""
        ids, sources, splits = batch.column("id"), batch.column("source"), batch.column("split")
        out = np.full(batch.num_rows, -1, dtype=np.int64)
        for i, sub in enumerate(self.subsets):
            m = np.zeros(batch.num_rows, dtype=bool)
            for item in sub.items:
                m |= item.mask(ids, sources, splits)
            both = m & (out >= 0)
            if both.any():
                j = int(np.flatnonzero(both)[0])
                raise ExportError(
                    f"task {ids[j].as_py()} is in two subsets: {self.subsets[out[j]].name} and {sub.name}",
                    hint="a task goes into one subset: narrow one of the --subset",
                )
            out[m] = i
        return out

    def in_eval_split(self, batch: pa.RecordBatch) -> np.ndarray:
        """Which rows belong to an evaluation split."""
        keys = pc.binary_join_element_wise(batch.column("source"), batch.column("split"), ":")
        refs = pa.array(sorted(f"{a}:{b}" for a, b in self.eval_splits), type=pa.string())
        return np.asarray(pc.is_in(keys, value_set=refs), dtype=bool)

    def export_id(self, task_id: str) -> str:
        """The id in the exported files: the arcforge id's last segment, or the whole id where that last
        segment is not unique among the exported tasks."""
        short = task_id.rsplit("/", 1)[-1]
        return task_id if short in self.shared_ids else short

    def to_dict(self) -> dict[str, Any]:
        return {
            "subsets": [s.to_dict() for s in self.subsets],
            "sources": self.sources,
            "splits": self.splits,
            "evaluation_splits": sorted(f"{a}:{b}" for a, b in self.eval_splits),
            "tasks": self.total,
            "ids_renamed": len(self.shared_ids),
        }


def read_build_provenance(root: Path) -> dict[str, Any] | None:
    """The build's ``provenance.json`` as it is (None when the folder has none)."""
    path = Path(root) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: not valid JSON: {e}", hint="rebuild the dataset") from None
    return data if isinstance(data, dict) else None


def evaluation_splits(
    provenance: dict[str, Any] | None, present: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (source, split) pairs that are evaluation splits: those the build decontaminated against, and
    every split named ``evaluation``."""
    out = {(src, split) for src, split in present if split == EVAL_SPLIT}
    refs = ((provenance or {}).get("options") or {}).get("eval_splits") or []
    for ref in refs if isinstance(refs, list) else []:
        src, _, split = str(ref).partition(":")
        if split:
            out.add((src, split))
    return out


def plan(root: Path, cfg: ExportConfig) -> Selection:
    """Parse the subsets, then scan the id columns once: counts, the evaluation guard, shared short ids."""
    infos = list_shards(root, cfg.sources or None, cfg.splits or None)
    if not infos:
        raise ShardError(
            f"{root}: no shards match sources={list(cfg.sources) or 'all'} "
            f"splits={list(cfg.splits) or 'all'}",
            hint=available(root),
        )
    present = {(i.source, i.split) for i in infos}
    provenance = read_build_provenance(root)
    sel = Selection(
        root=Path(root),
        subsets=_subsets(cfg, present, evaluation_splits(provenance, present)),
        eval_splits=evaluation_splits(provenance, present),
        sources=sorted({s for s, _ in present}),
        splits=sorted(cfg.splits) if cfg.splits else None,
        provenance=provenance,
    )
    _scan(sel, cfg)
    return sel


def _subsets(
    cfg: ExportConfig, present: set[tuple[str, str]], eval_splits: set[tuple[str, str]]
) -> list[Subset]:
    """The ``--subset`` specs parsed (each checked, no name twice; every ``--eval-subset`` among them),
    or without them one subset per present (source, split)."""
    if not cfg.subsets:
        return _split_subsets(cfg, present, eval_splits)
    evals = set(cfg.eval_subsets or EVAL_SUBSET_NAMES)
    out: list[Subset] = []
    for spec in cfg.subsets:
        out.append(_parse_subset(spec, evals, out))
    unknown = sorted(set(cfg.eval_subsets) - {s.name for s in out})
    if unknown:
        raise ExportError(f"--eval-subset {', '.join(unknown)}: no such --subset")
    return out


def _split_subsets(
    cfg: ExportConfig, present: set[tuple[str, str]], eval_splits: set[tuple[str, str]]
) -> list[Subset]:
    """``SOURCE_SPLIT`` for each present (source, split); evaluation: the ``--eval-subset`` names if given,
    else the evaluation splits."""
    return [
        Subset(
            f"{src}_{split}",
            (Item(f"{src}:{split}", src, split),),
            f"{src}_{split}" in cfg.eval_subsets if cfg.eval_subsets else (src, split) in eval_splits,
        )
        for src, split in sorted(present)
    ]


def _parse_subset(spec: str, evals: set[str], before: list[Subset]) -> Subset:
    """One ``NAME=ITEM[,ITEM...]`` spec, its name not one of those ``before`` it."""
    name, sep, items = spec.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name) or not items.strip():
        raise ExportError(
            f"--subset {spec!r}: expected NAME=ITEM[,ITEM...], e.g. training=arc_agi_1:training,concept_arc"
        )
    if any(s.name == name for s in before):
        raise ExportError(f"--subset {name!r} is given twice")
    return Subset(name, tuple(parse_item(x) for x in items.split(",") if x.strip()), name in evals)


def _scan(sel: Selection, cfg: ExportConfig) -> None:
    leaks: list[str] = []
    leak_count = 0
    leak_subsets: set[str] = set()
    shorts: list[pa.Array] = []
    for batch in iter_batches(
        sel.root,
        sources=sel.sources,
        splits=sel.splits,
        batch_size=_SCAN_BATCH,
        columns=["id", "source", "split"],
    ):
        idx = sel.classify(batch)
        for i, n in zip(*np.unique(idx[idx >= 0], return_counts=True), strict=True):
            sel.subsets[i].tasks += int(n)
        picked = batch.filter(pa.array(idx >= 0))
        shorts.append(pc.replace_substring_regex(picked.column("id"), r"^.*/", ""))
        is_eval = np.array([s.is_eval for s in sel.subsets] + [True])  # idx -1 (not exported) counts as eval
        leak = sel.in_eval_split(batch) & ~is_eval[idx]
        for j in np.flatnonzero(leak)[:1]:
            leaks.append(batch.column("id")[j].as_py())
        leak_count += int(leak.sum())
        leak_subsets.update(sel.subsets[i].name for i in np.unique(idx[leak]))
    empty = [s.name for s in sel.subsets if not s.tasks]
    if empty:
        raise ExportError(f"--subset {', '.join(empty)}: selects no task", hint=available(sel.root))
    if leaks and not cfg.allow_eval_in_train:
        raise ExportError(
            f"{leak_count} task(s) of an evaluation split would go into the training subset(s) "
            f"{', '.join(sorted(leak_subsets))}, e.g. {leaks[0]}",
            hint="put them into an evaluation subset (--eval-subset NAME), or pass --allow-eval-in-train "
            "if that is what you want (it is recorded in export.json)",
        )
    if shorts:
        counts = pc.value_counts(pa.chunked_array(shorts, type=pa.string())).flatten()
        sel.shared_ids = set(pc.filter(counts[0], pc.greater(counts[1], 1)).to_pylist())
