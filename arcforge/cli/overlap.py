"""``arcforge overlap``: which datasets copy which (a source x source matrix from the dedup reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.cli.console import console, reports
from arcforge.cli.options import DEFAULT_DATA, DataOpt, JsonOpt


@dataclass
class OverlapReport:
    """The overlap of the dataset in ``data``, and the heatmap written (if any)."""

    overlap: Any  # arcforge.inspect.overlap.Overlap (imported when the command runs)
    data: Path
    png: Path | None

    def to_dict(self) -> dict:
        return {**self.overlap.to_json(), **({"png": str(self.png)} if self.png else {})}


def _print_overlap(report: OverlapReport) -> None:
    from rich.table import Table

    ov = report.overlap
    if not ov.sources:
        console.print("No shared tasks: the reports are empty.")
        return
    table = Table(title=f"Shared tasks between sources ({report.data})")
    table.add_column("source", style="bold")
    for s in ov.sources:
        table.add_column(s, justify="right")
    for s, row in zip(ov.sources, ov.matrix, strict=True):
        table.add_row(s, *[str(v) if v else "·" for v in row])
    console.print(table)
    console.print("by level: " + ", ".join(f"{k} {v}" for k, v in sorted(ov.by_level.items())))
    if report.png is not None:
        console.print(f"wrote {report.png}")


@reports(_print_overlap)
def overlap_cmd(
    data: DataOpt = DEFAULT_DATA,
    json_: JsonOpt = False,
    png: Annotated[Path | None, typer.Option("--png", help="Also write the matrix as a PNG heatmap.")] = None,
) -> OverlapReport:
    """Show a source x source matrix of shared tasks (from the excluded/duplicates reports).

    Example: arcforge overlap --data arc-dataset --json
    """
    from arcforge.inspect.overlap import heatmap_png, overlap

    ov = overlap(data)
    if png is not None:
        heatmap_png(ov, png)
    return OverlapReport(ov, data, png)
