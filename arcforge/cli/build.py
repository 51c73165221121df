"""``arcforge build``: compile fetched sources (and local folders) into a Parquet dataset folder."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.build.options import BuildOptions
from arcforge.build.shard_writer import DEFAULT_ROW_GROUP_ROWS, DEFAULT_SHARD_BYTES
from arcforge.cli.console import cli_progress, console, err_console, reports
from arcforge.cli.options import (
    DEFAULT_DATA,
    BuildSeedOpt,
    Difficulty,
    Flag,
    JsonOpt,
    ManifestsOpt,
    OutOpt,
    split_csv,
)
from arcforge.errors import BuildError, printable
from arcforge.synthetic.base import DEFAULT_DIFFICULTY


def _summary(stats) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"Built {escape(stats.out)}", show_lines=False)
    for col in ("source", "split", "tasks", "over 30x30"):
        t.add_column(col, justify="right" if col not in ("source", "split") else "left")
    for src, splits in stats.tasks.items():
        for split, n in splits.items():
            t.add_row(src, split, str(n), str(stats.over_30.get(src, {}).get(split, 0)))
    console.print(t)
    cached = f" ({', '.join(stats.cached_sources)} from the build cache)" if stats.cached_sources else ""
    console.print(f"[bold]{stats.total_tasks}[/] tasks written from {stats.files_read} files" + cached)
    if stats.quarantined:
        console.print(
            f"[yellow]quarantined {stats.total_quarantined}[/]: "
            + ", ".join(f"{r} {n}" for r, n in stats.quarantined.items())
            + "  (see reports/quarantine.jsonl)"
        )
    if stats.skipped:
        console.print("skipped (not tasks): " + ", ".join(f"{r}: {n}" for r, n in stats.skipped.items()))
    for src, counts in stats.generated.items():
        console.print(f"generated {escape(src)}: " + ", ".join(f"{r} {n}" for r, n in counts.items()))
    if stats.excluded or stats.duplicates:
        console.print(
            f"dedup: {stats.duplicates} duplicates dropped, {stats.excluded} excluded as eval copies"
        )


def _check_out_path(out: Path) -> None:
    """Refuse an --out under a file before any work is done (the first existing ancestor must be a folder)."""
    parent = out.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent != out.absolute() and not parent.is_dir():
        raise BuildError(f"--out {out}: {parent} is a file, not a folder")


@contextmanager
def _out_errors(out: Path) -> Iterator[None]:
    """A filesystem refusal while writing (read-only, no space, /proc) names the path it concerns and why:
    --out only when the path is there (or is the build's folder beside it), else the real path."""
    try:
        yield
    except OSError as e:
        if not e.strerror or isinstance(e, ConnectionError | TimeoutError):
            raise
        raise _blame(out, e) from None


def _blame(out: Path, e: OSError) -> BuildError:
    from arcforge import paths

    target, home = out.absolute(), paths.home().absolute()
    where = _failed_path(e, target, home)
    top = (
        where.relative_to(target.parent).parts[0]
        if where is not None and (target.parent in where.parents)
        else None
    )
    if where is None or top == target.name or (top or "").startswith(f".{target.name}."):
        return BuildError(
            f"--out {out}: cannot write the dataset there: {e.strerror}",
            hint="choose a folder you can write to",
        )
    if where == home or home in where.parents:
        return BuildError(
            f"{where}: {e.strerror} (arcforge's cache, ARCFORGE_HOME={home}); --out was not changed",
            hint="free space or fix the permissions there, or point ARCFORGE_HOME "
            "at a writable folder with room",
        )
    return BuildError(f"{where}: {e.strerror}; --out was not changed")


def _failed_path(e: OSError, target: Path, home: Path) -> Path | None:
    """The path ``e`` concerns: its file name, or for a full disk that names none, the full one of --out's
    folder and arcforge's cache."""
    import os
    import shutil

    if e.filename is not None:
        return Path(os.fsdecode(e.filename)).absolute()
    if e.errno == errno.ENOSPC:  # a write() names no file: the full disk is the one
        full = [p for p in (target.parent, home) if p.exists() and shutil.disk_usage(p).free < (1 << 20)]
        return full[0] if full else None
    return None


def parse_generate(values: list[str], flag: str = "--generate") -> dict[str, int]:
    """``--generate`` (or ``--tasks-per-generator``) values: ``N`` (all generator sources) or ``SOURCE=N``."""
    from arcforge.build.pipeline import ALL_GENERATORS

    out: dict[str, int] = {}
    for v in values:
        name, sep, num = v.rpartition("=")
        if not num.strip().isdigit() or (sep and not name):
            raise typer.BadParameter(f"{v!r} is not N or SOURCE=N (N a whole number)", param_hint=flag)
        out[name if sep else ALL_GENERATORS] = int(num)
    return out


@reports(_summary)
def build_cmd(
    out: OutOpt = DEFAULT_DATA,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Source to include (repeatable; default: every fetched source). "
            "`synthetic` adds generated tasks.",
        ),
    ] = None,
    local: Annotated[
        list[Path] | None,
        typer.Option("--local", help="A folder of your own task files to add as a source (repeatable)."),
    ] = None,
    local_name: Annotated[
        list[str] | None,
        typer.Option(
            "--local-name", help="Source name for the matching --local folder (default: from its name)."
        ),
    ] = None,
    exclude_eval: Annotated[
        bool, Flag("--exclude-eval", help="Drop training tasks that copy an evaluation task.")
    ] = False,
    eval_ref: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="SOURCE[:SPLIT] to use as the evaluation reference (repeatable; default: "
            "the eval splits of manifests with role = eval).",
        ),
    ] = None,
    eval_local: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval-local", help="A folder of held-out tasks used only as a decontamination reference."
        ),
    ] = None,
    max_grid: Annotated[
        int | None,
        typer.Option(
            "--max-grid", help="Drop tasks with a grid side larger than N (reported as `oversize`)."
        ),
    ] = None,
    strict: Annotated[
        bool, Flag("--strict", help="Fail (exit 1, output unchanged) if any task is quarantined.")
    ] = False,
    synthetic_tasks: Annotated[
        int, typer.Option("--synthetic-tasks", help="Add N generated tasks as the `synthetic` source.")
    ] = 0,
    synthetic_families: Annotated[
        str | None,
        typer.Option(
            "--synthetic-families",
            help="Comma-separated families for the `synthetic` source "
            "(`easy` = every family marked easy; default: all; README lists them).",
        ),
    ] = None,
    synthetic_difficulty: Annotated[
        Difficulty,
        typer.Option(
            "--synthetic-difficulty",
            help="Grid sizes, objects and colors of generated tasks: "
            "easy (3-5 sides), medium (3-8), hard (5-16).",
        ),
    ] = Difficulty(DEFAULT_DIFFICULTY),
    generate: Annotated[
        list[str] | None,
        typer.Option(
            "--generate",
            help="Run the generator sources' programs: N examples per generator for every "
            "generator source, or SOURCE=N for one (repeatable).",
        ),
    ] = None,
    tasks_per_generator: Annotated[
        list[str] | None,
        typer.Option(
            "--tasks-per-generator",
            help="With --generate: T tasks per generator, its examples sampled into "
            "several tasks (T or SOURCE=T, repeatable; default: consecutive runs of k+1 examples).",
        ),
    ] = None,
    check_rules: Annotated[
        bool | None,
        Flag(
            "--check-rules/--no-check-rules",
            help="Run program-backed sources' programs on the evaluation "
            "tasks (level `rule`; default: when --generate runs them).",
        ),
    ] = None,
    seed: BuildSeedOpt = BuildOptions.seed,
    shard_mb: Annotated[
        int, typer.Option("--shard-mb", help="Uncompressed MB per shard file.")
    ] = DEFAULT_SHARD_BYTES >> 20,
    row_group_rows: Annotated[
        int, typer.Option("--row-group-rows", help="Rows per Parquet row group.")
    ] = DEFAULT_ROW_GROUP_ROWS,
    no_cache: Annotated[bool, Flag("--no-cache", help="Parse every source again.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            show_default=False,
            help="Processes that parse, generate and deduplicate tasks "
            "(default and 0: every available CPU). The output is the same for any value.",
        ),
    ] = BuildOptions.workers,
    manifests: ManifestsOpt = None,
    json_: JsonOpt = False,
) -> Any:
    """Normalize, validate and de-duplicate every source into `OUT/<source>/<split>-*.parquet`.

    Example: arcforge build --exclude-eval --out arc-dataset
    """
    from arcforge.build.pipeline import build

    _check_out_path(out)
    with cli_progress(json_) as progress, _out_errors(out):
        options = BuildOptions(
            sources=source,
            local=local or [],
            local_names=local_name or [],
            manifests_dir=manifests,
            exclude_eval=exclude_eval,
            eval_refs=eval_ref,
            eval_local=eval_local or [],
            max_grid=max_grid,
            strict=strict,
            synthetic_tasks=synthetic_tasks,
            synthetic_families=None if synthetic_families is None else split_csv(synthetic_families),
            synthetic_difficulty=synthetic_difficulty.value,
            generate=parse_generate(generate or []),
            generate_tasks=parse_generate(tasks_per_generator or [], "--tasks-per-generator"),
            check_rules=check_rules,
            seed=seed,
            shard_bytes=shard_mb * 1024 * 1024,
            row_group_rows=row_group_rows,
            use_cache=not no_cache,
            workers=workers or None,
        )
        stats = build(out, options, progress=progress)
    for line in stats.warnings:
        err_console.print(f"warning: {printable(line)}", markup=False, highlight=False, soft_wrap=True)
    return stats
