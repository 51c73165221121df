"""Turn one source (a fetched manifest source, a user's ``--local`` folder, or the synthetic generator)
into a table of validated tasks plus quarantine rows and counts: the per-source step of the build.

Ids: ``<source>/<path relative to id_root, without extension>``; a zip member's id uses its path inside
the archive; a format that finds several tasks in one file appends ``/<key>``. ``--local`` folders: ids
are relative to the folder; a file under a top-level ``training/`` or ``evaluation/`` folder goes to that
split, every other file to ``training``; each file's format is detected from its content.

Parsed sources are cached under ``ARCFORGE_HOME/build-cache`` (Arrow IPC, keyed by the arcforge version
and everything that determines the result), so a re-run after an interruption or with other options
does not parse finished sources again.

Parallel: each source's files (or synthetic task indices) are cut into chunks that worker processes
parse (``arcforge.build.parallel``); the chunks are merged back in order, and the checks that span a source
(duplicate ids, synthetic fingerprints) run during that ordered merge, so the result is the same for
any number of workers. Each source streams into a spill file (``arcforge.build.spill``), so memory stays
bounded whatever the number of tasks.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from arcforge import __version__, formats, paths
from arcforge.build import spill
from arcforge.build.parallel import WorkerPool
from arcforge.build.spill import SpillWriter, read_spill
from arcforge.errors import BuildError
from arcforge.formats import Member, RawTask, Rejected, Skipped
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.sources import integrity
from arcforge.sources.manifest import NAME_RE, Manifest
from arcforge.sources.members import ZipCache, glob_members, is_tar, local_members, open_member, plain_files
from arcforge.synthetic.base import DEFAULT_DIFFICULTY
from arcforge.task import (
    BAD_STRUCTURE,
    DUPLICATE_ID,
    QUARANTINE_SCHEMA,
    TASK_SCHEMA,
    Task,
    TaskFormatError,
    loads_json,
    tasks_to_table,
)

LOCAL_SPLITS = ("training", "evaluation")
DEFAULT_LOCAL_SPLIT = "training"
LOCAL_LICENSE = "unknown"
NOT_A_TASK = "no known format recognizes this file"
FLUSH_TASKS = 20_000  # tasks held as Python objects at most, per work chunk
PART_BYTES = 64 << 20  # a JSON Lines file bigger than this is read as parts of this size, in parallel


@dataclass
class SourcePlan:
    """One source to parse. ``kind`` is ``manifest``, ``local`` or ``synthetic``."""

    name: str
    kind: str
    root: Path | None = None
    manifest: Manifest | None = None
    repo: str = ""
    commit: str = ""
    license: str = LOCAL_LICENSE
    synthetic_n: int = 0
    seed: int = 0
    synthetic_families: tuple[str, ...] | None = None  # None = every family
    synthetic_difficulty: str = DEFAULT_DIFFICULTY
    generate_n: int = 0  # a generator source: examples per generator (0 = its files only)
    generate_tasks: int = 0  # tasks per generator sampled from them (0 = consecutive runs of k + 1)


@dataclass
class ParsedSource:
    """The result of parsing one source: valid tasks, quarantine rows and counts."""

    name: str
    table: pa.Table  # TASK_SCHEMA, one row per valid task
    quarantine: list[dict[str, str]] = field(default_factory=list)  # QUARANTINE_SCHEMA rows
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files that are not tasks
    found: dict[str, int] = field(default_factory=dict)  # split -> tasks found (valid + quarantined)
    files: int = 0
    from_cache: bool = False
    generated: dict[str, int] = field(default_factory=dict)  # generator sources: attempts, kept, per filter


def local_name(folder: Path) -> str:
    """A config-safe source name from a folder name: ``My ARC-tasks`` -> ``my_arc_tasks``."""
    name = re.sub(r"[^a-z0-9]+", "_", folder.resolve().name.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"local_{name}".rstrip("_")
    if not NAME_RE.match(name):
        raise BuildError(f"{folder}: cannot derive a source name", hint="pass --local-name NAME")
    return name


def _strip_ext(path: str) -> str:
    head, _, tail = path.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{stem}" if head else stem


def _rel_id(inner: str, id_root: str) -> str:
    if id_root and inner.startswith(id_root + "/"):
        inner = inner[len(id_root) + 1 :]
    return _strip_ext(inner)


class _Collector:
    """Accumulates tasks, quarantine rows and counts while the files of one work chunk are read.

    Task ids are checked for duplicates later, across the whole source, by ``_SourceMerger``."""

    def __init__(self, plan: SourcePlan) -> None:
        self.plan = plan
        self.tasks: list[Task] = []
        self.tables: list[pa.Table] = []  # tasks already turned into Arrow rows (see FLUSH_TASKS)
        self.quarantine: list[dict[str, str]] = []
        self.skipped: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.files = 0

    def reject(self, path: str, split: str, reason: str, detail: str) -> None:
        self.found[split] += 1
        self.quarantine.append(
            {"source": self.plan.name, "path": path, "reason": reason, "detail": detail, "split": split}
        )

    def read(
        self, member: Member, fmt: formats.Format | None, options: dict, split: str, base_id: str
    ) -> None:
        """Read one member with ``fmt`` (None: detect it from the content) into the collector."""
        part = options.get("part")
        self.files += not part or part[0] == 0  # a file read as parts counts once
        try:
            if fmt is None:
                data = member.read()
                obj = loads_json(data, member.path)
                fmt = formats.detect(member.path, obj)
                if fmt is None:
                    raise TaskFormatError(BAD_STRUCTURE, NOT_A_TASK)
                member = Member(member.path, lambda: data, obj)  # parsed once, read by the format
            # A streaming format (JSONL, Parquet: files of any size) is consumed as it yields; the others are
            # listed first, so that a file that fails halfway is quarantined whole.
            items = (
                fmt.read(member, options)
                if getattr(fmt, "streaming", False)
                else list(fmt.read(member, options))
            )
            for item in items:
                self._take(member.path, split, base_id, item)
        except TaskFormatError as e:
            self.reject(member.path, split, e.reason, e.detail)

    def _take(self, path: str, split: str, base_id: str, item: formats.Item) -> None:
        if isinstance(item, Skipped):
            self.skipped[item.reason] += 1
        elif isinstance(item, Rejected):
            self.reject(path, split, item.reason, f"{item.key}: {item.detail}")
        elif isinstance(item, RawTask):
            self.add(path, split, f"{base_id}/{item.key}" if item.key else base_id, item)

    def add(self, path: str, split: str, task_id: str, raw: RawTask) -> None:
        self.found[split] += 1
        p = self.plan
        self.tasks.append(
            Task(
                task_id,
                p.name,
                split,
                raw.train,
                raw.test,
                p.repo,
                p.commit,
                path,
                p.license,
                raw.extra,
                derived_from=raw.derived_from,
                quality=raw.quality,
            )
        )
        if len(self.tasks) >= FLUSH_TASKS:  # a file of millions of tasks: hold them as compact Arrow rows
            self.tables.append(tasks_to_table(self.tasks))
            self.tasks = []

    def table(self) -> pa.Table:
        """Every task collected, as one ``TASK_SCHEMA`` table."""
        tables = [*self.tables, tasks_to_table(self.tasks)]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# --- work chunks (run in the worker processes) -------------------------------------------------------------
@dataclass(frozen=True)
class _FileItem:
    """One member to read: its path (``outer.zip!inner`` inside a zip), format (None = detect), split, id."""

    path: str
    fmt: str | None
    options: dict
    split: str
    base_id: str
    size: int  # bytes (uncompressed): chunks are cut by size


@dataclass(frozen=True)
class _Job:
    """A chunk of one source's work: files to read, or a range of synthetic task indices."""

    source: int  # index into the plans being parsed
    plan: SourcePlan
    files: tuple[_FileItem, ...] = ()
    first: int = 0  # synthetic: task indices first..last-1
    last: int = 0
    final: bool = False  # the source's last chunk
    keys: tuple[str, ...] = ()  # a generator source: the generator keys to run


