"""``arcforge build``: fetched sources and users' folders in, one validated, deduplicated dataset out.

Pipeline: plan the sources -> parse each one into a table of valid tasks (``arcforge.build.ingest``: parallel,
spilled to disk, cached)
-> drop tasks over ``--max-grid`` -> ``arcforge.build.dedup.run_dedup`` -> write shards, report files and the
dataset card into a temp folder beside ``out`` -> swap it in. Only a complete build replaces ``out``:
an error, ``--strict`` with quarantined tasks, or Ctrl-C leaves the previous ``out`` as it was.

Dedup priority (which copy of a duplicated task is kept): evaluation-reference sources first, then the
other manifest sources in manifest (alphabetical) order, then ``--local`` folders, then ``synthetic``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge import paths
from arcforge.build import card, dedup, output, reports, shard_writer
from arcforge.build.ingest import (
    LOCAL_LICENSE,
    ParsedSource,
    SourcePlan,
    local_name,
    parse_stage,
    quarantine_table,
)
from arcforge.build.options import BuildOptions
from arcforge.build.parallel import resolve_workers
from arcforge.build.provenance import PROVENANCE_FILE, UNRESOLVED, write_provenance
from arcforge.errors import BuildError
from arcforge.grids import task_max_side
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.sources.manifest import EVAL_SPLIT, NAME_RE, SPLIT_RE, Manifest, load_manifests, select
from arcforge.synthetic.base import DEFAULT_DIFFICULTY, DIFFICULTIES
from arcforge.task import MAX_GRID_SIDE, OVERSIZE, TASK_SCHEMA

if TYPE_CHECKING:
    from arcforge.build import rule_stage

SYNTHETIC = "synthetic"
GIVE_UP_NOTE = "too often: 4n+20 attempts for n examples, 10 errors in a row"
DEFAULT_SYNTHETIC_TASKS = 1000  # `--source synthetic` without `--synthetic-tasks`


@dataclass
class BuildStats:
    """What a build did. Counts are per source then split; ``to_dict`` is the ``--json`` report."""

    out: str
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # written
    found: dict[str, dict[str, int]] = field(default_factory=dict)  # tasks in the files (valid + bad)
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> tasks
    quarantined_by_source: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files that are not tasks
    over_30: dict[str, dict[str, int]] = field(default_factory=dict)  # written tasks with a grid > 30
    oversize_dropped: int = 0
    dedup: dict[str, int] = field(default_factory=dict)  # run_dedup's counts
    excluded: int = 0
    duplicates: int = 0
    files_read: int = 0
    cached_sources: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # written files, relative to out
    warnings: list[str] = field(default_factory=list)  # things the user asked for that deserve a second look
    generated: dict[str, dict[str, int]] = field(default_factory=dict)  # generator source -> outcome counts
    rules: dict[str, float] = field(
        default_factory=dict
    )  # the rule level's programs, checks, calls, cache hits

    @property
    def total_tasks(self) -> int:
        return sum(sum(s.values()) for s in self.tasks.values())

    @property
    def total_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tasks"] = self.total_tasks
        d["total_quarantined"] = self.total_quarantined
        return d


# --- planning ------------------------------------------------------------------------------------------
def _is_cached(m: Manifest) -> Path | None:
    from arcforge.sources.fetch import cache_dir

    d = cache_dir(m)
    return d if d is not None and d.is_dir() else None


def _manifest_plan(m: Manifest, root: Path) -> SourcePlan:
    return SourcePlan(
        m.name, "manifest", root=root, manifest=m, repo=m.repo, commit=m.commit, license=m.license
    )


def plan_sources(
    manifests: dict[str, Manifest],
    sources: Sequence[str] | None,
    local: Sequence[Path],
    local_names: Sequence[str],
    synthetic_tasks: int,
    seed: int,
    synthetic_families: Sequence[str] | None = None,
    synthetic_difficulty: str = DEFAULT_DIFFICULTY,
) -> list[SourcePlan]:
    """Decide what to build, in priority order (see the module docstring)."""
    names = list(dict.fromkeys(sources)) if sources is not None else None
    want_synth = synthetic_tasks > 0 or (names is not None and SYNTHETIC in names)
    plans = _manifest_plans(manifests, names)
    plans += _local_plans(local, local_names)
    if want_synth:
        plans.append(_synthetic_plan(synthetic_tasks, seed, synthetic_families, synthetic_difficulty))
    _check_plan_names(plans, manifests)
    if not plans:
        raise BuildError(
            "nothing to build: no source is fetched and no --local folder was given",
            hint="arcforge fetch --all (offline: --mirror DIR); or build from your own tasks "
            "with --local PATH, or from generated ones with --source synthetic",
        )
    return plans


def _manifest_plans(manifests: dict[str, Manifest], names: list[str] | None) -> list[SourcePlan]:
    """The named manifest sources (None: every fetched one), evaluation sources first, each one fetched."""
    from arcforge.sources.fetch import cache_dir
    from arcforge.sources.lock import locked

    if names is None:
        chosen = [locked(m) for m in manifests.values()]
        chosen = [m for m in chosen if _is_cached(m)]
    else:
        chosen = [locked(m) for m in select(manifests, [n for n in names if n != SYNTHETIC])]
    plans = []
    for m in chosen:
        root = _is_cached(m)
        if root is None:
            where = cache_dir(m)
            why = f"no {where}" if where else f"pinned by revision {m.revision!r}, no commit locked yet"
            raise BuildError(
                f"source {m.name!r} is not fetched ({why})",
                hint=f"arcforge fetch {m.name}",
            )
        plans.append(_manifest_plan(m, root))
    plans.sort(key=lambda p: (not (p.manifest and p.manifest.is_eval), p.name))
    return plans


def _local_plans(local: Sequence[Path], local_names: Sequence[str]) -> list[SourcePlan]:
    """One source per ``--local`` folder, named by ``--local-name`` or after the folder."""
    if len(local_names) > len(local):
        raise BuildError("more --local-name values than --local folders")
    plans = []
    for i, folder in enumerate(local):
        folder = Path(folder)
        if not folder.is_dir():
            raise BuildError(f"{folder}: local folder not found")
        name = local_names[i] if i < len(local_names) else local_name(folder)
        if not NAME_RE.match(name):
            raise BuildError(
                f"--local-name {name!r} is not a valid source name",
                hint="use a lowercase letter followed by lowercase letters, digits or '_' "
                "(it names the shard folder and the dataset config)",
            )
        plans.append(SourcePlan(name, "local", root=folder, license=LOCAL_LICENSE))
    return plans


def _synthetic_plan(
    synthetic_tasks: int, seed: int, synthetic_families: Sequence[str] | None, synthetic_difficulty: str
) -> SourcePlan:
    """The ``synthetic`` source: its families and difficulty checked."""
    from arcforge.synthetic import LICENSE, resolve_families

    if synthetic_difficulty not in DIFFICULTIES:
        raise BuildError(
            f"unknown synthetic difficulty {synthetic_difficulty!r}",
            hint=f"choose from {', '.join(DIFFICULTIES)}",
        )
    fams = resolve_families(synthetic_families)
    return SourcePlan(
        SYNTHETIC,
        "synthetic",
        license=LICENSE,
        synthetic_n=synthetic_tasks or DEFAULT_SYNTHETIC_TASKS,
        seed=seed,
        synthetic_families=fams,
        synthetic_difficulty=synthetic_difficulty,
    )


def _check_plan_names(plans: Sequence[SourcePlan], manifests: dict[str, Manifest]) -> None:
    """Refuse a source name used twice, or that of the dataset's reports folder."""
    seen: set[str] = set()
    for p in plans:
        if p.name in seen or (p.kind != "manifest" and p.name in manifests):
            raise BuildError(f"source name {p.name!r} is used twice", hint="pick another with --local-name")
        if p.name == reports.REPORTS_DIR:
            raise BuildError(
                f"source name {p.name!r} is the dataset's reports folder",
                hint="pick another with --local-name",
            )
        seen.add(p.name)


