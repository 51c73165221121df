"""``arcforge overlap``: which datasets copy which (a source x source matrix from the dedup reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import console, print_json
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import DEFAULT_DATA, DataOpt, JsonOpt


def register(app: typer.Typer) -> None:
    @app.command("overlap")
    @handle_errors
    def overlap_cmd(
        data: DataOpt = DEFAULT_DATA,
        json_out: JsonOpt = False,
        png: Annotated[Path | None, typer.Option("--png", help="Also write the matrix as a PNG heatmap.")] = None,
    ) -> None:
        """Show a source x source matrix of shared tasks (from the excluded/duplicates reports).

        Example: arcforge overlap --data arc-dataset --json
        """
        from rich.table import Table

        from arcforge.inspect.overlap import heatmap_png, overlap

        ov = overlap(data)
        if png is not None:
            heatmap_png(ov, png)
        if json_out:
            print_json({**ov.to_json(), **({"png": str(png)} if png else {})})
            return
        if not ov.sources:
            console.print("No shared tasks: the reports are empty.")
            return
        table = Table(title=f"Shared tasks between sources ({data})")
        table.add_column("source", style="bold")
        for s in ov.sources:
            table.add_column(s, justify="right")
        for s, row in zip(ov.sources, ov.matrix, strict=True):
            table.add_row(s, *[str(v) if v else "·" for v in row])
        console.print(table)
        console.print("by level: " + ", ".join(f"{k} {v}" for k, v in sorted(ov.by_level.items())))
        if png is not None:
            console.print(f"wrote {png}")
