"""Turn one source (a fetched manifest source, a user's ``--local`` folder, or the synthetic generator)
into a table of validated tasks plus quarantine rows and counts: the per-source step of the build.

Ids: ``<source>/<path relative to id_root, without extension>``; a zip member's id uses its path inside
the archive; a format that finds several tasks in one file appends ``/<key>``. ``--local`` folders: ids
are relative to the folder; a file under a top-level ``training/`` or ``evaluation/`` folder goes to that
split, every other file to ``training``; each file's format is detected from its content.

Parsed sources are cached under ``ARCFORGE_HOME/build-cache`` (Arrow IPC, keyed by the arcforge version
and everything that determines the result), so a re-run after an interruption or with other options
does not parse finished sources again.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from arcforge import __version__, formats, integrity, paths
from arcforge.errors import BuildError
from arcforge.formats import Member, RawTask, Rejected, Skipped
from arcforge.manifest import NAME_RE, Manifest
from arcforge.members import ZipCache, glob_members, local_members, plain_files
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
    """Accumulates one source's tasks, quarantine rows and counts while its files are read."""

    def __init__(self, plan: SourcePlan) -> None:
        self.plan = plan
        self.tasks: list[Task] = []
        self.ids: set[str] = set()
        self.quarantine: list[dict[str, str]] = []
        self.skipped: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.files = 0

    def reject(self, path: str, split: str, reason: str, detail: str) -> None:
        self.found[split] += 1
        self.quarantine.append(
            {"source": self.plan.name, "path": path, "reason": reason, "detail": detail, "split": split}
        )

    def read(self, member: Member, fmt: formats.Format | None, options: dict, split: str, base_id: str,
             data: bytes | None = None) -> None:
        """Read one member with ``fmt`` (None: detect it from the content) into the collector."""
        self.files += 1
        try:
            if fmt is None:
                data = member.read()
                fmt = formats.detect(member.path, loads_json(data, member.path))
                if fmt is None:
                    raise TaskFormatError(BAD_STRUCTURE, NOT_A_TASK)
            if data is not None:
                member = Member(member.path, lambda: data)
            items = list(fmt.read(member, options))
        except TaskFormatError as e:
            self.reject(member.path, split, e.reason, e.detail)
            return
        for item in items:
            if isinstance(item, Skipped):
                self.skipped[item.reason] += 1
            elif isinstance(item, Rejected):
                self.reject(member.path, split, item.reason, f"{item.key}: {item.detail}")
            elif isinstance(item, RawTask):
                self.add(member.path, split, f"{base_id}/{item.key}" if item.key else base_id, item)

    def add(self, path: str, split: str, task_id: str, raw: RawTask) -> None:
        if task_id in self.ids:
            self.reject(path, split, DUPLICATE_ID, f"id {task_id} is already used by another file")
            return
        self.ids.add(task_id)
        self.found[split] += 1
        p = self.plan
        self.tasks.append(Task(task_id, p.name, split, raw.train, raw.test, p.repo, p.commit, path,
                               p.license, raw.extra))

    def result(self) -> ParsedSource:
        return ParsedSource(self.plan.name, tasks_to_table(self.tasks), self.quarantine,
                            dict(sorted(self.skipped.items())), dict(sorted(self.found.items())),
                            self.files)


def _parse_manifest_source(plan: SourcePlan) -> ParsedSource:
    m = plan.manifest
    assert m is not None and plan.root is not None
    col = _Collector(plan)
    files = plain_files(plan.root)
    with ZipCache() as zips:
        for tg in m.tasks:
            fmt = formats.get(tg.format or m.format)
            id_root = tg.id_root if tg.id_root is not None else m.id_root
            for member in glob_members(plan.root, tg.include, tg.exclude, zips=zips, files=files):
                col.read(member, fmt, tg.options, tg.split, f"{plan.name}/{_rel_id(member.inner_path, id_root)}")
    return col.result()


