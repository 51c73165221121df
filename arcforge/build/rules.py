"""Rule-level leakage, found by running the programs: does an upstream program implement a reference
task's rule?

A program (``arcforge.sources.programs``) *implements the rule* of a reference task when it maps every
input of the task, demonstrations and test alike, to that task's output. ``check`` runs each program on
the reference tasks' inputs in the sandbox (``arcforge.sources.sandbox``: a fresh interpreter per worker,
per-call time and memory limits) and stops each task at the first pair that disagrees. Programs only ever
receive input grids: outputs are compared here, in arcforge's process, so no evaluation answer is ever
handed to upstream code.

Cost control:

- a program is asked in rounds: the first pair of every task in one request (``Sandbox.each``: the worker
  answers call after call, with each call's limits kept in the worker, so a slow call costs no restart),
  then the next pair of the tasks that agreed, and so on;
- a call that runs out of time (``call_s`` of CPU, ``wall_s`` of wall clock), out of memory or crashes the
  interpreter is a *failure*. A program whose first ``max_failures`` calls all fail is given up (the tasks
  it did not reach stay unchecked) and costs one ``error`` entry: a hostile program (an endless loop, a
  memory bomb, a crash) costs ``max_failures`` call limits. A program that fails on some inputs only (slow
  on large grids) goes on, up to ``max_total_failures`` failures, and no program spends more than
  ``program_s`` CPU seconds in all;
- results are cached (``arcforge.build.rule_cache``) by (program digest, reference task digest), and the
  whole outcome under one key over every digest: a rebuild reads one file and runs nothing, a changed
  program runs alone. A failure, and a program given up, are cached with the limits they ran under and
  run again under others.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from arcforge.build.rule_cache import ERROR, RuleCache
from arcforge.build.rule_config import CHECK_VERSION, RuleConfig
from arcforge.build.rule_refs import Reference, RefTable, grid_cells, references, task_digest
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.sources.programs import Program

MATCH, MISMATCH = "match", "mismatch"
FAILURES = ("timeout", "memory limit", "crashed", "MemoryError")  # how the sandbox words a failure
__all__ = [
    "CHECK_VERSION",
    "ERROR",
    "MATCH",
    "MISMATCH",
    "RefTable",
    "Reference",
    "RuleCache",
    "RuleConfig",
    "check",
    "references",
    "task_digest",
]


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
    references: int = 0  # reference tasks
    programs_run: int = 0  # programs that ran now (the others were answered by the cache)
    sandboxes: int = 0  # sandboxes started
    summary: bool = (
        False  # the whole outcome came from the summary: nothing ran, no per-program file was read
    )


def _same(grid: list) -> list:
    return grid


def _transpose(grid: list) -> list:
    return [list(col) for col in zip(*grid, strict=True)]


def _agrees(value, expected: list) -> bool:
    """The program's answer is the expected grid (a list of rows of ints; 1 and True are not the same)."""
    return (
        isinstance(value, list)
        and len(value) == len(expected)
        and all(isinstance(row, list) and all(type(c) is int for c in row) for row in value)
        and value == expected
    )


# --- running one program -----------------------------------------------------------------------------------
def is_failure(error: str | None) -> bool:
    return bool(error) and error.startswith(FAILURES)


