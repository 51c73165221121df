"""The options of an export: one dataclass, read by the library, the CLI and the benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from arcforge.errors import ExportError

FORMATS = ("kaggle", "trm", "jsonl")  # the built-in writers (arcforge.export.<name>)
# --num-aug when not given: TRM's builder default for `trm`; none for the others.
DEFAULT_NUM_AUG = {"kaggle": 0, "trm": 1000, "jsonl": 0}
DEFAULT_SEED = 42  # TRM's builder default
DEFAULT_PREFIX = "arc-agi"  # TRM's kaggle/combined/arc-agi_<subset>_challenges.json
EVAL_SUBSET_NAMES = ("evaluation", "test")  # subsets that are evaluation subsets unless --eval-subset says


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how.

    ``subsets``: ``NAME=ITEM[,ITEM...]`` where an item is ``SOURCE``, ``SOURCE:SPLIT`` or an id glob with a
    ``/`` (``concept_arc/corpus/*``); none: one subset per source and split, named ``SOURCE_SPLIT``.
    ``eval_subsets``: the subsets that are evaluation subsets (default: those named ``evaluation`` or
    ``test``, and the default subsets of evaluation splits). A task of an evaluation split in any other
    subset is refused unless ``allow_eval_in_train``.
    """

    format: str
    sources: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    subsets: tuple[str, ...] = ()
    eval_subsets: tuple[str, ...] = ()
    prefix: str = DEFAULT_PREFIX
    num_aug: int | None = None  # augmentations per task (trm, jsonl); None: DEFAULT_NUM_AUG
    seed: int = DEFAULT_SEED
    eval_demos_in_train: bool = False  # trm: evaluation tasks' demonstration pairs also go into train/
    allow_eval_in_train: bool = False
    translate: bool = True  # trm: TRM's random translation of training examples
    overwrite: bool = False  # replace an earlier arcforge export in the output folder

    @property
    def augmentations(self) -> int:
        return DEFAULT_NUM_AUG.get(self.format, 0) if self.num_aug is None else self.num_aug

    def check(self, known_formats: tuple[str, ...]) -> None:
        if self.format not in known_formats:
            raise ExportError(
                f"unknown export format {self.format!r}", hint=f"one of {', '.join(known_formats)}"
            )
        if self.augmentations < 0:
            raise ExportError(f"--num-aug {self.augmentations} must be 0 or more")
        if self.format == "kaggle" and self.augmentations:
            raise ExportError(
                "--num-aug: the kaggle format writes the tasks as they are",
                hint="augmentations are for --format trm or jsonl",
            )
        if not self.prefix or any(c in self.prefix for c in "/\\") or self.prefix.startswith("."):
            raise ExportError(f"--prefix {self.prefix!r}: a file name prefix without / or a leading dot")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["num_aug"] = self.augmentations
        return d