@dataclass
class _Chunk:
    """What a worker sends back for one ``_Job``: Arrow rows (cheap to pickle) and counts."""

    source: int
    final: bool
    table: pa.Table
    quarantine: list[dict[str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    files: int = 0
    generated: Counter[str] = field(default_factory=Counter)


# The archives a process's work chunks read, kept open across chunks: a zip of 100,000 tasks is cut into
# hundreds of chunks, and opening it (and checking every member) once per chunk made the build quadratic.
# Closed when the parse stage ends (in this process; a worker's go with it).
JOB_ZIPS = ZipCache(max_open=16)


def _open_member(root: Path, path: str, zips: ZipCache) -> Member:
    """The ``Member`` for a path from ``glob_members`` (a plain file, or ``outer.zip!inner``)."""
    return open_member(root, path, zips)


def _run_job(job: _Job) -> _Chunk:
    # Parsing allocates many small objects that all stay alive: the cyclic GC only costs time here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if job.plan.kind == "synthetic":
            from arcforge.synthetic.generator import generate_table

            p = job.plan
            table = generate_table(
                job.first, job.last, p.seed, families=p.synthetic_families, difficulty=p.synthetic_difficulty
            )
            return _Chunk(job.source, job.final, table)
        if job.keys:
            from arcforge.build.generated import run_generators

            table, quarantine, found, counts = run_generators(job.plan, job.keys)
            return _Chunk(job.source, job.final, table, quarantine, Counter(), found, 0, counts)
        col = _Collector(job.plan)
        assert job.plan.root is not None
        for it in job.files:
            member = _open_member(job.plan.root, it.path, JOB_ZIPS)
            col.read(
                member, None if it.fmt is None else formats.get(it.fmt), it.options, it.split, it.base_id
            )
        return _Chunk(job.source, job.final, col.table(), col.quarantine, col.skipped, col.found, col.files)
    finally:
        if gc_was_enabled:
            gc.enable()


# --- planning the work (in the parent) ----------------------------------------------------------------------
def _manifest_items(plan: SourcePlan) -> Iterator[_FileItem]:
    m = plan.manifest
    assert m is not None and plan.root is not None
    files = plain_files(plan.root)
    with ZipCache() as zips:
        for tg in m.tasks:
            fmt = formats.get(tg.format or m.format).name
            id_root = tg.id_root if tg.id_root is not None else m.id_root
            splittable = getattr(formats.get(fmt), "splittable", False)
            for member in glob_members(plan.root, tg.include, tg.exclude, zips=zips, files=files):
                item = _FileItem(
                    member.path,
                    fmt,
                    tg.options,
                    tg.split,
                    f"{plan.name}/{_rel_id(member.inner_path, id_root)}",
                    _member_size(plan.root, member.path, zips),
                )
                yield from (_parts(plan.root, item) if splittable and item.size > PART_BYTES else (item,))


def _parts(root: Path, item: _FileItem) -> Iterator[_FileItem]:
    """A big file of a splittable format (JSON Lines) as parts of about ``PART_BYTES``, cut at line starts."""
    from arcforge.formats.jsonl import split

    path = os.path.join(root, item.path)
    if "!" in item.path or not os.path.isfile(path):
        yield item
        return
    for part in split(path, PART_BYTES):
        yield dataclasses.replace(
            item, options={**item.options, "part": list(part)}, size=part.end - part.start
        )


def _local_items(plan: SourcePlan) -> Iterator[_FileItem]:
    assert plan.root is not None
    with ZipCache() as zips:
        for member in local_members(plan.root, zips=zips):
            rel = _strip_ext(member.inner_path)
            top = rel.split("/", 1)[0]
            split = top if top in LOCAL_SPLITS and "/" in rel else DEFAULT_LOCAL_SPLIT
            yield _FileItem(
                member.path, None, {}, split, f"{plan.name}/{rel}", _member_size(plan.root, member.path, zips)
            )


def _member_size(root: Path, path: str, zips: ZipCache) -> int:
    """Bytes of a member, for cutting chunks; 0 when they cannot be known here (a damaged archive, a
    name that is not UTF-8: the worker quarantines such a member when it opens it)."""
    file = os.path.join(root, path)  # a str: this runs once per file of the build
    try:
        if "!" in path and not os.path.isfile(file):
            outer, inner = path.split("!", 1)
            if is_tar(outer):
                return os.stat(os.path.join(zips.untar(root / outer), inner)).st_size
            return zips.get(root / outer).getinfo(inner).file_size
        return os.stat(file).st_size
    except (BuildError, KeyError, OSError, ValueError):
        return 0


def _jobs(source: int, plan: SourcePlan, workers: int) -> Iterator[_Job]:
    """A source's work in chunks (at least one, the last one marked ``final``). Chunk sizes only spread the
    load: results are merged in order, so the output is the same whatever they are."""
    if plan.kind == "synthetic":
        n = plan.synthetic_n
        step = max(MIN_SYNTHETIC_CHUNK, min(SYNTHETIC_CHUNK, -(-n // (4 * workers))))
        for lo in range(0, max(1, n), step):
            hi = min(n, lo + step)
            yield _Job(source, plan, first=min(lo, n), last=hi, final=hi >= n)
        return
    items = list(_manifest_items(plan) if plan.kind == "manifest" else _local_items(plan))
    jobs = list(_file_jobs(source, plan, items, workers))
    if plan.generate_n > 0:
        from arcforge.build.generated import key_batches

        jobs += [_Job(source, plan, keys=batch) for batch in key_batches(plan, workers)]
    if not jobs:
        jobs = [_Job(source, plan)]  # an empty source sends one empty chunk
    yield from jobs[:-1]
    yield dataclasses.replace(jobs[-1], final=True)


def _file_jobs(source: int, plan: SourcePlan, items: list[_FileItem], workers: int) -> Iterator[_Job]:
    # About 4 chunks per worker for a small source (an even load), at most CHUNK_BYTES or FILES_PER_CHUNK
    # each for a big one (bounded memory in the workers and in flight).
    budget = min(CHUNK_BYTES, max(1, sum(it.size for it in items) // (4 * workers)))
    chunk: list[_FileItem] = []
    size = 0
    for it in items:
        if chunk and (size + it.size > budget or len(chunk) >= FILES_PER_CHUNK):
            yield _Job(source, plan, files=tuple(chunk))
            chunk, size = [], 0
        chunk.append(it)
        size += it.size
    if chunk:
        yield _Job(source, plan, files=tuple(chunk))


class _SourceMerger:
    """Merges one source's chunks, in order, into its spill file: the checks that need the whole source
    (duplicate task ids; synthetic fingerprints already taken) run here, in input order, as a serial
    parse would run them."""

    def __init__(self, index: int, plan: SourcePlan, spill: SpillWriter) -> None:
        self.index = index
        self.plan = plan
        self.spill = spill
        self.parsed = ParsedSource(
            plan.name, pa.Table.from_batches([], schema=TASK_SCHEMA)
        )  # (empty_table() imports pandas: 0.8 s)
        self.ids: set[str] = set()
        self.taken: set[str] = set()  # synthetic: fingerprints of the tasks kept so far
        self.found: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.generated: Counter[str] = Counter()
        self.next_index = 0

    def add(self, chunk: _Chunk) -> int:
        ps = self.parsed
        ps.quarantine += chunk.quarantine
        self.skipped.update(chunk.skipped)
        self.found.update(chunk.found)
        self.generated.update(chunk.generated)
        ps.files += chunk.files
        table = (
            self._synthetic(chunk.table) if self.plan.kind == "synthetic" else self._unique_ids(chunk.table)
        )
        self.spill.write(table)
        return table.num_rows

    def _unique_ids(self, table: pa.Table) -> pa.Table:
        keep = []
        for i, task_id in enumerate(table["id"].to_pylist()):
            if task_id in self.ids:
                row = table.slice(i, 1).select(["path", "split"]).to_pylist()[0]
                self.parsed.quarantine.append(
                    {
                        "source": self.plan.name,
                        "path": row["path"],
                        "reason": DUPLICATE_ID,
                        "detail": f"id {task_id} is already used by another file",
                        "split": row["split"],
                    }
                )
                keep.append(False)
            else:
                self.ids.add(task_id)
                keep.append(True)
        return table if all(keep) else table.filter(pa.array(keep))

    def _synthetic(self, table: pa.Table) -> pa.Table:
        """Task ``i`` was drawn without knowing the tasks before it; where its fingerprint repeats an
        earlier task's, draw it again here exactly as the serial generator does (same attempts, in order)."""
        from arcforge.synthetic.generator import regenerate

        pieces, start = [], 0
        for i, fp in enumerate(table["fingerprint"].to_pylist()):
            if fp not in self.taken:
                self.taken.add(fp)
                continue
            p = self.plan
            task = regenerate(
                self.next_index + i,
                p.seed,
                families=p.synthetic_families,
                difficulty=p.synthetic_difficulty,
                taken=self.taken,
            )
            pieces += [table.slice(start, i - start), tasks_to_table([task])]
            start = i + 1
        self.next_index += table.num_rows
        self.found.update(table["split"].to_pylist())
        if not pieces:
            return table
        return pa.concat_tables([*pieces, table.slice(start)])

    def finish(self) -> ParsedSource:
        self.spill.close()
        ps = self.parsed
        ps.table = read_spill(self.spill.path)
        ps.skipped = dict(sorted(self.skipped.items()))
        ps.found = dict(sorted(self.found.items()))
        ps.generated = dict(sorted(self.generated.items()))
        return ps


# --- cache ---------------------------------------------------------------------------------------------
CACHE_LAYOUT = 3  # bumped when the cache files change shape: older entries are parsed again


def cache_key(plan: SourcePlan) -> str | None:
    """Digest of everything that determines a parsed source; None = do not cache."""
    if plan.kind == "synthetic":
        return None
    key: dict[str, Any] = {
        "arcforge": __version__,
        "layout": CACHE_LAYOUT,
        "name": plan.name,
        "kind": plan.kind,
        "formats": formats.names(),
    }
    if plan.kind == "manifest" and plan.manifest is not None:
        m = dataclasses.asdict(plan.manifest)
        m.pop("path", None)
        key["manifest"] = m
        key["generate"] = plan.generate_n  # examples per generator: seeded by (source, key, index) alone
        if plan.generate_tasks:  # only when asked for: the keys of other builds stay as they were
            key["tasks_per_generator"] = plan.generate_tasks
    elif plan.root is not None:  # a user's folder can change: key on every file's size and mtime
        key["files"] = sorted(
            (p.relative_to(plan.root).as_posix(), st.st_size, st.st_mtime_ns)
            for p in plan.root.rglob("*")
            if p.is_file() and (st := p.stat())
        )
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_path(key: str) -> Path:
    return paths.home() / "build-cache" / f"{key}.arrow"


def _meta_path(key: str) -> Path:
    return _cache_path(key).with_suffix(".json")


def _load_cached(key: str, name: str) -> ParsedSource | None:
    """A complete cache entry: the tasks (``.arrow``, memory-mapped) and their counts (``.json``, written
    last, so its presence means the entry is whole). The ``.arrow`` must still have the sha256 recorded
    when it was stored: an entry changed on disk (a flipped bit) is discarded and the source parsed again."""
    path = _cache_path(key)
    if not _meta_path(key).exists():
        return None
    if not integrity.intact(path):
        integrity.discard(path)
        _meta_path(key).unlink(missing_ok=True)
        return None
    try:
        meta = json.loads(_meta_path(key).read_text(encoding="utf-8"))
        table = read_spill(_cache_path(key))
    except (OSError, pa.ArrowInvalid, TypeError, ValueError):
        return None  # missing or unreadable: parse again
    if not table.schema.equals(TASK_SCHEMA) or table.num_rows != meta.get("rows"):
        return None
    return ParsedSource(
        name,
        table,
        meta["quarantine"],
        meta["skipped"],
        meta["found"],
        meta["files"],
        from_cache=True,
        generated=meta.get("generated", {}),
    )


def _store_meta(key: str, parsed: ParsedSource) -> None:
    meta = {
        "quarantine": parsed.quarantine,
        "skipped": parsed.skipped,
        "found": parsed.found,
        "files": parsed.files,
        "rows": parsed.table.num_rows,
        "generated": parsed.generated,
    }
    path = _meta_path(key)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    integrity.seal(_cache_path(key))  # the tasks' digest, before the counts that make the entry whole
    tmp.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash leaves either no entry or a complete one


# --- the parse stage ----------------------------------------------------------------------------------------
FILES_PER_CHUNK = 256  # files per work chunk at most
CHUNK_BYTES = 4 << 20  # bytes of JSON per work chunk at most (a bigger file is a chunk of its own)
SYNTHETIC_CHUNK = 1000  # generated tasks per work chunk at most
MIN_SYNTHETIC_CHUNK = 50
# Work chunks in flight per worker. Results are merged in order, so a slow chunk at the head holds back
# the ones behind it: with only a couple in flight, the other workers sit idle until it ends. Chunks
# differ a lot in cost (one RE-ARC generator takes many times another's time), so the window is wide;
# a finished chunk waiting its turn is a few MB at most (FILES_PER_CHUNK, CHUNK_BYTES, TASKS_PER_CHUNK).
PARSE_WINDOW_PER_WORKER = 8


def parse_sources(
    plans: Sequence[SourcePlan],
    *,
    pool: WorkerPool,
    spill_dir: Path,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> Iterator[ParsedSource]:
    """Parse sources (from the build cache when possible), yielding each as soon as it is complete.

    All sources' work chunks go through one ordered stream over ``pool``, so the workers stay busy across
    source boundaries. Each source's tasks are streamed into a spill file (the cache entry when caching),
    so memory does not grow with the number of tasks; the ``ParsedSource.table`` is memory-mapped.
    """
    progress = progress or NULL_PROGRESS
    keys = [cache_key(p) if use_cache else None for p in plans]
    done: dict[int, ParsedSource] = {}
    todo = []
    for i, (p, key) in enumerate(zip(plans, keys, strict=True)):
        cached = _load_cached(key, p.name) if key is not None else None
        if cached is not None:
            done[i] = cached
        else:
            todo.append(i)
    spill_dir.mkdir(parents=True, exist_ok=True)

    def spill_path(i: int) -> Path:
        key = keys[i]
        return _cache_path(key) if key is not None else spill_dir / f"{i:03d}-{plans[i].name}.arrow"

    def all_jobs() -> Iterator[_Job]:
        for i in todo:
            yield from _jobs(i, plans[i], pool.workers)

    next_out = 0
    progress.start("parse.tasks", "Parsing tasks", total=None, unit="tasks")
    merger: _SourceMerger | None = None
    try:
        for chunk in pool.imap(_run_job, all_jobs(), window=PARSE_WINDOW_PER_WORKER * pool.workers):
            if merger is None:
                i = chunk.source
                merger = _SourceMerger(i, plans[i], SpillWriter(spill_path(i)))
            progress.advance("parse.tasks", merger.add(chunk))
            if chunk.final:  # complete: cached (when caching) before anything else happens
                done[merger.index] = _finish(merger, keys[merger.index])
                merger = None
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
    except BaseException:
        if merger is not None:
            merger.spill.abort()
        raise
    finally:
        progress.finish("parse.tasks")


def _finish(merger: _SourceMerger, key: str | None) -> ParsedSource:
    parsed = merger.finish()
    if key is not None:
        _store_meta(key, parsed)
    return parsed


def parse_stage(
    plans: Sequence[SourcePlan],
    eval_local: Sequence[Path] = (),
    *,
    use_cache: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[ParsedSource], pa.Table | None]:
    """The build's parse step: every source, then every ``--eval-local`` folder (the reference-only
    tasks, returned as one table or None), through one worker pool.

    Uncached sources spill into a temporary folder that is removed before returning: the tables stay
    memory-mapped (an unlinked file stays readable while mapped) and the disk space is freed with them.
    """
    progress = progress or NULL_PROGRESS
    ref_plans = []
    for folder in eval_local:
        folder = Path(folder)
        if not folder.is_dir():
            raise BuildError(f"{folder}: --eval-local folder not found")
        ref_plans.append(SourcePlan(f"eval_{local_name(folder)}", "local", root=folder))
    everything = [*plans, *ref_plans]
    spill.recover(paths.home() / "build-cache")  # what killed builds left behind
    spill_dir = spill.spill_dir()
    parsed: list[ParsedSource] = []
    progress.start("parse", "Parsing sources", total=len(everything))
    try:
        with WorkerPool(workers) as pool:
            for ps in parse_sources(
                everything, pool=pool, spill_dir=spill_dir, use_cache=use_cache, progress=progress
            ):
                parsed.append(ps)
                progress.advance("parse")
    finally:
        JOB_ZIPS.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
        from arcforge.sources.generate import close_sandboxes

        close_sandboxes()  # those this process ran (one worker); the pool's closed with their processes
        progress.finish("parse")
    refs = parsed[len(plans) :]
    reference = pa.concat_tables([ps.table for ps in refs]) if refs else None
    return parsed[: len(plans)], reference


def parse_source(plan: SourcePlan, *, use_cache: bool = True, workers: int = 1) -> ParsedSource:
    """One source through ``parse_stage`` (a library convenience; serial by default)."""
    return parse_stage([plan], use_cache=use_cache, workers=workers)[0][0]


def quarantine_table(rows: list[dict[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