class _ProgramRun:
    """The check of one program against the reference tasks the cache does not answer."""

    def __init__(self, sandbox, program: Program, config: RuleConfig):
        self.sb, self.p, self.config = sandbox, program, config
        self.results: dict[str, list] = {}
        self.failures, self.first_error, self.calls = 0, "", 0
        self.spent = 0.0  # CPU seconds of its calls
        self.stopped = ""  # why it was given up

    def run(self, todo: list[Reference]) -> None:
        """The tasks of its declared lineage first, then batches of ``RuleConfig.batch`` tasks; each batch in
        rounds (pair ``k`` of every task that agreed on the pairs before it, in one request) and finished
        before the next starts: a task that agrees is followed to its end before the budget goes elsewhere."""
        from arcforge.errors import SandboxError

        declared = set(self.p.derived_from)
        own = [r for r in todo if r.eval_id in declared]
        rest = [r for r in todo if r.eval_id not in declared]
        size = self.config.batch
        try:
            for batch in [own, *(rest[i : i + size] for i in range(0, len(rest), size))]:
                active, pair = batch, 0
                while active and not self.stopped:
                    active, pair = self._round(active, pair), pair + 1
        except SandboxError as e:  # the worker, lost, did not start again
            self.first_error = self.first_error or str(e)
            self.stopped = self.stopped or self.first_error

    def _give_up(self) -> str:
        c = self.config
        if (
            self.failures >= c.max_failures and self.failures == self.calls
        ) or self.failures >= c.max_total_failures:
            return f"given up after {self.failures} failed calls"
        if self.spent >= c.program_s:
            return f"given up after {c.program_s:g} CPU s of calls"
        return ""

    def _round(self, chunk: list[Reference], pair: int) -> list[Reference]:
        t = _transpose if self.p.transpose else _same
        stream = self.sb.each(
            self.p.module, self.p.function, [[t(r.inputs[pair])] for r in chunk], grid_type=self.p.grid_type
        )
        agreeing = []
        try:
            for r, res in zip(chunk, stream, strict=False):
                self.calls += 1
                # a call the parent ended has no CPU time of its own: it counts as one call limit
                self.spent += res.seconds if res.seconds or not is_failure(res.error) else self.config.call_s
                if res.ok and _agrees(res.value, t(r.outputs[pair])):
                    if pair + 1 == len(r.inputs):
                        self.results[r.digest] = [MATCH, pair + 1, "", ""]
                    else:
                        agreeing.append(r)
                elif not res.ok and is_failure(res.error):
                    self.failures += 1
                    self.first_error = self.first_error or res.error
                    self.results[r.digest] = [ERROR, pair, res.error, self.config.tag()]
                else:
                    self.results[r.digest] = [MISMATCH, pair, "", ""]
                self.stopped = self._give_up()
                if self.stopped:
                    break
        finally:
            stream.close()
        return agreeing


def _order(p: Program, refs: list[Reference]) -> list[Reference]:
    """The tasks a program is asked about, its declared lineage first, then smallest first input first: a
    program that is slow on large grids and ends up given up has checked every task it could."""
    declared = set(p.derived_from)
    return sorted(refs, key=lambda r: (r.eval_id not in declared, grid_cells(r.inputs[0])))


# --- the check ---------------------------------------------------------------------------------------------
START = "__start__"  # cache key of a program whose module does not import
STOPPED = (
    "__stopped__"  # cache key of a program given up (failures, budget): not run again under these limits
)
# A stubbed module answers every missing name, ``__all__`` included: name its public names as Python would.
STAR = "\n__all__ = [_n for _n in list(globals()) if not _n.startswith('_')]\n"


def _units(programs: Sequence[Program], size: int) -> list[list[Program]]:
    """Programs that can share one sandbox (same folder and stubs), at most ``size`` to a unit."""
    groups: dict[tuple, list[Program]] = {}
    for p in programs:
        groups.setdefault((p.source, p.module_dir, p.stubs), []).append(p)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def _open(code_dir: Path, unit: list[Program], config: RuleConfig):
    from arcforge.sources.sandbox import Limits, Sandbox

    first = unit[0]
    stubs = {name: (Path(code_dir) / rel).read_text(encoding="utf-8") + STAR for name, rel in first.stubs}
    return Sandbox(
        Path(code_dir) / first.module_dir,
        modules=[*first.preload, *sorted({p.module for p in unit})],
        limits=Limits(call_s=config.call_s, memory_mb=config.memory_mb, wall_s=config.wall_s),
        stubs=stubs,
    )