ALL_GENERATORS = "*"  # ``--generate N``: every generator source of the build


def apply_generate(
    plans: Sequence[SourcePlan], generate: Mapping[str, int] | None, tasks: Mapping[str, int] | None = None
) -> None:
    """Set how many examples per generator each generator source makes (``--generate [SOURCE=]N``) and how
    many tasks are sampled from them (``--tasks-per-generator [SOURCE=]T``, 0: consecutive runs of k + 1).

    Upstream programs run only from a cache folder whose files still hash to the source's pin."""
    generate, tasks = dict(generate or {}), dict(tasks or {})
    _check_generate_names(plans, generate, "--generate", "examples")
    _check_generate_names(plans, tasks, "--tasks-per-generator", "tasks")
    for p in plans:
        if p.manifest is None or p.manifest.kind != "generator":
            continue
        p.generate_n = generate.get(p.name, generate.get(ALL_GENERATORS, 0))
        p.generate_tasks = tasks.get(p.name, tasks.get(ALL_GENERATORS, 0)) if p.generate_n else 0
        if p.generate_n > 0:
            _check_code(p.manifest)


def _check_generate_names(
    plans: Sequence[SourcePlan], counts: Mapping[str, int], flag: str, what: str
) -> None:
    """Each ``SOURCE=N`` of ``flag`` names a generator source of the build, N at least 0."""
    by_name = {p.name: p for p in plans}
    for name, n in counts.items():
        if n < 0:
            raise BuildError(f"{flag} {name}={n}: the number of {what} must be at least 0")
        if name == ALL_GENERATORS:
            continue
        p = by_name.get(name)
        if p is None:
            raise BuildError(
                f"{flag} {name}={n}: source {name!r} is not part of this build",
                hint=f"arcforge fetch {name}, or add --source {name}",
            )
        if p.manifest is None or p.manifest.kind != "generator":
            raise BuildError(f"{flag} {name}={n}: {name!r} is not a generator source")