def _parse_local_source(plan: SourcePlan) -> ParsedSource:
    assert plan.root is not None
    col = _Collector(plan)
    with ZipCache() as zips:
        for member in local_members(plan.root, zips=zips):
            rel = _strip_ext(member.inner_path)
            top = rel.split("/", 1)[0]
            split = top if top in LOCAL_SPLITS and "/" in rel else DEFAULT_LOCAL_SPLIT
            col.read(member, None, {}, split, f"{plan.name}/{rel}")
    return col.result()


def _parse_synthetic(plan: SourcePlan) -> ParsedSource:
    from arcforge import synthetic

    tasks = list(synthetic.generate(plan.synthetic_n, plan.seed, families=plan.synthetic_families,
                                    difficulty=plan.synthetic_difficulty))
    found = Counter(t.split for t in tasks)
    return ParsedSource(plan.name, tasks_to_table(tasks), found=dict(sorted(found.items())))


# --- cache ---------------------------------------------------------------------------------------------
def cache_key(plan: SourcePlan) -> str | None:
    """Digest of everything that determines a parsed source; None = do not cache."""
    if plan.kind == "synthetic":
        return None
    key: dict[str, Any] = {"arcforge": __version__, "name": plan.name, "kind": plan.kind,
                           "formats": formats.names()}
    if plan.kind == "manifest" and plan.manifest is not None:
        m = dataclasses.asdict(plan.manifest)
        m.pop("path", None)
        key["manifest"] = m
    elif plan.root is not None:  # a user's folder can change: key on every file's size and mtime
        key["files"] = sorted(
            (p.relative_to(plan.root).as_posix(), st.st_size, st.st_mtime_ns)
            for p in plan.root.rglob("*")
            if p.is_file() and (st := p.stat())
        )
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_path(key: str) -> Path:
    return paths.home() / "build-cache" / f"{key}.arrow"


def _load_cached(key: str, name: str) -> ParsedSource | None:
    path = _cache_path(key)
    if not path.exists():
        return None
    if not integrity.intact(path):  # changed on disk since it was written: never trusted, parsed again
        integrity.discard(path)
        return None
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
        meta = json.loads(table.schema.metadata[b"arcforge"])
    except (OSError, pa.ArrowInvalid, KeyError, TypeError, ValueError):
        return None  # missing or unreadable: parse again
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(TASK_SCHEMA):
        return None
    return ParsedSource(name, table, meta["quarantine"], meta["skipped"], meta["found"], meta["files"],
                        from_cache=True)


def _store_cached(key: str, parsed: ParsedSource) -> None:
    path = _cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"quarantine": parsed.quarantine, "skipped": parsed.skipped, "found": parsed.found,
            "files": parsed.files}
    table = parsed.table.replace_schema_metadata({"arcforge": json.dumps(meta, sort_keys=True)})
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    integrity.seal(tmp)
    integrity.discard(path)
    os.replace(tmp.with_name(tmp.name + ".sha256"), path.with_name(path.name + ".sha256"))
    os.replace(tmp, path)  # a crash leaves no entry, or one whose digest does not match: parsed again


def parse_source(plan: SourcePlan, *, use_cache: bool = True) -> ParsedSource:
    """Parse one source (from the build cache when possible)."""
    key = cache_key(plan) if use_cache else None
    if key is not None and (cached := _load_cached(key, plan.name)) is not None:
        return cached
    # Parsing allocates millions of small objects that all stay alive: the cyclic GC only costs time here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if plan.kind == "manifest":
            parsed = _parse_manifest_source(plan)
        elif plan.kind == "local":
            parsed = _parse_local_source(plan)
        else:
            parsed = _parse_synthetic(plan)
    finally:
        if gc_was_enabled:
            gc.enable()
    if key is not None:
        _store_cached(key, parsed)
    return parsed


def quarantine_table(rows: list[dict[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
