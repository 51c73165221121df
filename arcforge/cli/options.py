"""Options shared by several commands, defined once as ``Annotated`` aliases; choices as Enums.

One vocabulary: the dataset folder is ``--data/-d`` in every command that reads one, defaulting to
``build``'s default ``--out`` (``arc-dataset``); sources are ``--source/-s``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from arcforge.export.config import FORMATS
from arcforge.synthetic.base import DIFFICULTIES

DEFAULT_DATA = Path("arc-dataset")  # build's default --out, every other command's default --data


def split_csv(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated option, blanks dropped."""
    return [x.strip() for x in text.split(",") if x.strip()]


def Flag(*names: str, **kwargs) -> typer.models.OptionInfo:
    """A boolean flag: typer.Option without a ``<bool>`` type column in the help (a flag takes no value)."""
    return typer.Option(*names, metavar="", **kwargs)


JsonOpt = Annotated[bool, Flag("--json", help="Print a machine-readable JSON report on stdout.")]
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
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="A built dataset folder (the --out of `arcforge build`).")]
DataSpecOpt = Annotated[str, typer.Option(
    "--data", "-d", help="A built dataset folder (the --out of `arcforge build`), or a dataset on the Hub: "
    "ORG/NAME[@REVISION] or hf://datasets/ORG/NAME.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
SourceOpt = Annotated[list[str] | None, typer.Option("--source", "-s", help="Only these sources (repeatable).",
                                                     show_default=False)]

# Enum of the synthetic generator's difficulty presets (values come from arcforge.synthetic).
Difficulty = Enum("Difficulty", {name: name for name in DIFFICULTIES}, type=str)  # type: ignore[misc]
Difficulty.__doc__ = "Synthetic difficulty preset: grid sizes, objects and colors of generated tasks."
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (every random choice derives from it).")]

# Enum of the export formats (arcforge.export registers one writer per name).
ExportFormat = Enum("ExportFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
ExportFormat.__doc__ = "Export format: kaggle (ARC Prize JSON), trm (TRM/HRM .npy puzzles), jsonl (text for LMs)."
