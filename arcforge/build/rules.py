"""Rule-level leakage, found by running the programs: does an upstream program implement a reference task's rule?

A program (``arcforge.sources.programs``) *implements the rule* of a reference task when it maps every
input of the task, demonstrations and test alike, to that task's output. ``check`` runs each program on
the reference tasks' inputs in the sandbox (``arcforge.sources.sandbox``: a fresh interpreter per worker,
per-call time and memory limits), one pair after the other, and stops at the first pair that disagrees.
Programs only ever receive input grids: outputs are compared here, in arcforge's process, so no
evaluation answer is ever handed to upstream code.

Cost control:

- the first pair of every task is asked in one batch; only the tasks that agree get their next pair;
- a call that runs out of time, out of memory or crashes the interpreter is a *failure*; a program with
  ``max_failures`` of them is given up (the tasks it did not reach stay unchecked) and costs one ``error``
  entry, so a hostile program (an endless loop, a memory bomb) costs at most ``max_failures`` call limits;
  calls go in batches that start at one and double while nothing fails;
- results are cached under ``ARCFORGE_HOME/rules/`` by (program digest, reference task digest): a rebuild
  runs nothing. A failure is cached with the limits it ran under and retried under others.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from arcforge import paths
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.sources.programs import Program

CACHE_VERSION = 1
MATCH, MISMATCH, ERROR = "match", "mismatch", "error"
FAILURES = ("timeout", "memory limit", "crashed", "MemoryError")  # how the sandbox words a failure


@dataclass(frozen=True)
class RuleConfig:
    """Limits of the execution check (one home for them: the build, the CLI and the benchmark read it)."""

    call_s: float = 1.0  # per call, wall and CPU
    memory_mb: int = 1024  # address space of the worker
    max_failures: int = 3  # failed calls (time, memory, crash) before a program is given up
    max_batch: int = 64  # calls per sandbox round trip
    workers: int = 1  # sandboxes run side by side

    def tag(self) -> str:
        return f"call_s={self.call_s},memory_mb={self.memory_mb}"


@dataclass(frozen=True)
class Reference:
    """A reference task as the check sees it: its inputs (sent) and outputs (kept here)."""

    eval_id: str  # ``source/split/id``
    source: str
    inputs: tuple  # grids as lists of rows: train inputs, then test inputs
    outputs: tuple
    digest: str


@dataclass
class ProgramError:
    program: Program
    error: str  # the first failure's reason
    failures: int
    unchecked: int  # reference tasks not reached


@dataclass
class CheckResult:
    matches: list[tuple[Program, Reference, int]] = field(default_factory=list)  # (program, task, pairs)
    errors: list[ProgramError] = field(default_factory=list)
    checked: int = 0  # (program, task) checks run now
    cached: int = 0  # ... answered by the cache
    calls: int = 0  # program calls made
    seconds: float = 0.0


def task_digest(pairs: Sequence[tuple[list, list]]) -> str:
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def references(table: pa.Table) -> list[Reference]:
    """The reference tasks of ``table`` (TASK_SCHEMA rows), train pairs then test pairs, in row order."""
    out = []
    for r in table.select(["id", "source", "split", "train", "test"]).to_pylist():
        pairs = [(p["input"], p["output"]) for p in (r["train"] or []) + (r["test"] or [])]
        out.append(Reference(f"{r['source']}/{r['split']}/{r['id']}", r["source"],
                             tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), task_digest(pairs)))
    return out


# --- the cache -------------------------------------------------------------------------------------------
class RuleCache:
    """``{task digest: [kind, pair, reason, limits]}`` per program digest, one JSON file per program."""

    def __init__(self, root: Path | None = None, config: RuleConfig | None = None):
        self.root = Path(root) if root is not None else paths.home() / "rules"
        self.tag = (config or RuleConfig()).tag()

    def _file(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def load(self, program: Program) -> dict[str, list]:
        try:
            data = json.loads(self._file(program.digest).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or damaged: the checks run again and rewrite it
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        res = data.get("results")
        if not isinstance(res, dict):
            return {}
        return {k: v for k, v in res.items()
                if isinstance(v, list) and len(v) == 4 and (v[0] != ERROR or v[3] == self.tag)}

    def store(self, program: Program, results: dict[str, list]) -> None:
        f = self._file(program.digest)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "program": program.path, "results": results},
                                  sort_keys=True), encoding="utf-8")
        os.replace(tmp, f)


# --- running one program -----------------------------------------------------------------------------------
def is_failure(error: str | None) -> bool:
    return bool(error) and error.startswith(FAILURES)


class _ProgramRun:
    """The check of one program against the reference tasks the cache does not answer."""

    def __init__(self, sandbox, program: Program, config: RuleConfig):
        self.sb, self.p, self.config = sandbox, program, config
        self.results: dict[str, list] = {}
        self.failures, self.first_error, self.calls = 0, "", 0
        self.batch = 1

    def run(self, todo: list[Reference]) -> None:
        active, pair = todo, 0
        while active and self.failures < self.config.max_failures:
            agreeing: list[Reference] = []
            i = 0
            while i < len(active) and self.failures < self.config.max_failures:
                chunk = active[i : i + self.batch]
                i += len(chunk)
                agreeing += self._ask(chunk, pair)
            active, pair = ([] if self.failures >= self.config.max_failures else agreeing), pair + 1

    def _ask(self, chunk: list[Reference], pair: int) -> list[Reference]:
        rs = self.sb.map(self.p.module, self.p.function, [[r.inputs[pair]] for r in chunk],
                         grid_type=self.p.grid_type)
        self.calls += len(chunk)
        agreeing, failed = [], False
        tag = self.config.tag()
        for r, res in zip(chunk, rs, strict=True):
            if res.ok and res.value == r.outputs[pair]:
                if pair + 1 == len(r.inputs):
                    self.results[r.digest] = [MATCH, pair + 1, "", ""]
                else:
                    agreeing.append(r)
            elif not res.ok and is_failure(res.error):
                failed = True
                self.failures += 1
                self.first_error = self.first_error or res.error
                self.results[r.digest] = [ERROR, pair, res.error, tag]
            else:
                self.results[r.digest] = [MISMATCH, pair, "", ""]
        self.batch = 1 if failed else min(self.config.max_batch, self.batch * 2)
        return agreeing


# --- the check ----------------------------------------------------------------------------------------------
def _open(code_dirs: dict[str, Path], program: Program, config: RuleConfig):
    from arcforge.sources.sandbox import Limits, Sandbox

    limits = Limits(call_s=config.call_s, memory_mb=config.memory_mb)
    return Sandbox(Path(code_dirs[program.source]) / program.module_dir, modules=[program.module], limits=limits)


class _Checker:
    def __init__(self, code_dirs, refs, config, cache, progress):
        self.code_dirs, self.refs, self.config, self.cache = code_dirs, refs, config, cache
        self.progress = progress
        self.by_digest = {r.digest: r for r in refs}
        self.result = CheckResult()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failed: list[BaseException] = []

    def work(self, programs: queue.SimpleQueue) -> None:
        try:
            self._work(programs)
        except BaseException as e:  # re-raised by ``check`` in the calling thread; the others stop
            self.stop.set()
            self.failed.append(e)

    def _work(self, programs: queue.SimpleQueue) -> None:
        sb, key = None, None
        try:
            while not self.stop.is_set():
                try:
                    p = programs.get_nowait()
                except queue.Empty:
                    return
                if (p.source, p.module_dir, p.module) != key:
                    if sb is not None:
                        sb.__exit__(None, None, None)
                    sb, key = None, (p.source, p.module_dir, p.module)
                sb = self.one(p, sb)
        finally:
            if sb is not None:
                sb.__exit__(None, None, None)

    def one(self, p: Program, sb):
        known = self.cache.load(p) if self.cache is not None else {}
        todo = [r for r in self.refs if r.digest not in known]
        run = None
        if todo:
            if sb is None:
                sb = _open(self.code_dirs, p, self.config).__enter__()
            run = _ProgramRun(sb, p, self.config)
            run.run(todo)
            known.update(run.results)
            if self.cache is not None:
                self.cache.store(p, known)
        self._collect(p, known, run, len(self.refs) - len(todo))
        return sb

    def _collect(self, p: Program, known: dict[str, list], run: _ProgramRun | None, cached: int) -> None:
        with self.lock:
            res = self.result
            res.cached += cached
            if run is not None:
                res.checked += len(run.results)
                res.calls += run.calls
            fails = [v for d, v in known.items() if v[0] == ERROR and d in self.by_digest]
            unchecked = sum(1 for r in self.refs if r.digest not in known)
            if fails or unchecked:
                res.errors.append(ProgramError(p, run.first_error if run and run.first_error else fails[0][2]
                                               if fails else "not run", len(fails), unchecked))
            for r in self.refs:
                v = known.get(r.digest)
                if v is not None and v[0] == MATCH:
                    res.matches.append((p, r, int(v[1])))
            self.progress.advance("rules")


def check(programs: Sequence[Program], code_dirs: dict[str, Path], refs: Sequence[Reference], *,
          config: RuleConfig | None = None, cache: RuleCache | None = None,
          progress: Progress | None = None) -> CheckResult:
    """Run every program on every reference task (see the module docstring); results in a fixed order."""
    config = config or RuleConfig()
    progress = progress or NULL_PROGRESS
    checker = _Checker(code_dirs, list(refs), config, cache, progress)
    q: queue.SimpleQueue = queue.SimpleQueue()
    for p in programs:
        q.put(p)
    progress.start("rules", "rules: running programs on the reference tasks", total=len(programs), unit="programs")
    t0 = time.perf_counter()
    n = max(1, min(config.workers, len(programs)))
    threads = [threading.Thread(target=checker.work, args=(q,), daemon=True) for _ in range(n - 1)]
    for t in threads:
        t.start()
    try:
        checker.work(q)
    finally:
        checker.stop.set()  # Ctrl-C or an error here: the other threads end after their current program
        for t in threads:
            t.join()
    if checker.failed:
        raise checker.failed[0]
    progress.finish("rules")
    res = checker.result
    order = {(p.source, p.path): i for i, p in enumerate(programs)}
    res.matches.sort(key=lambda m: (order[(m[0].source, m[0].path)], m[1].eval_id))
    res.errors.sort(key=lambda e: order[(e.program.source, e.program.path)])
    res.seconds = time.perf_counter() - t0
    return res