class _Checker:
    def __init__(self, code_dirs, refs, config, cache, progress):
        self.code_dirs, self.refs, self.config, self.cache = code_dirs, refs, config, cache
        self.progress = progress
        self.by_digest = {r.digest: r for r in refs}
        self.result = CheckResult()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failed: list[BaseException] = []
        self.before_run: Callable[[], None] | None = None  # called once, before the first sandbox starts

    def work(self, units: queue.SimpleQueue) -> None:
        try:
            while not self.stop.is_set():
                try:
                    unit = units.get_nowait()
                except queue.Empty:
                    return
                self.unit(unit)
        except BaseException as e:  # re-raised by ``check`` in the calling thread; the others stop
            self.stop.set()
            self.failed.append(e)

    def _known(self, p: Program) -> dict[str, list]:
        return self.cache.load(p) if self.cache is not None else {}

    def _needs_run(self, known: dict[str, list]) -> bool:
        return START not in known and STOPPED not in known and any(r.digest not in known for r in self.refs)

    def unit(self, unit: list[Program]) -> None:
        """Check the programs of one unit in one sandbox; a unit that does not start is split up."""
        from arcforge.errors import SandboxError

        known = {p: self._known(p) for p in unit}
        todo = [p for p in unit if self._needs_run(known[p])]
        for p in unit:
            if p not in todo:
                self._collect(p, known[p], None)
        if not todo:
            return
        with self.lock:
            if self.before_run is not None:
                before, self.before_run = self.before_run, None
                before()
            self.result.sandboxes += 1
        try:
            sb = _open(self.code_dirs[todo[0].source], todo, self.config).__enter__()
        except SandboxError as e:
            if len(todo) > 1:
                for p in todo:
                    self.unit([p])
                return
            known[todo[0]][START] = [ERROR, 0, str(e), self.config.tag()]
            self._store(todo[0], known[todo[0]])
            self._collect(todo[0], known[todo[0]], None)
            return
        try:
            for p in todo:
                if self.stop.is_set():
                    return
                self._run(sb, p, known[p])
        finally:
            sb.__exit__(None, None, None)

    def _run(self, sb, p: Program, known: dict[str, list]) -> None:
        run = _ProgramRun(sb, p, self.config)
        run.run(_order(p, [r for r in self.refs if r.digest not in known]))
        known.update(run.results)
        if run.stopped:
            known[STOPPED] = [ERROR, 0, run.first_error or run.stopped, self.config.tag()]
        self._store(p, known)
        self._collect(p, known, run)

    def _store(self, p: Program, known: dict[str, list]) -> None:
        if self.cache is not None:
            self.cache.store(p, known)

    def _collect(self, p: Program, known: dict[str, list], run: _ProgramRun | None) -> None:
        """Add ``p``'s outcome (``known``; ``run``: this process's run of it, None when it never started)
        to the result: counts, its error if any, its matches in reference order; one step of progress."""
        with self.lock:
            res = self.result
            if run is not None:
                res.checked += len(run.results)
                res.calls += run.calls
                res.programs_run += 1
            answered = sum(1 for r in self.refs if r.digest in known)
            res.cached += answered - (len(run.results) if run else 0)
            error = self._error(p, known, run, len(self.refs) - answered)
            if error is not None:
                res.errors.append(error)
            res.matches += [
                (p, r, int(v[1]))
                for r in self.refs
                if (v := known.get(r.digest)) is not None and v[0] == MATCH
            ]
            self.progress.advance("rules")

    def _error(
        self, p: Program, known: dict[str, list], run: _ProgramRun | None, unchecked: int
    ) -> ProgramError | None:
        """``p``'s error when it failed on a reference task or left some unchecked (None: it did not): the
        first error of the run, else of a stored failure, else why it did not start or stopped."""
        fails = [v for d, v in known.items() if v[0] == ERROR and d in self.by_digest]
        if not fails and not unchecked:
            return None
        start = known.get(START) or known.get(STOPPED)
        first = (
            run.first_error
            if run is not None and run.first_error
            else fails[0][2]
            if fails
            else start[2]
            if start
            else ""
        )
        return ProgramError(p, first or "not checked", len(fails), unchecked)


