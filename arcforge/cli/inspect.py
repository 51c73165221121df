"""``arcforge stats`` and ``arcforge show``: look at a built dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import color_enabled, console, print_json
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import DEFAULT_DATA, DataOpt, JsonOpt, SourceOpt
from arcforge.errors import ShardError


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
            counts.add_row(src, split, str(s.get("tasks", 0)),
                           str(s.get("train_pairs", 0) + s.get("test_pairs", 0)),
                           str(s.get("over_30_grids", 0)), "".join(map(str, s.get("colors_used", []))),
                           str(s.get("quarantined", 0)))
            sizes.add_row(src, split, *(str(s.get("grid_sizes", {}).get(b[0], 0)) for b in SIZE_BUCKETS))
    console.print(counts)
    console.print(sizes)
    for src, splits in report.get("families", {}).items():
        for split, fams in splits.items():
            t = Table(title=f"{src}/{split} by family")
            for c in ("family", "tasks", "train pairs", "mean side", "max side"):
                t.add_column(c, justify="left" if c == "family" else "right")
            for fam, f in fams.items():
                t.add_row(fam, str(f["tasks"]), f"{f['train_pairs_per_task']:.1f}", f"{f['mean_max_side']:.1f}",
                          str(f["max_side"]))
            console.print(t)
    if report["quarantined_by_reason"]:
        console.print("quarantined: " + ", ".join(f"{r} {n}" for r, n in report["quarantined_by_reason"].items()))


def register(app: typer.Typer) -> None:
    @app.command("stats")
    @handle_errors
    def stats_cmd(
        data: DataOpt = DEFAULT_DATA,
        source: SourceOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Per source and split: tasks, pairs, grid sizes, colors, over-30 grids, quarantined.

        Example: arcforge stats --data arc-dataset -s arc_agi_1
        """
        from arcforge.inspect.stats import dataset_stats

        report = dataset_stats(data, source)
        if json_out:
            print_json(report)
        else:
            _stats_table(report)

    @app.command("show")
    @handle_errors
    def show_cmd(
        task_id: Annotated[str, typer.Argument(help="A task id, e.g. arc_agi_1/evaluation/00576224.")],
        data: DataOpt = DEFAULT_DATA,
        png: Annotated[Path | None, typer.Option("--png", help="Also draw the task into this PNG file.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Draw a task's pairs: colored cells on a terminal, digits in a file or pipe (and optionally a PNG).

        Example: arcforge show arc_agi_1/evaluation/00576224 --png task.png
        """
        from arcforge.inspect.render import save_png, task_text
        from arcforge.shards import find_task
        from arcforge.task import task_to_row

        task = find_task(data, task_id)
        if task is None:
            raise ShardError(f"task {task_id!r} is not in {data}",
                             hint="ids look like <source>/<path>; `arcforge stats` lists the sources")
        if png is not None:
            save_png(task, png)
        if json_out:
            row = task_to_row(task)
            row["png"] = str(png) if png else None
            print_json(row)
            return
        sys.stdout.write(task_text(task, color=color_enabled()))
        if png is not None:
            console.print(f"wrote {png}", markup=False)