def _check_code(m: Manifest) -> None:
    from arcforge.sources import lock
    from arcforge.sources.fetch import cached_path

    if lock.find_pin(m) is None:
        raise BuildError(
            f"source {m.name!r} has no pinned digest: its programs are not run",
            hint=f"pin it in {lock.repo_lock_path(m)} (python -m arcforge.sources.lock MIRROR)",
        )
    if cached_path(m, verify=True) is None:
        raise BuildError(
            f"source {m.name!r}: the cached files do not match the pinned digest; its programs are not run",
            hint=f"arcforge fetch {m.name} --force",
        )


def eval_split_set(
    plans: Sequence[SourcePlan], eval_refs: Sequence[str] | None, warnings: list[str] | None = None
) -> set[tuple[str, str]]:
    """``{(source, split)}`` that are the evaluation reference: ``--eval`` refs, else eval manifests.

    A bare ``SOURCE`` means its evaluation-role splits (a manifest's ``eval_splits``; ``evaluation`` for a
    local folder). Any other split must be named as ``SOURCE:SPLIT`` and adds a line to ``warnings``:
    its tasks become the reference, so their copies in other sources are excluded.
    """
    if eval_refs is None:
        return {
            (p.name, s) for p in plans if p.manifest and p.manifest.is_eval for s in p.manifest.eval_splits
        }
    by_name = {p.name: p for p in plans}
    out = set()
    for ref in eval_refs:
        out |= _eval_ref_splits(ref, by_name, warnings)
    return out


def _eval_ref_splits(
    ref: str, by_name: Mapping[str, SourcePlan], warnings: list[str] | None
) -> set[tuple[str, str]]:
    """The ``(source, split)`` one ``--eval SOURCE[:SPLIT]`` names, checked against the build's sources."""
    name, _, split = ref.partition(":")
    p = by_name.get(name)
    if p is None:
        raise BuildError(
            f"--eval {ref}: source {name!r} is not part of this build", hint=f"add --source {name}"
        )
    if split and not SPLIT_RE.match(split):
        raise BuildError(f"--eval {ref}: {split!r} is not a valid split name")
    role_splits = list(p.manifest.eval_splits) if p.manifest else [EVAL_SPLIT]
    _check_eval_split(ref, p, split, role_splits)
    if split and split not in role_splits and warnings is not None:
        warnings.append(
            f"--eval {ref}: {split!r} is not an evaluation split; its tasks are the reference "
            "and their copies in other sources are excluded"
        )
    return {(name, s) for s in ([split] if split else role_splits)}


def _check_eval_split(ref: str, p: SourcePlan, split: str, role_splits: list[str]) -> None:
    """Refuse a bare ``--eval SOURCE`` without an evaluation split, or a split the source does not have."""
    if not split and not role_splits:
        raise BuildError(
            f"--eval {ref}: source {p.name!r} has no evaluation split",
            hint=f"name one: --eval {p.name}:SPLIT (one of {', '.join(p.manifest.splits)})",
        )
    if split and p.manifest and split not in p.manifest.splits:
        raise BuildError(
            f"--eval {ref}: source {p.name!r} has no split {split!r}",
            hint=f"one of {', '.join(p.manifest.splits)}",
        )


# --- the pipeline ----------------------------------------------------------------------------------------
def _drop_oversize(table: pa.Table, max_grid: int) -> tuple[pa.Table, list[dict[str, str]]]:
    sides = task_max_side(table)
    over = sides > max_grid
    if not over.any():
        return table, []
    dropped = table.filter(pa.array(over))
    rows = [
        {
            "source": r["source"],
            "path": r["path"],
            "reason": OVERSIZE,
            "split": r["split"],
            "detail": f"{r['id']}: a grid side of {int(s)} is larger than --max-grid {max_grid}",
        }
        for r, s in zip(
            dropped.select(["id", "source", "split", "path"]).to_pylist(), sides[over], strict=True
        )
    ]
    return table.filter(pa.array(~over)), rows