def _ref_key(refs: Sequence[Reference] | RefTable) -> list:
    if isinstance(refs, RefTable):
        return ["table", refs.key]
    return [[r.eval_id, r.source, r.digest] for r in refs]


def _from_summary(
    programs: Sequence[Program], refs: Sequence[Reference] | RefTable, got: dict
) -> CheckResult:
    """The stored outcome; from a ``RefTable``, a match's ``Reference`` carries the task's id and source only
    (its pairs were never read)."""

    def ref(i: int) -> Reference:
        if isinstance(refs, RefTable):
            return Reference(refs.ids[i], refs.sources[i], (), (), "")
        return refs[i]

    res = CheckResult(cached=got["answered"], references=len(refs), summary=True)
    res.matches = [(programs[p], ref(r), n) for p, r, n in got["matches"]]
    res.errors = [ProgramError(programs[p], e, f, u) for p, e, f, u in got["errors"]]
    return res


def _to_summary(
    cache: RuleCache, key: str, programs: Sequence[Program], refs: Sequence[Reference], res: CheckResult
) -> None:
    p_at = {(p.source, p.path): i for i, p in enumerate(programs)}
    r_at = {id(r): i for i, r in enumerate(refs)}
    cache.store_summary(
        key,
        [[p_at[(p.source, p.path)], r_at[id(r)], n] for p, r, n in res.matches],
        [[p_at[(e.program.source, e.program.path)], e.error, e.failures, e.unchecked] for e in res.errors],
        res.checked + res.cached,
    )


def check(
    programs: Sequence[Program],
    code_dirs: dict[str, Path],
    refs: Sequence[Reference] | RefTable,
    *,
    config: RuleConfig | None = None,
    cache: RuleCache | None = None,
    progress: Progress | None = None,
    before_run: Callable[[], None] | None = None,
) -> CheckResult:
    """Run every program on every reference task (see the module docstring); results in a fixed order.
    ``refs``: ``references(table)`` or, cheaper when the summary answers, ``RefTable(table)``.
    ``before_run``: called once before the first program runs (never when the cache answers everything)."""
    config = config or RuleConfig()
    progress = progress or NULL_PROGRESS
    t0 = time.perf_counter()
    key = cache.summary_key(programs, _ref_key(refs)) if cache is not None else ""
    got = cache.load_summary(key, len(programs), len(refs)) if cache is not None else None
    if got is not None:
        res = _from_summary(programs, refs, got)
        res.seconds = time.perf_counter() - t0
        return res
    tasks = refs.tasks if isinstance(refs, RefTable) else list(refs)
    res = _run_all(programs, code_dirs, tasks, config, cache, progress, before_run)
    order = {(p.source, p.path): i for i, p in enumerate(programs)}
    res.matches.sort(key=lambda m: (order[(m[0].source, m[0].path)], m[1].eval_id))
    res.errors.sort(key=lambda e: order[(e.program.source, e.program.path)])
    if cache is not None:
        _to_summary(cache, key, programs, tasks, res)
    res.seconds = time.perf_counter() - t0
    return res


def _run_all(
    programs: Sequence[Program],
    code_dirs: dict[str, Path],
    refs: Sequence[Reference],
    config: RuleConfig,
    cache: RuleCache | None,
    progress: Progress,
    before_run: Callable[[], None] | None,
) -> CheckResult:
    checker = _Checker(code_dirs, list(refs), config, cache, progress)
    checker.before_run = before_run
    q: queue.SimpleQueue = queue.SimpleQueue()
    units = _units(programs, config.unit)
    for u in units:
        q.put(u)
    progress.start(
        "rules", "rules: running programs on the reference tasks", total=len(programs), unit="programs"
    )
    n = max(1, min(config.workers, len(units)))
    threads = [threading.Thread(target=checker.work, args=(q,), daemon=True) for _ in range(n - 1)]
    for t in threads:
        t.start()
    try:
        checker.work(q)
    finally:
        for t in threads:
            t.join()
    if checker.failed:
        raise checker.failed[0]
    progress.finish("rules")
    checker.result.references = len(refs)
    return checker.result
