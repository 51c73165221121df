"""``arcforge export``: write a built dataset in the formats other trainers read (Kaggle JSON, TRM arrays,
JSONL text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import cli_progress, console, reports, resolve_data
from arcforge.cli.options import DEFAULT_DATA, DataSpecOpt, ExportFormat, Flag, JsonOpt, SourceOpt
from arcforge.export.config import DEFAULT_PREFIX, DEFAULT_SEED

HELP = (
    "Write the tasks of a built dataset in a format another trainer reads.\n\n"
    "kaggle: <prefix>_<subset>_challenges.json and _solutions.json (read by TRM's and HRM's "
    "build_arc_dataset.py, ARChitects, NVARC). trm: the .npy puzzle dataset of TRM's builder, augmented "
    "(--num-aug, default 1000). jsonl: prompt and completion lines, grids as rows of digits.\n\n"
    "Every export writes export.json: the arcforge version, the build's provenance, the options, the "
    "selection and the seed. A task of an evaluation split in a training subset is refused unless "
    "--allow-eval-in-train.\n\n"
    "Example (ARC-AGI-1 and ConceptARC for TRM, evaluation kept out of training):\n\n"
    "arcforge export -f trm -o trm-arc1 --subset training=arc_agi_1:training,concept_arc "
    "--subset evaluation=arc_agi_1:evaluation\n"
)


def _summary(result: dict) -> None:
    from rich.markup import escape

    written = result["written"]
    console.print(
        f"exported [bold]{result['tasks']}[/] tasks as {result['format']} into {escape(result['out'])}"
    )
    for name, split in (written.get("splits") or {}).items():
        console.print(
            f"  {name}/: {split['groups']} tasks, {split['puzzles']} puzzles, {split['examples']} examples"
        )
    for reason, n in (written.get("skipped") or {}).items():
        console.print(f"  left out: {n} ({reason})", markup=False)
    console.print(f"  see {escape(result['out'])}/export.json", markup=False)


@reports(_summary)
def export_cmd(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder (new, empty, or an earlier export with --overwrite)."
        ),
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format", "-f", help="kaggle (ARC Prize JSON), trm (TRM/HRM .npy puzzles) or jsonl (text)."
        ),
    ],
    data: DataSpecOpt = None,
    source: SourceOpt = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only these splits (repeatable).", show_default=False)
    ] = None,
    subset: Annotated[
        list[str] | None,
        typer.Option(
            "--subset",
            help="NAME=ITEM[,ITEM...]: a subset of the export; an item is SOURCE, SOURCE:SPLIT or an "
            "id glob (concept_arc/corpus/*). Repeatable; default: one per source and split (SOURCE_SPLIT).",
            show_default=False,
        ),
    ] = None,
    eval_subset: Annotated[
        list[str] | None,
        typer.Option(
            "--eval-subset",
            help="A subset that is an evaluation subset (repeatable; default: the subsets named "
            "evaluation or test, or those of evaluation splits).",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="File name prefix of the kaggle files.")
    ] = DEFAULT_PREFIX,
    num_aug: Annotated[
        int | None,
        typer.Option(
            "--num-aug",
            help="Augmented versions per task (trm: default 1000; jsonl: default 0).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the augmentations.")] = DEFAULT_SEED,
    eval_demos_in_train: Annotated[
        bool,
        Flag(
            "--eval-demos-in-train",
            help="trm: also put the demonstration pairs of evaluation tasks into train/ "
            "(TRM's choice; recorded).",
        ),
    ] = False,
    allow_eval_in_train: Annotated[
        bool,
        Flag(
            "--allow-eval-in-train", help="Allow tasks of evaluation splits in training subsets (recorded)."
        ),
    ] = False,
    no_translate: Annotated[
        bool, Flag("--no-translate", help="trm: no random translation of training examples.")
    ] = False,
    overwrite: Annotated[bool, Flag("--overwrite", help="Replace an earlier export in --out.")] = False,
    json_: JsonOpt = False,
) -> dict:
    from arcforge.export.config import ExportConfig
    from arcforge.export.run import export

    cfg = ExportConfig(
        format=fmt.value,
        sources=tuple(source or ()),
        splits=tuple(split or ()),
        subsets=tuple(subset or ()),
        eval_subsets=tuple(eval_subset or ()),
        prefix=prefix,
        num_aug=num_aug,
        seed=seed,
        eval_demos_in_train=eval_demos_in_train,
        allow_eval_in_train=allow_eval_in_train,
        translate=not no_translate,
        overwrite=overwrite,
    )
    root = resolve_data(data or str(DEFAULT_DATA))
    with cli_progress(json_) as progress:
        return export(root, out, cfg, progress=progress).to_dict()