def _nested_counts(table: pa.Table, mask: np.ndarray | None = None) -> dict[str, dict[str, int]]:
    keys = table.select(["source", "split"])  # counted in Arrow: no Python string per row
    if mask is not None:
        keys = keys.filter(pa.array(mask))
    groups = keys.group_by(["source", "split"], use_threads=False).aggregate([([], "count_all")]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for g in sorted(groups, key=lambda g: (g["source"], g["split"])):
        out.setdefault(g["source"], {})[g["split"]] = g["count_all"]
    return out


def _split_bytes(table: pa.Table) -> dict[tuple[str, str], int]:
    """Arrow bytes of the rows of each (source, split) (``num_bytes`` in the card)."""
    out: Counter[tuple[str, str]] = Counter()
    for batch in table.to_batches():  # batch by batch: never a copy of a whole split in memory
        keys = pa.Table.from_batches([batch]).select(["source", "split"])
        for k in keys.group_by(["source", "split"], use_threads=False).aggregate([]).to_pylist():
            mask = pc.and_(pc.equal(batch["source"], k["source"]), pc.equal(batch["split"], k["split"]))
            out[(k["source"], k["split"])] += batch.filter(mask).nbytes
    return dict(out)


def _synthetic_description(p: SourcePlan) -> str:
    fams = "all families" if p.synthetic_families is None else f"families {', '.join(p.synthetic_families)}"
    return f"{p.synthetic_n} generated tasks, seed {p.seed}, difficulty {p.synthetic_difficulty}, {fams}"


def _source_info(
    p: SourcePlan, counts: dict[str, int], nbytes: dict[tuple[str, str], int]
) -> card.SourceInfo:
    split_bytes = {sp: nbytes.get((p.name, sp), 0) for sp in counts}
    if p.manifest is not None:
        m = p.manifest
        return card.SourceInfo(
            m.name,
            m.title,
            m.license,
            m.homepage,
            m.repo,
            m.commit,
            m.citation,
            m.description,
            counts,
            split_bytes,
            m.revision,
        )
    if p.kind == SYNTHETIC:
        from arcforge import synthetic

        return card.SourceInfo(
            p.name,
            synthetic.TITLE,
            p.license,
            citation=synthetic.CITATION,
            counts=counts,
            num_bytes=split_bytes,
            description=_synthetic_description(p),
        )
    return card.SourceInfo(
        p.name,
        f"local folder {p.root.name if p.root else ''}",
        p.license,
        counts=counts,
        num_bytes=split_bytes,
    )


def build(
    out: Path, options: BuildOptions | None = None, *, progress: Progress | None = None, **flags: Any
) -> BuildStats:
    """Build the dataset into ``out`` (atomically replaced). See the module docstring for the steps.

    ``options``: what to build (``arcforge.build.options.BuildOptions``); ``flags`` are a shorthand for
    ``BuildOptions(**flags)`` (one or the other). ``workers``: processes that parse, generate and deduplicate
    (None: every available CPU); the output does not depend on it (``arcforge.build.ingest.parse_stage``).
    ``check_rules``: run the programs of program-backed sources on the reference tasks
    (``arcforge.build.rule_stage``); None = when a generator source generates."""
    if options is not None and flags:
        raise TypeError("build() takes a BuildOptions or keyword flags, not both")
    opts = options if options is not None else BuildOptions(**flags)
    progress = progress or NULL_PROGRESS
    out = _resolve_out(out)
    stats = BuildStats(out=str(out))
    plans, eval_splits = _plan_build(opts, stats.warnings)
    table, quarantine, reference = _parse(plans, opts, stats, progress)
    table = _validate_and_filter(table, quarantine, eval_splits, opts, stats)
    result = _deduplicate(table, plans, reference, eval_splits, opts, stats, progress)
    _count_kept(result, quarantine, stats)
    _refuse_incomplete(out, result.table, quarantine, opts.strict, stats)
    _write(out, plans, result, quarantine, eval_splits, opts, stats, progress)
    return stats


def _resolve_out(out: Path) -> Path:
    """The folder to build into (a link's target: swap the folder it points to, never the link), checked."""
    out = Path(out)
    if out.is_symlink():  # swap the folder it points to, never the link itself
        out = out.resolve()
    _check_out(out)
    if (paths.home() / "tmp").is_dir():  # a fetch killed mid-swap may have moved a source aside
        from arcforge.sources.staging import recover

        recover()
    return out


def _plan_build(opts: BuildOptions, warnings: list[str]) -> tuple[list[SourcePlan], set[tuple[str, str]]]:
    """Plan the sources, what they generate and which splits are the evaluation reference."""
    if opts.max_grid is not None and opts.max_grid < 1:
        raise BuildError(f"--max-grid {opts.max_grid} must be at least 1")
    manifests = load_manifests(opts.manifests_dir)
    plans = plan_sources(
        manifests,
        opts.sources,
        opts.local,
        opts.local_names,
        opts.synthetic_tasks,
        opts.seed,
        opts.synthetic_families,
        opts.synthetic_difficulty,
    )
    apply_generate(plans, opts.generate, opts.generate_tasks)
    eval_splits = eval_split_set(plans, opts.eval_refs, warnings)
    _check_eval_local(plans, opts.eval_local)
    return plans, eval_splits


def _parse(
    plans: list[SourcePlan], opts: BuildOptions, stats: BuildStats, progress: Progress
) -> tuple[pa.Table, list[dict], pa.Table | None]:
    """Parse each source into a table of valid tasks; the quarantined rows and the ``--eval-local``
    reference."""
    parsed, reference = parse_stage(
        plans, opts.eval_local, use_cache=opts.use_cache, workers=opts.workers, progress=progress
    )
    quarantine = [row for ps in parsed for row in ps.quarantine]
    for ps in parsed:
        _record_parsed(ps, stats)
    table = pa.concat_tables([ps.table for ps in parsed]) if parsed else TASK_SCHEMA.empty_table()
    return table, quarantine, reference


def _record_parsed(ps: ParsedSource, stats: BuildStats) -> None:
    """Add one parsed source's counts (found, files, cache, generated, skipped) to ``stats``."""
    if ps.found:
        stats.found[ps.name] = dict(ps.found)
    stats.files_read += ps.files
    if ps.from_cache:
        stats.cached_sources.append(ps.name)
    if ps.generated:
        stats.generated[ps.name] = dict(ps.generated)
        if ps.generated.get("short"):
            stats.warnings.append(
                f"{ps.name}: {ps.generated['short']} example(s) short of --generate "
                f"(a generator failed {GIVE_UP_NOTE})"
            )
    for reason, n in ps.skipped.items():
        stats.skipped[reason] = stats.skipped.get(reason, 0) + n


def _validate_and_filter(
    table: pa.Table,
    quarantine: list[dict],
    eval_splits: set[tuple[str, str]],
    opts: BuildOptions,
    stats: BuildStats,
) -> pa.Table:
    """Warn of an empty ``--eval`` reference; drop (and quarantine) tasks over ``--max-grid``."""
    if opts.eval_refs:  # a reference the user named but that holds no task protects nothing
        stats.warnings += [
            f"--eval {name}:{split}: no task in that split, nothing is compared against it"
            for name, split in sorted(eval_splits)
            if not stats.found.get(name, {}).get(split)
        ]
    if opts.max_grid is not None:
        table, oversize = _drop_oversize(table, opts.max_grid)
        quarantine += oversize
        stats.oversize_dropped = len(oversize)
    return table


def _deduplicate(
    table: pa.Table,
    plans: list[SourcePlan],
    reference: pa.Table | None,
    eval_splits: set[tuple[str, str]],
    opts: BuildOptions,
    stats: BuildStats,
    progress: Progress,
) -> dedup.DedupResult:
    """Decontaminate and deduplicate (``dedup.run_dedup``), then run the rule level over what is kept."""
    result = dedup.run_dedup(
        table,
        eval_splits=eval_splits,
        extra_reference=reference,
        exclude_eval=opts.exclude_eval,
        priority=[p.name for p in plans],
        batching=dedup.Batching(workers=resolve_workers(opts.workers)),
        progress=progress,
    )
    stats.rules = _rule_level(result, plans, table, reference, eval_splits, opts, progress)
    return result


def _count_kept(result: dedup.DedupResult, quarantine: list[dict], stats: BuildStats) -> None:
    """Count the kept tasks (and those over 30), the dedup outcome and the quarantine into ``stats``."""
    kept = result.table
    stats.tasks = _nested_counts(kept)
    stats.over_30 = _nested_counts(kept, task_max_side(kept) > MAX_GRID_SIDE)
    stats.dedup = dict(sorted(result.counts.items()))
    stats.excluded, stats.duplicates = result.excluded.num_rows, result.duplicates.num_rows
    q_reasons = Counter(r["reason"] for r in quarantine)
    stats.quarantined = dict(sorted(q_reasons.items()))
    stats.quarantined_by_source = dict(sorted(Counter(r["source"] for r in quarantine).items()))


def _refuse_incomplete(
    out: Path, kept: pa.Table, quarantine: list[dict], strict: bool, stats: BuildStats
) -> None:
    """Leave ``out`` unchanged when no task is left, or with ``--strict`` when a task was quarantined."""
    if kept.num_rows == 0:
        raise _nothing_to_write(out, stats)
    errors = [r for r in quarantine if r["reason"] != OVERSIZE]
    if strict and errors:
        first = "; ".join(f"{r['path']} ({r['reason']}: {r['detail']})" for r in errors[:3])
        raise BuildError(
            f"--strict: {len(errors)} task(s) quarantined, {out} left unchanged. First: {first}",
            hint="run without --strict and look at reports/quarantine.jsonl",
        )


def _write(
    out: Path,
    plans: list[SourcePlan],
    result: dedup.DedupResult,
    quarantine: list[dict],
    eval_splits: set[tuple[str, str]],
    opts: BuildOptions,
    stats: BuildStats,
    progress: Progress,
) -> None:
    """Write shards, reports, the dataset card and provenance into a temp folder and swap it in for
    ``out``."""
    nbytes = _split_bytes(result.table)
    card_data = _card_data(plans, stats, nbytes, opts)
    quarantine.sort(key=lambda r: (r["source"], r["path"], r["reason"], r["detail"]))
    prov_options = _provenance_options(plans, eval_splits, opts)
    prov_sources = [_provenance_entry(p) for p in plans]
    contents = _Contents(
        result, quarantine_table(quarantine), card_data, (prov_sources, prov_options), nbytes
    )
    stats.outputs, notes = _write_atomically(out, contents, opts, progress)
    stats.warnings += notes


def _card_data(
    plans: list[SourcePlan], stats: BuildStats, nbytes: dict[tuple[str, str], int], opts: BuildOptions
) -> card.CardData:
    """What the dataset card says: each source's tasks and bytes, the quarantine, dedup and the options."""
    infos = [_source_info(p, stats.tasks.get(p.name, {}), nbytes) for p in plans]
    options = {k: v for k, v in (("max_grid", opts.max_grid), ("exclude_eval", opts.exclude_eval)) if v}
    return card.CardData(infos, stats.quarantined, stats.dedup, sum(stats.skipped.values()), options)


def _provenance_options(
    plans: list[SourcePlan], eval_splits: set[tuple[str, str]], opts: BuildOptions
) -> dict[str, Any]:
    """The build's options in provenance.json (``--eval-local`` folders by name: no local path is
    uploaded)."""
    synth = [p for p in plans if p.kind == SYNTHETIC]
    sampled = (
        {"tasks_per_generator": dict(sorted(opts.generate_tasks.items()))} if opts.generate_tasks else {}
    )
    return {
        "sources": [p.name for p in plans],
        "local": [p.name for p in plans if p.kind == "local"],
        "exclude_eval": opts.exclude_eval,
        "eval_refs": opts.eval_refs,
        "eval_splits": sorted(f"{a}:{b}" for a, b in eval_splits),
        "eval_local": [reference_name(Path(x)) for x in opts.eval_local],  # names: no local path is uploaded
        "max_grid": opts.max_grid,
        "synthetic_tasks": opts.synthetic_tasks,
        "synthetic_families": synth[0].synthetic_families if synth else None,
        "synthetic_difficulty": synth[0].synthetic_difficulty if synth else None,
        "seed": opts.seed,
        "generate": dict(sorted((opts.generate or {}).items())),
        "shard_bytes": opts.shard_bytes,
        "row_group_rows": opts.row_group_rows,
        **sampled,
    }


def _nothing_to_write(out: Path, stats: BuildStats) -> BuildError:
    """The one line for a build that found no task to write (the previous output, if any, is kept)."""
    why = [f"{stats.files_read} task file(s) read"]
    if stats.quarantined:
        why.append(
            f"{stats.total_quarantined} quarantined ("
            + ", ".join(
                f"{n} {reason}" for reason, n in sorted(stats.quarantined.items(), key=lambda x: -x[1])
            )
            + ")"
        )
    if stats.skipped:
        why.append(f"{sum(stats.skipped.values())} file(s) not tasks")
    if stats.excluded or stats.duplicates:
        why.append(f"{stats.excluded} removed as evaluation tasks, {stats.duplicates} as duplicates")
    hint = (
        "--local takes a folder of ARC task files (*.json with train/test pairs, zips of them); "
        "a built dataset is read with --data, not --local"
    )
    if stats.oversize_dropped:
        hint = "raise --max-grid or leave it out"
    return BuildError(f"no valid task to write: {', '.join(why)}; {out} was not changed", hint=hint)


def _provenance_entry(p: SourcePlan) -> dict:
    """One source's line in provenance.json: where its tasks came from, exactly."""
    if p.manifest is not None:
        m = p.manifest
        entry = {
            "name": m.name,
            "repo": m.repo,
            "commit": m.commit or UNRESOLVED,
            "license": m.license,
            "citation": m.citation,
            "format": m.format,
            "kind": m.kind,
        }
        if m.revision:  # pinned by a branch or tag: the commit is the one locked on first fetch
            entry["revision"] = m.revision
        if p.generate_n:  # the programs ran: what they were asked for (seeds follow from it)
            entry["generate"] = {
                "examples_per_generator": p.generate_n,
                **{
                    k: m.settings[k]
                    for k in ("driver", "k", "keys", "call_s", "memory_mb")
                    if m.settings.get(k)
                },
            }
            if p.generate_tasks:
                entry["generate"]["tasks_per_generator"] = p.generate_tasks
        if p.root is not None:
            from arcforge.sources.fetch import read_marker

            marker = read_marker(p.root) or {}
            if marker.get("digest"):
                entry["digest"] = marker["digest"]
        return entry
    if p.kind == SYNTHETIC:
        from arcforge import synthetic

        fams = "all" if p.synthetic_families is None else "+".join(p.synthetic_families)
        return {
            "name": p.name,
            "repo": "arcforge/synthetic",
            "commit": f"seed-{p.seed}-n-{p.synthetic_n}-{p.synthetic_difficulty}-{fams}",
            "license": p.license,
            "citation": getattr(synthetic, "CITATION", ""),
        }
    return {"name": p.name, "repo": f"local:{p.name}", "commit": "local", "license": p.license}


def reference_name(folder: Path) -> str:
    """The name an ``--eval-local`` folder goes by (in reports and provenance: never its path)."""
    return f"eval_{local_name(folder)}"


def _check_eval_local(plans: Sequence[SourcePlan], eval_local: Sequence[Path]) -> None:
    """A folder given both as --local and --eval-local would be removed entirely as a copy of itself."""
    refs = {Path(f).resolve() for f in eval_local}
    for p in plans:
        if p.kind == "local" and p.root is not None and p.root.resolve() in refs:
            raise BuildError(
                f"{p.root} is given both as --local and as --eval-local: every task would be "
                "removed as a copy of an evaluation task",
                hint="--eval-local names a folder of evaluation tasks to keep out of the build",
            )


def _rule_level(
    result: dedup.DedupResult,
    plans: Sequence[SourcePlan],
    table: pa.Table,
    reference: pa.Table | None,
    eval_splits: set[tuple[str, str]],
    opts: BuildOptions,
    progress: Progress,
) -> dict[str, float]:
    """Run the rule level (``arcforge.build.rule_stage``) over the deduplicated rows; merge what it found.

    It runs the programs that made tasks of this build: those of the generator sources that generate
    (``--generate``), or, with ``check_rules``, of every source whose checkout ships programs (BARC's
    synthetic problems); never from a source whose cached files do not match its pin (checked before the
    first program runs: a rebuild that the cache answers runs nothing and re-hashes nothing)."""
    from arcforge.build import rule_stage
    from arcforge.build.rules import RuleConfig

    workers = resolve_workers(opts.workers)  # a bad --workers is refused first, even without rules
    if opts.check_rules is False:
        return {}
    programs, dirs = rule_stage.build_programs(_rule_sources(plans, opts.check_rules))
    pinned = [p.manifest for p in plans if p.manifest is not None and p.name in dirs]
    kept = result.table
    run = rule_stage.RuleRunOptions(
        exclude_eval=opts.exclude_eval,
        made=table,
        config=RuleConfig(workers=workers),
        progress=progress,
        before_run=lambda: [_check_code(m) for m in pinned],
    )
    stage = rule_stage.run_rule_stage(kept, reference, _is_reference(kept, eval_splits), programs, dirs, run)
    if stage is None or stage.result is None:
        return {}
    _merge_rule_stage(result, stage)
    return _rule_figures(stage)


def _rule_sources(plans: Sequence[SourcePlan], check_rules: bool | None) -> list[tuple[str, str, Path]]:
    """The ``(name, repo, checkout)`` of the sources whose programs may run: every fetched one with
    ``check_rules``, else those that generate."""
    return [
        (p.name, p.manifest.repo, p.root)
        for p in plans
        if p.manifest is not None and p.root is not None and (check_rules or p.generate_n > 0)
    ]


def _merge_rule_stage(result: dedup.DedupResult, stage: rule_stage.RuleStage) -> None:
    """Fold what the rule level found into ``result``: its kept rows, exclusions, reports and counts."""
    result.table = stage.table
    result.excluded = pa.concat_tables([result.excluded, stage.excluded])
    reported = result.reported if result.reported is not None else dedup.REPORTED_SCHEMA.empty_table()
    result.reported = pa.concat_tables([reported, stage.reported])
    result.counts.update({k: v for k, v in stage.counts.items() if v})
    result.rules = {"rules": stage.rules, "rule_errors": stage.errors, "rule_lineage": stage.lineage}


def _rule_figures(stage: rule_stage.RuleStage) -> dict[str, float]:
    """The rule level's figures for the build's summary."""
    r = stage.result
    return {
        "programs": len({(p.source, p.path) for p in stage.programs}),
        "reference_tasks": r.references,
        "checked": r.checked,
        "cached": r.cached,
        "calls": r.calls,
        "seconds": round(r.seconds, 3),
        "programs_run": r.programs_run,
        "summary": int(r.summary),
    }


def _is_reference(table: pa.Table, eval_splits: set[tuple[str, str]]) -> np.ndarray:
    mask = np.zeros(table.num_rows, dtype=bool)
    for source, split in eval_splits:
        both = pc.and_(pc.equal(table["source"], source), pc.equal(table["split"], split))
        mask |= np.asarray(both.to_numpy(zero_copy_only=False), dtype=bool)
    return mask


# --- atomic output ---------------------------------------------------------------------------------------
def _check_out(out: Path) -> None:
    """Refuse a file, or a non-empty folder that no arcforge build wrote (its files are never touched)."""
    output.recover(out)  # a build killed mid-swap: put the previous output back first
    if out.exists():
        if not out.is_dir():
            raise BuildError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not output.is_build(out):
            raise BuildError(
                f"{out}: is a non-empty folder that is not an arcforge build; not writing into it",
                hint="choose another --out or empty that folder",
            )


@dataclass(frozen=True)
class _Contents:
    """What a build writes: the kept tasks and dedup reports (``result``), the quarantine, the card's data,
    provenance (sources, options) and the Arrow bytes of each (source, split)."""

    result: dedup.DedupResult
    quarantine: pa.Table
    card_data: card.CardData
    provenance: tuple[list[dict], dict]
    nbytes: dict[tuple[str, str], int] | None = None


def _write_atomically(
    out: Path, contents: _Contents, opts: BuildOptions, progress: Progress
) -> tuple[list[str], list[str]]:
    """Write ``contents`` into a temp folder beside ``out`` and swap it in (only what the previous build
    wrote is replaced); on any error, Ctrl-C included, the temp folder is removed and ``out`` is unchanged."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.building_dir(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        progress.start("write", "Writing shards", total=None)
        files = _write_contents(tmp, contents, opts)
        progress.finish("write")
        notes = output.commit(out, tmp, files)  # replaces only what the previous build wrote
    except BaseException:  # Ctrl-C included: never leave a half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(files), notes


def _write_contents(tmp: Path, contents: _Contents, opts: BuildOptions) -> list[str]:
    """Shards, report files, the dataset card and provenance.json into ``tmp``; the files written."""
    result = contents.result
    infos = shard_writer.write_shards(
        result.table,
        tmp,
        shard_bytes=opts.shard_bytes,
        row_group_rows=opts.row_group_rows,
        group_nbytes=contents.nbytes,
    )
    files = [i.path.as_posix() for i in infos]
    reported = result.reported if result.reported is not None else dedup.REPORTED_SCHEMA.empty_table()
    files += reports.write_reports(
        tmp,
        {
            "quarantine": contents.quarantine,
            "excluded": result.excluded,
            "duplicates": result.duplicates,
            "reported": reported,
            **result.rules,
        },
    )
    (tmp / "README.md").write_text(card.render_card(contents.card_data), encoding="utf-8")
    files.append("README.md")
    write_provenance(tmp, sources=contents.provenance[0], options=contents.provenance[1])
    files.append(PROVENANCE_FILE)
    return files
