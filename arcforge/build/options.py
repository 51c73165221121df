"""``BuildOptions``: what the user asked ``arcforge build`` for (the CLI flags), made once by the CLI.

``arcforge.build.pipeline.build`` reads it; its steps read the fields they need, and the options part of
``provenance.json`` and of the dataset card is written from it (``--eval-local`` folders by name only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from arcforge.build.shard_writer import DEFAULT_ROW_GROUP_ROWS, DEFAULT_SHARD_BYTES
from arcforge.synthetic.base import DEFAULT_DIFFICULTY


@dataclass(frozen=True)
class BuildOptions:
    """The build's settings: ``build``'s inputs other than the output folder and the progress display."""

    sources: Sequence[str] | None = None  # None: every fetched source
    local: Sequence[Path] = ()  # --local folders
    local_names: Sequence[str] = ()  # --local-name, one per --local folder at most
    manifests_dir: Path | None = None
    exclude_eval: bool = False
    eval_refs: Sequence[str] | None = None  # --eval SOURCE[:SPLIT]; None: the eval manifests' splits
    eval_local: Sequence[Path] = ()  # --eval-local folders (a decontamination reference only)
    max_grid: int | None = None
    strict: bool = False
    synthetic_tasks: int = 0
    generate: Mapping[str, int] | None = None  # --generate: source (or "*") -> examples per generator
    generate_tasks: Mapping[str, int] | None = None  # --tasks-per-generator: source (or "*") -> tasks
    check_rules: bool | None = None  # None: when a generator source generates
    synthetic_families: Sequence[str] | None = None
    synthetic_difficulty: str = DEFAULT_DIFFICULTY
    seed: int = 0
    shard_bytes: int = DEFAULT_SHARD_BYTES
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
    use_cache: bool = True
    workers: int | None = None  # None: every available CPU; the output does not depend on it
