"""Options shared by several commands, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def split_csv(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated option, blanks dropped."""
    return [x.strip() for x in text.split(",") if x.strip()]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report on stdout.")]
ManifestsOpt = Annotated[
    Path | None,
    typer.Option("--manifests", help="Folder of source manifests (default: the bundled manifests/).",
                 envvar="ARCFORGE_MANIFESTS", show_default=False),
]
MirrorOpt = Annotated[
    str | None,
    typer.Option("--mirror", envvar="ARCFORGE_MIRROR", show_default=False,
                 help="Offline mirror: a folder laid out <owner>/<repo>/<files>, or an http(s) base URL "
                      "serving tarballs in GitHub's URL layout."),
]
DataDirOpt = Annotated[Path, typer.Argument(help="A built dataset folder (the --out of `arcforge build`).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (every random choice derives from it).")]
