"""``arcforge stats`` and ``arcforge show``: look at a built dataset."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import color_enabled, console, reports
from arcforge.cli.options import DEFAULT_DATA, DataOpt, JsonOpt, SourceOpt
from arcforge.errors import ShardError
from arcforge.task import Task


def _stats_table(report: dict) -> None:
    """Two narrow tables (they fit 80 columns): counts, then the grid-size distribution."""
    from rich.table import Table

    from arcforge.inspect.stats import SIZE_BUCKETS

    counts = Table(title="Tasks per source and split")
    sizes = Table(title="Grids by their larger side")
    for c in ("source", "split", "tasks", "pairs", ">30 grids", "colors", "quarantined"):
        counts.add_column(c, justify="left" if c in ("source", "split") else "right")
    for c in ("source", "split", *(b[0] for b in SIZE_BUCKETS)):
        sizes.add_column(c, justify="left" if c in ("source", "split") else "right")
    for src, splits in report["sources"].items():
        for split, s in splits.items():
            counts.add_row(
                src,
                split,
                str(s.get("tasks", 0)),
                str(s.get("train_pairs", 0) + s.get("test_pairs", 0)),
                str(s.get("over_30_grids", 0)),
                "".join(map(str, s.get("colors_used", []))),
                str(s.get("quarantined", 0)),
            )
            sizes.add_row(src, split, *(str(s.get("grid_sizes", {}).get(b[0], 0)) for b in SIZE_BUCKETS))
    console.print(counts)
    console.print(sizes)
    _family_tables(report)
    if report["quarantined_by_reason"]:
        reasons = report["quarantined_by_reason"]
        console.print("quarantined: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))


def _family_tables(report: dict) -> None:
    """One table per source and split that has families (the synthetic source)."""
    from rich.table import Table

    for src, splits in report.get("families", {}).items():
        for split, fams in splits.items():
            t = Table(title=f"{src}/{split} by family")
            for c in ("family", "tasks", "train pairs", "mean side", "max side"):
                t.add_column(c, justify="left" if c == "family" else "right")
            for fam, f in fams.items():
                t.add_row(
                    fam,
                    str(f["tasks"]),
                    f"{f['train_pairs_per_task']:.1f}",
                    f"{f['mean_max_side']:.1f}",
                    str(f["max_side"]),
                )
            console.print(t)


@reports(_stats_table)
def stats_cmd(
    data: DataOpt = DEFAULT_DATA,
    source: SourceOpt = None,
    json_: JsonOpt = False,
) -> dict:
    """Per source and split: tasks, pairs, grid sizes, colors, over-30 grids, quarantined.

    Example: arcforge stats --data arc-dataset -s arc_agi_1
    """
    from arcforge.inspect.stats import dataset_stats

    return dataset_stats(data, source)


@dataclass
class Shown:
    """A task ``arcforge show`` drew, and the PNG it wrote (if any)."""

    task: Task
    png: Path | None

    def to_dict(self) -> dict:
        from arcforge.task import task_to_row

        return {**task_to_row(self.task), "png": str(self.png) if self.png else None}


def _print_task(shown: Shown) -> None:
    from arcforge.inspect.render import task_text

    sys.stdout.write(task_text(shown.task, color=color_enabled()))
    if shown.png is not None:
        console.print(f"wrote {shown.png}", markup=False)


@reports(_print_task)
def show_cmd(
    task_id: Annotated[str, typer.Argument(help="A task id, e.g. arc_agi_1/evaluation/00576224.")],
    data: DataOpt = DEFAULT_DATA,
    png: Annotated[Path | None, typer.Option("--png", help="Also draw the task into this PNG file.")] = None,
    json_: JsonOpt = False,
) -> Shown:
    """Draw a task's pairs: colored cells on a terminal, digits in a file or pipe (and optionally a PNG).

    Example: arcforge show arc_agi_1/evaluation/00576224 --png task.png
    """
    from arcforge.inspect.render import save_png
    from arcforge.shards import find_task

    task = find_task(data, task_id)
    if task is None:
        raise ShardError(
            f"task {task_id!r} is not in {data}",
            hint="ids look like <source>/<path>; `arcforge stats` lists the sources",
        )
    if png is not None:
        save_png(task, png)
    return Shown(task, png)
